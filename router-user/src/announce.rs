//! VIP announcement for BGP (`[announce]`): the controller keeps a blackhole route for each
//! VIP in a kernel routing table of the operator's choosing, marked with a route protocol of
//! its own ([`ROUTE_PROTOCOL`]), and the host's BGP daemon announces what that table holds
//! (BIRD: `protocol kernel { kernel table N; learn; ... }`, README "Running a fleet"). No
//! packet is routed by that table: it is only where the controller says what to announce.
//!
//! The routes are the kernel's, so a controller that crashes leaves them (the data path
//! keeps routing, and stays announced), and a host that dies takes its BGP session, and so
//! its announcements, with it. The controller withdraws them when the operator says so
//! (`quic-router withdraw`), on `detach`, and while it finds the data path broken.

use std::{
    io::{self, Read as _},
    net::IpAddr,
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

/// The route protocol that marks the controller's routes (`ip route show table N proto 113`).
pub const ROUTE_PROTOCOL: u8 = 113;

/// `[announce]`: where the routes go, and how long `detach` waits after withdrawing them
/// before it removes the data path (for BGP to move the traffic away first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceSettings {
    pub table: u32,
    pub drain: Duration,
}

impl AnnounceSettings {
    /// The longest drain the config may give, in milliseconds.
    pub const MAX_DRAIN_MS: u64 = 600_000;
    /// The drain where the config is silent.
    pub const DEFAULT_DRAIN: Duration = Duration::from_secs(2);
}

/// Tables that are the kernel's own: `default`, `main`, `local` (and 0, none).
pub fn reserved_table(table: u32) -> bool {
    matches!(table, 0 | 253..=255)
}

#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("cannot talk to the kernel's routing (netlink): {0}")]
    Netlink(io::Error),
    #[error("cannot {action} the route to {vip} in table {table}: {source}")]
    Route {
        action: &'static str,
        vip: IpAddr,
        table: u32,
        source: io::Error,
    },
}

/// Puts the route that announces `vip` in `table`, unless one is there: a route that is
/// there is left alone, for a route written again is news to the BGP daemon (an update to
/// its peers, and their ECMP groups made again: flows could move between routers).
pub fn announce(table: u32, vip: IpAddr) -> Result<(), AnnounceError> {
    const CREATE_NEW: u16 = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    route(
        libc::RTM_NEWROUTE,
        CREATE_NEW,
        libc::EEXIST,
        "add",
        table,
        vip,
    )
}

/// Removes the route that announces `vip` from `table`, if it is there (only the
/// controller's: of its route protocol).
pub fn withdraw(table: u32, vip: IpAddr) -> Result<(), AnnounceError> {
    route(libc::RTM_DELROUTE, 0, libc::ESRCH, "remove", table, vip)
}

/// [`change`], with `done` (the kernel's word for "so already") as success.
fn route(
    kind: u16,
    flags: u16,
    done: i32,
    action: &'static str,
    table: u32,
    vip: IpAddr,
) -> Result<(), AnnounceError> {
    match change(kind, flags, table, vip) {
        Err(err) if err.raw_os_error() == Some(done) => Ok(()),
        result => result.map_err(|source| AnnounceError::Route {
            action,
            vip,
            table,
            source,
        }),
    }
}

/// Sends one route request (`kind`: RTM_NEWROUTE or RTM_DELROUTE) for a blackhole route to
/// `vip` in `table` of the controller's route protocol, and reads the kernel's answer.
fn change(kind: u16, flags: u16, table: u32, vip: IpAddr) -> io::Result<()> {
    let socket = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::RAW.cloexec(),
        Some(Protocol::from(libc::NETLINK_ROUTE)),
    )?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    let (family, address) = match vip {
        IpAddr::V4(v4) => (libc::AF_INET as u8, v4.octets().to_vec()),
        IpAddr::V6(v6) => (libc::AF_INET6 as u8, v6.octets().to_vec()),
    };
    const SEQUENCE: u32 = 1;
    let mut message = Vec::with_capacity(64);
    // struct nlmsghdr: length (below), type, flags, sequence, port (the kernel's: 0).
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&kind.to_ne_bytes());
    let flags = flags | (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    message.extend_from_slice(&flags.to_ne_bytes());
    message.extend_from_slice(&SEQUENCE.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    // struct rtmsg: family, destination length, source length, TOS, table (in RTA_TABLE),
    // protocol, scope (universe), type, flags.
    let prefix_len = (address.len() * 8) as u8;
    message.extend_from_slice(&[family, prefix_len, 0, 0, libc::RT_TABLE_UNSPEC]);
    message.extend_from_slice(&[ROUTE_PROTOCOL, libc::RT_SCOPE_UNIVERSE, libc::RTN_BLACKHOLE]);
    message.extend_from_slice(&0u32.to_ne_bytes());
    attribute(&mut message, libc::RTA_DST, &address);
    attribute(&mut message, libc::RTA_TABLE, &table.to_ne_bytes());
    let length = message.len() as u32;
    message[..4].copy_from_slice(&length.to_ne_bytes());
    socket.send_to(&message, &kernel())?;

    let mut answer = [0u8; 1024];
    let read = (&socket).read(&mut answer)?;
    // struct nlmsghdr, then struct nlmsgerr: a negative errno, or 0 for success.
    let field = |at: usize| answer.get(at..at + 4).filter(|_| at + 4 <= read);
    let (Some(kind), Some(error)) = (field(4), field(16)) else {
        return Err(io::Error::other("the kernel's answer is cut short"));
    };
    if u16::from_ne_bytes([kind[0], kind[1]]) != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::other(
            "the kernel's answer is not an acknowledgement",
        ));
    }
    match i32::from_ne_bytes(error.try_into().expect("four octets")) {
        0 => Ok(()),
        error => Err(io::Error::from_raw_os_error(-error)),
    }
}

/// Appends a route attribute (`struct rtattr` and its value, padded to four octets).
fn attribute(message: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let length = (4 + value.len()) as u16;
    message.extend_from_slice(&length.to_ne_bytes());
    message.extend_from_slice(&kind.to_ne_bytes());
    message.extend_from_slice(value);
    message.resize(message.len().next_multiple_of(4), 0);
}

/// The kernel's netlink address.
fn kernel() -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_nl is one of the platform's socket address types, smaller than the
    // storage.
    let address = unsafe { storage.view_as::<libc::sockaddr_nl>() };
    address.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: the storage holds an initialised sockaddr_nl of that length.
    unsafe { SockAddr::new(storage, size_of::<libc::sockaddr_nl>() as libc::socklen_t) }
}
