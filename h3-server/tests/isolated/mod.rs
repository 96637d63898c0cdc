//! A network namespace of the test's own whose loopback is all it has, so that the servers
//! and clients of these tests reach no other network. Needs root.

use std::io;

/// Moves the calling thread into a new network namespace and brings its loopback up
/// (127.0.0.1 and ::1). Sockets made on this thread afterwards live there; the namespace
/// goes with the last of them. Only system calls: safe between fork and exec.
pub fn enter() -> io::Result<()> {
    // SAFETY: plain system calls on memory owned here.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, &octet) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = octet as libc::c_char;
        }
        let mut result = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request);
        if result == 0 {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            result = libc::ioctl(fd, libc::SIOCSIFFLAGS, &request);
        }
        let error = io::Error::last_os_error();
        libc::close(fd);
        if result != 0 {
            return Err(error);
        }
    }
    Ok(())
}
