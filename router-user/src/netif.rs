//! Network interfaces by name: index and MAC address, asked of the kernel in the calling
//! thread's network namespace (sysfs would show the namespace it was mounted in).

use std::{ffi::CString, os::fd::FromRawFd as _};

/// An interface the router redirects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    pub ifindex: u32,
    pub mac: [u8; 6],
}

#[derive(Debug, thiserror::Error)]
pub enum NetifError {
    #[error("interface {0} does not exist")]
    Missing(String),
    #[error("interface {name}: cannot read its MAC address: {source}")]
    Mac {
        name: String,
        source: std::io::Error,
    },
}

/// Whether `name` can name a Linux network interface (the kernel's `dev_valid_name`): 1 to
/// 15 octets, not `.` or `..`, no `/`, `:`, whitespace or NUL.
pub fn valid_name(name: &str) -> bool {
    (1..libc::IFNAMSIZ).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Looks `name` up in this thread's network namespace.
pub fn lookup(name: &str) -> Result<Interface, NetifError> {
    let missing = || NetifError::Missing(name.to_owned());
    let c_name = CString::new(name).map_err(|_| missing())?;
    if c_name.as_bytes_with_nul().len() > libc::IFNAMSIZ {
        return Err(missing());
    }
    // SAFETY: a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if ifindex == 0 {
        return Err(missing());
    }
    let mac_error = |source| NetifError::Mac {
        name: name.to_owned(),
        source,
    };
    // SAFETY: plain socket call; the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(mac_error(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, &byte) in request.ifr_name.iter_mut().zip(c_name.as_bytes()) {
        *slot = byte as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills the ifreq it is given.
    let status = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::SIOCGIFHWADDR,
            &mut request,
        )
    };
    if status != 0 {
        return Err(mac_error(std::io::Error::last_os_error()));
    }
    // SAFETY: SIOCGIFHWADDR set the hardware-address member of the union.
    let address = unsafe { request.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (octet, &byte) in mac.iter_mut().zip(&address) {
        *octet = byte as u8;
    }
    Ok(Interface { ifindex, mac })
}
