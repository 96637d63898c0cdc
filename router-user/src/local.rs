//! Local workers: server processes or threads on the router's own host that share the
//! listener's UDP port through `SO_REUSEPORT`, each with server IDs of its own. A worker
//! registers its socket as a backend's; the router's `SO_REUSEPORT` program (pinned by the
//! controller) then gives that socket every datagram whose DCID names the backend, and the
//! datagrams whose DCID names no server (new connections, unroutable CIDs) to the worker the
//! fallback table picks for the 4-tuple, as the XDP program does. Only when that backend has
//! no socket in the group does the kernel choose, by its own 4-tuple hash.
//!
//! ```no_run
//! use std::{net::UdpSocket, os::fd::AsFd as _};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A worker's socket: SO_REUSEPORT, bound to the listener's address and port.
//! let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
//! socket.set_reuse_port(true)?;
//! socket.bind(&"198.18.0.10:443".parse::<std::net::SocketAddr>()?.into())?;
//! let socket: UdpSocket = socket.into();
//! // The router on eth0 has `worker0` (local_worker = true) in its config.
//! router_user::local::register_worker("eth0", "worker0", socket.as_fd())?;
//! # Ok(())
//! # }
//! ```

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
};

use aya::{
    maps::{MapData, MapError, ReusePortSockArray},
    programs::{ProgramError, SkReuseport, SkReuseportAttachType},
};
use router_common::maps::worker_socket_slot;

use crate::{
    pin::{PinError, RouterPaths},
    router::{PinnedRouter, RouterError},
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
    Router {
        iface: String,
        source: Box<RouterError>,
    },
    #[error("map WORKER_SOCKETS: {0}")]
    Map(MapError),
    #[error("the worker selection program: {0}")]
    Program(ProgramError),
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
    let mut sockets = PinnedRouter::new(&paths)
        .worker_sockets()
        .map_err(|source| LocalError::Router {
            iface: iface.to_owned(),
            source: Box::new(source),
        })?;
    let mut program = SkReuseport::from_pin(paths.worker_program(), SkReuseportAttachType::Select)
        .map_err(LocalError::Program)?;
    register_socket(&mut sockets, &mut program, record.index, socket)
}

/// Puts `socket` in the slot of local worker `backend` (an index) in `sockets` and attaches
/// `program` to the socket's `SO_REUSEPORT` group.
pub(crate) fn register_socket(
    sockets: &mut ReusePortSockArray<MapData>,
    program: &mut SkReuseport,
    backend: u32,
    socket: BorrowedFd<'_>,
) -> Result<(), LocalError> {
    let slot = worker_socket_slot(backend, is_ipv6(socket)?);
    sockets.set(slot, &socket, 0).map_err(LocalError::Map)?;
    program.attach(socket).map_err(LocalError::Program)?;
    Ok(())
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
