//! Network interfaces by name: index and MAC address, asked of the kernel in the calling
//! thread's network namespace (sysfs would show the namespace it was mounted in).

use std::{
    ffi::{CStr, CString},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::FromRawFd as _,
};

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
    let request =
        interface_request(&c_name, libc::SIOCGIFHWADDR).map_err(|source| NetifError::Mac {
            name: name.to_owned(),
            source,
        })?;
    // SAFETY: SIOCGIFHWADDR set the hardware-address member of the union.
    let address = unsafe { request.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (octet, &byte) in mac.iter_mut().zip(&address) {
        *octet = byte as u8;
    }
    Ok(Interface { ifindex, mac })
}

/// Whether interface `name` is up and has its carrier (`IFF_UP` and `IFF_RUNNING`).
pub fn running(name: &str) -> bool {
    let Ok(c_name) = CString::new(name) else {
        return false;
    };
    interface_request(&c_name, libc::SIOCGIFFLAGS).is_ok_and(|request| {
        // SAFETY: SIOCGIFFLAGS set the flags member of the union.
        let flags = i32::from(unsafe { request.ifr_ifru.ifru_flags });
        flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0
    })
}

/// The `ifreq` that the interface ioctl `request` fills for interface `name`.
fn interface_request(name: &CString, request: libc::Ioctl) -> std::io::Result<libc::ifreq> {
    if name.as_bytes_with_nul().len() > libc::IFNAMSIZ {
        return Err(std::io::Error::from_raw_os_error(libc::ENODEV));
    }
    // SAFETY: plain socket call; the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zero is a valid value.
    let mut ifreq: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, &byte) in ifreq.ifr_name.iter_mut().zip(name.as_bytes()) {
        *slot = byte as libc::c_char;
    }
    // SAFETY: the interface ioctls fill the ifreq they are given.
    let status = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            request,
            &mut ifreq,
        )
    };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ifreq)
}

/// Every interface's IPv4 and IPv6 addresses (link-local IPv6 ones left out), in the
/// kernel's order.
pub fn addresses() -> Vec<(String, IpAddr)> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list that freeifaddrs frees below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: a node of the list getifaddrs made, alive until freeifaddrs.
        let node = unsafe { &*entry };
        entry = node.ifa_next;
        if node.ifa_addr.is_null() || node.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says what it is.
        let address = match i32::from(unsafe { (*node.ifa_addr).sa_family }) {
            libc::AF_INET => {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*node.ifa_addr.cast::<libc::sockaddr_in>() };
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*node.ifa_addr.cast::<libc::sockaddr_in6>() };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => continue,
        };
        if matches!(address, IpAddr::V6(v6) if v6.is_unicast_link_local()) {
            continue;
        }
        // SAFETY: getifaddrs gives each node's name NUL-terminated.
        let name = unsafe { CStr::from_ptr(node.ifa_name) };
        found.push((name.to_string_lossy().into_owned(), address));
    }
    // SAFETY: the list getifaddrs made, freed once; nothing borrowed from it outlives this.
    unsafe { libc::freeifaddrs(list) };
    found
}
