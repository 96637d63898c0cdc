//! Local workers: server processes or threads on the router's own host that share the
//! listener's UDP port through `SO_REUSEPORT`, each with server IDs of its own. A worker
//! registers its socket as a backend's; the router's `SO_REUSEPORT` program (pinned by the
//! controller) then gives that socket every datagram whose DCID names the backend, and leaves
//! the rest (new connections, unroutable CIDs) to the kernel's 4-tuple hash.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
};

use aya::{
    maps::{MapData, ReusePortSockArray},
    programs::{ProgramError, SkReuseport, SkReuseportAttachType},
};
use router_common::maps::worker_socket_index;

use crate::{
    dataplane::{DataplaneError, open_pinned},
    pin::{PinError, RouterPaths},
    runstate::{RunState, RunStateError},
};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error("no router runs on {iface}: {source}")]
    NoRouter {
        iface: String,
        source: RunStateError,
    },
    #[error("no backend {0} in the router's config")]
    UnknownBackend(String),
    #[error("backend {0} is a host, not a local worker (set local_worker = true)")]
    NotLocal(String),
    #[error("the worker's socket: {0}")]
    Socket(io::Error),
    #[error("the router on {iface}: {source}")]
    Map {
        iface: String,
        source: DataplaneError,
    },
    #[error("the worker selection program of the router on {iface}: {source}")]
    Program { iface: String, source: ProgramError },
}

/// Registers `socket` as the socket of local worker `backend` of the router on `iface`, and
/// attaches the router's selection program to the socket's `SO_REUSEPORT` group. The socket
/// must be UDP, `SO_REUSEPORT`, and bound to the listener's port (one socket per address
/// family: a socket belongs to one group). Closing the socket unregisters it.
pub fn register_worker(
    iface: &str,
    backend: &str,
    socket: BorrowedFd<'_>,
) -> Result<(), LocalError> {
    let paths = RouterPaths::new(iface)?;
    let state = RunState::load(&paths.state()).map_err(|source| LocalError::NoRouter {
        iface: iface.to_owned(),
        source,
    })?;
    let record = state
        .backends
        .iter()
        .find(|b| b.name == backend)
        .ok_or_else(|| LocalError::UnknownBackend(backend.to_owned()))?;
    if !record.local_worker {
        return Err(LocalError::NotLocal(backend.to_owned()));
    }
    let index = worker_socket_index(record.index, is_ipv6(socket)?);
    let map_error = |source| LocalError::Map {
        iface: iface.to_owned(),
        source,
    };
    let mut sockets: ReusePortSockArray<MapData> =
        open_pinned(&paths.pin_dir, "WORKER_SOCKETS").map_err(map_error)?;
    sockets.set(index, &socket, 0).map_err(|source| {
        map_error(DataplaneError::Map {
            map: "WORKER_SOCKETS",
            source,
        })
    })?;
    let program_error = |source| LocalError::Program {
        iface: iface.to_owned(),
        source,
    };
    SkReuseport::from_pin(paths.worker_program(), SkReuseportAttachType::Select)
        .and_then(|program| program.attach(socket))
        .map_err(program_error)
}

/// Whether the IPv6 `socket` takes IPv6 only.
fn v6_only(socket: BorrowedFd<'_>) -> Result<bool, LocalError> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` octets into `value`.
    let status = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if status != 0 {
        return Err(LocalError::Socket(io::Error::last_os_error()));
    }
    Ok(value != 0)
}

/// Whether `socket` is an IPv6 socket (its group takes the IPv6 listener's datagrams).
fn is_ipv6(socket: BorrowedFd<'_>) -> Result<bool, LocalError> {
    // SAFETY: sockaddr_storage is plain data; all zeros is a valid value.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` octets into `addr`.
    let status = unsafe {
        libc::getsockname(
            socket.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if status != 0 {
        return Err(LocalError::Socket(io::Error::last_os_error()));
    }
    match i32::from(addr.ss_family) {
        libc::AF_INET => Ok(false),
        libc::AF_INET6 if v6_only(socket)? => Ok(true),
        libc::AF_INET6 => Err(LocalError::Socket(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an IPv6 socket must be IPV6_V6ONLY: IPv4 datagrams to a dual-stack socket are not in the IPv6 group's selection",
        ))),
        family => Err(LocalError::Socket(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("address family {family} is not IP"),
        ))),
    }
}
