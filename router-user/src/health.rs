//! Backend health checks (`[health]`).
//!
//! The probe is a datagram every QUIC server answers without any support from it: a long
//! header with a reserved version (0x?a?a?a?a, RFC 9000 §15) draws a Version Negotiation
//! packet (§6.1) that echoes the probe's connection IDs, swapped; the datagram is padded to
//! 1200 octets, the least a server answers an unknown version for (§14.1).
//!
//! The controller sends it to the first listener's VIP and port the way the backend's packets
//! go: out of its interface to its next hop's MAC, or by the kernel's routes, inside GUE or
//! IP-in-IP from the router's outer source prefix when its delivery wraps. The probe's source
//! is one of the router's own addresses (never a VIP), so that the answer comes back to the
//! router, not to a client, and XDP passes it (it is for no listener). A backend that stops
//! answering `fall` probes in a row is down: it takes no new connection (as if draining; its
//! server IDs keep routing its own connections); `rise` answers in a row bring it back.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket},
    ops::Range,
    sync::Arc,
    time::{Duration, Instant},
};

use router_common::{
    flow_hash::{flow_addr, flow_hash},
    maps::{EncapConfig, gue_source_port},
};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};
use tokio::{
    net::UdpSocket,
    sync::{mpsc, watch},
};

use crate::{
    config::{Backend, BackendState, Delivery, Reach, RouterConfig},
    netif,
    tables::encap_config,
};

/// The version the probes carry: reserved for forcing version negotiation.
pub const PROBE_VERSION: u32 = 0x1a2a_3a4a;
/// A probe datagram's length: the least a server answers an unknown version for.
pub const PROBE_LEN: usize = 1200;
/// The length of each of a probe's connection IDs.
const CID_LEN: usize = 8;

/// One probe: its connection IDs tell its answer from any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    dcid: [u8; CID_LEN],
    scid: [u8; CID_LEN],
}

impl Probe {
    /// A probe with fresh random connection IDs.
    pub fn new() -> Self {
        Self {
            dcid: rand::random(),
            scid: rand::random(),
        }
    }

    /// The UDP payload to send: a long header (the fixed bit set, the Initial type), the
    /// reserved version, both connection IDs, and padding to [`PROBE_LEN`].
    pub fn datagram(&self) -> Vec<u8> {
        let mut datagram = Vec::with_capacity(PROBE_LEN);
        datagram.push(0xc0);
        datagram.extend_from_slice(&PROBE_VERSION.to_be_bytes());
        datagram.push(CID_LEN as u8);
        datagram.extend_from_slice(&self.dcid);
        datagram.push(CID_LEN as u8);
        datagram.extend_from_slice(&self.scid);
        datagram.resize(PROBE_LEN, 0);
        datagram
    }

    /// Whether `reply` (a UDP payload) is the Version Negotiation packet that answers this
    /// probe: a long header of version 0 whose destination CID is the probe's source CID
    /// and whose source CID is the probe's destination CID, listing at least one version
    /// (and not the probe's).
    pub fn answered_by(&self, reply: &[u8]) -> bool {
        let Some((&first, rest)) = reply.split_first() else {
            return false;
        };
        if first & 0x80 == 0 || rest.get(..4) != Some(&[0; 4]) {
            return false;
        }
        let rest = &rest[4..];
        let Some((dcid, rest)) = length_prefixed(rest) else {
            return false;
        };
        let Some((scid, versions)) = length_prefixed(rest) else {
            return false;
        };
        dcid == self.scid
            && scid == self.dcid
            && !versions.is_empty()
            && versions.len() % 4 == 0
            && versions
                .chunks_exact(4)
                .all(|v| v != PROBE_VERSION.to_be_bytes())
    }
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

/// A one-octet length and that many octets, and what follows.
fn length_prefixed(octets: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = octets.split_first()?;
    let len = usize::from(len);
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// `[health]`: how often each backend is probed, and how many answers (`rise`) or silences
/// (`fall`) in a row change its state. A probe is unanswered when the next one is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    pub interval: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl HealthSettings {
    /// The intervals the config may give, in milliseconds.
    pub const INTERVALS_MS: Range<u64> = 100..60_001;
    /// The rise and fall counts the config may give.
    pub const COUNTS: Range<u64> = 1..101;
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }
}

/// A backend's health as the checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Answers its probes: takes new connections as its state says.
    Up,
    /// Stopped answering: takes no new connection.
    Down,
    /// Cannot be probed (a local worker, no address to probe from): routed as if up.
    Unchecked,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unchecked => "unchecked",
        }
    }
}

/// A backend's health in the run state: since when (Unix seconds), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRecord {
    pub health: Health,
    pub detail: String,
    pub since: u64,
}

/// A backend's health, first known or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub backend: String,
    pub health: Health,
    pub detail: String,
}

/// What the checks probe: the config applied (its backends, first listener and
/// encapsulation) and the health each backend had before (a restarted controller's run
/// state); a backend seen for the first time starts up.
#[derive(Debug, Clone)]
pub struct Plan {
    pub settings: HealthSettings,
    pub config: Arc<RouterConfig>,
    pub known: BTreeMap<String, Health>,
}

/// `config` as the data path is to run it while the backends in `down` fail their checks:
/// those that are active take no new connection (as if draining; their server IDs keep
/// routing). If that would leave no active backend, nothing changes (failing open: new
/// connections still go somewhere, and checks that all fail at once more likely say that the
/// checking is broken); the flag says so.
pub fn without_new_connections(
    config: &RouterConfig,
    down: &BTreeSet<String>,
) -> (RouterConfig, bool) {
    let active = config
        .backends
        .iter()
        .filter(|b| b.state == BackendState::Active)
        .map(|b| b.name.as_str());
    let mut effective = config.clone();
    if fails_open(active, down) {
        return (effective, true);
    }
    for backend in &mut effective.backends {
        if down.contains(&backend.name) {
            backend.state = BackendState::Draining;
        }
    }
    (effective, false)
}

/// The records of `records` that `config` keeps: its backends', none without `[health]`.
pub fn kept(
    config: &RouterConfig,
    records: &BTreeMap<String, HealthRecord>,
) -> BTreeMap<String, HealthRecord> {
    if config.health.is_none() {
        return BTreeMap::new();
    }
    records
        .iter()
        .filter(|(name, _)| config.backends.iter().any(|b| &b.name == *name))
        .map(|(name, record)| (name.clone(), record.clone()))
        .collect()
}

/// Whether the checks fail open: there are active backends (by name), and every one of
/// them is `down`.
pub fn fails_open<'a>(mut active: impl Iterator<Item = &'a str>, down: &BTreeSet<String>) -> bool {
    let mut any = false;
    let all_down = active.all(|name| {
        any = true;
        down.contains(name)
    });
    any && all_down
}

/// A backend's run of answers (or silences) that disagree with its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    up: bool,
    streak: u32,
}

impl Tally {
    /// Counts one probe, answered or not; the new state when the run reaches `rise` (down)
    /// or `fall` (up).
    fn count(&mut self, answered: bool, settings: &HealthSettings) -> Option<bool> {
        if answered == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up {
            settings.fall
        } else {
            settings.rise
        };
        if self.streak < needed {
            return None;
        }
        self.up = answered;
        self.streak = 0;
        Some(self.up)
    }
}

/// How a probe leaves the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Out of an interface (`ifindex`) to the next hop: the Ethernet destination and
    /// source.
    Link { ifindex: u32, macs: [u8; 12] },
    /// By the kernel's routes.
    Routed,
}

/// The outer headers of a wrapped probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wrap {
    tunnel: IpAddr,
    /// GUE's port; none for IP-in-IP.
    gue_port: Option<u16>,
}

/// Where a backend's probe goes, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    /// The listener probed.
    vip: SocketAddr,
    /// The router's address the answer comes back to.
    source: IpAddr,
    exit: Exit,
    wrap: Option<Wrap>,
}

impl Target {
    /// The way to `backend`'s first listener, or why it cannot be probed.
    fn of(
        backend: &Backend,
        config: &RouterConfig,
        addresses: &[(String, IpAddr)],
    ) -> Result<Self, String> {
        let listener = config.listeners.first().ok_or("no listener to probe")?;
        let vip = SocketAddr::new(listener.address, listener.port);
        let family = if vip.is_ipv6() { "IPv6" } else { "IPv4" };
        let (exit, delivery, source) = match &backend.reach {
            Reach::LocalWorker => {
                return Err(
                    "a local worker: its socket leaves the SO_REUSEPORT group when it closes"
                        .to_owned(),
                );
            }
            Reach::Host {
                interface,
                next_hop_mac,
                delivery,
            } => {
                let link = netif::lookup(interface).map_err(|err| err.to_string())?;
                let mut macs = [0; 12];
                macs[..6].copy_from_slice(next_hop_mac);
                macs[6..].copy_from_slice(&link.mac);
                let source =
                    own_address(config, addresses, interface, vip.is_ipv6()).ok_or_else(|| {
                        format!("no {family} address on {interface} to probe from (VIPs are not)")
                    })?;
                let exit = Exit::Link {
                    ifindex: link.ifindex,
                    macs,
                };
                (exit, delivery, source)
            }
            Reach::Routed { delivery } => {
                // The address the kernel sends from toward the tunnel, or (another family)
                // one of the VIP's family on the same interface.
                let (Delivery::Gue { tunnel } | Delivery::Ipip { tunnel }) = *delivery else {
                    return Err("a routed backend without a tunnel".to_owned());
                };
                let toward = kernel_source(tunnel)
                    .ok_or_else(|| format!("no route to {tunnel} to probe by"))?;
                let source = if toward.is_ipv6() == vip.is_ipv6() {
                    Some(toward)
                } else {
                    addresses
                        .iter()
                        .find(|&&(_, held)| held == toward)
                        .and_then(|(interface, _)| {
                            own_address(config, addresses, interface, vip.is_ipv6())
                        })
                };
                let source = source.ok_or_else(|| {
                    format!("no {family} address on the way to {tunnel} to probe from")
                })?;
                (Exit::Routed, delivery, source)
            }
        };
        if is_vip(config, source) {
            return Err(format!("the address to probe from, {source}, is a VIP"));
        }
        let wrap = match *delivery {
            Delivery::L2 => None,
            Delivery::Gue { tunnel } => Some(Wrap {
                tunnel,
                gue_port: config.encapsulation.gue_port,
            }),
            Delivery::Ipip { tunnel } => Some(Wrap {
                tunnel,
                gue_port: None,
            }),
        };
        Ok(Self {
            vip,
            source,
            exit,
            wrap,
        })
    }

    /// Where the IP packet is addressed: the tunnel, or the VIP.
    fn outer_destination(&self) -> IpAddr {
        self.wrap.map_or(self.vip.ip(), |wrap| wrap.tunnel)
    }

    /// The probe as an IP packet from the router's `source`:`reply_port` to the VIP, wrapped
    /// as the data path wraps the backend's packets (`encap`: the outer source prefixes).
    fn packet(&self, reply_port: u16, datagram: &[u8], encap: &EncapConfig) -> Vec<u8> {
        let inner = udp_packet(SocketAddr::new(self.source, reply_port), self.vip, datagram);
        let Some(wrap) = self.wrap else {
            return inner;
        };
        let (_, source) = flow_addr(self.source);
        let (_, vip) = flow_addr(self.vip.ip());
        let hash = flow_hash(&source, &vip, reply_port.to_be(), self.vip.port().to_be());
        let outer_v6 = wrap.tunnel.is_ipv6();
        let octets = encap.outer_source(outer_v6, hash);
        let outer_source = if outer_v6 {
            IpAddr::V6(Ipv6Addr::from(octets))
        } else {
            IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
        };
        let inner_protocol = if self.source.is_ipv6() {
            IPPROTO_IPV6
        } else {
            IPPROTO_IPIP
        };
        let mut payload = Vec::new();
        let protocol = match wrap.gue_port {
            Some(port) => {
                let length = (UDP_HLEN + GUE_HLEN + inner.len()) as u16;
                payload.extend_from_slice(&gue_source_port(hash).to_be_bytes());
                payload.extend_from_slice(&port.to_be_bytes());
                payload.extend_from_slice(&length.to_be_bytes());
                // No checksum (as the data path), then GUE version 0 with no options.
                payload.extend_from_slice(&[0, 0, 0, inner_protocol, 0, 0]);
                IPPROTO_UDP
            }
            None => inner_protocol,
        };
        payload.extend_from_slice(&inner);
        // An outer IPv6 header's flow label from the hash, as the data path writes it.
        ip_packet(
            outer_source,
            wrap.tunnel,
            protocol,
            &payload,
            hash & 0xf_ffff,
        )
    }
}

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const UDP_HLEN: usize = 8;
const GUE_HLEN: usize = 4;

fn is_vip(config: &RouterConfig, address: IpAddr) -> bool {
    config.listeners.iter().any(|l| l.address == address)
}

/// An address of the family (IPv6 if `v6`) on `interface` that is not a VIP, of the host's
/// `addresses` (interface, address).
fn own_address(
    config: &RouterConfig,
    addresses: &[(String, IpAddr)],
    interface: &str,
    v6: bool,
) -> Option<IpAddr> {
    addresses
        .iter()
        .map(|(name, address)| (name, *address))
        .find(|&(name, address)| {
            name == interface && address.is_ipv6() == v6 && !is_vip(config, address)
        })
        .map(|(_, address)| address)
}

/// The source address the kernel picks to reach `destination`, if it has a route.
fn kernel_source(destination: IpAddr) -> Option<IpAddr> {
    let unspecified = match destination {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    // Connecting a UDP socket sends nothing; it only picks the route and the source.
    let socket = StdUdpSocket::bind((unspecified, 0)).ok()?;
    socket.connect((destination, 9)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// An IPv4 (checksummed, don't fragment) or IPv6 (with `flow_label`) packet of `protocol`
/// around `payload`.
fn ip_packet(
    source: IpAddr,
    destination: IpAddr,
    protocol: u8,
    payload: &[u8],
    flow_label: u32,
) -> Vec<u8> {
    let mut packet = Vec::with_capacity(40 + payload.len());
    match (source, destination) {
        (IpAddr::V4(source), IpAddr::V4(destination)) => {
            packet.extend_from_slice(&[0x45, 0]);
            packet.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
            packet.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
            packet.extend_from_slice(&source.octets());
            packet.extend_from_slice(&destination.octets());
            let checksum = !fold(sum(&packet));
            packet[10..12].copy_from_slice(&checksum.to_be_bytes());
        }
        _ => {
            packet.extend_from_slice(&(0x6000_0000 | flow_label & 0xf_ffff).to_be_bytes());
            packet.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            packet.extend_from_slice(&[protocol, 64]);
            packet.extend_from_slice(&ipv6_octets(source));
            packet.extend_from_slice(&ipv6_octets(destination));
        }
    }
    packet.extend_from_slice(payload);
    packet
}

/// A UDP datagram in its IP packet, checksummed.
fn udp_packet(source: SocketAddr, destination: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let length = (UDP_HLEN + payload.len()) as u16;
    let mut udp = Vec::with_capacity(usize::from(length));
    udp.extend_from_slice(&source.port().to_be_bytes());
    udp.extend_from_slice(&destination.port().to_be_bytes());
    udp.extend_from_slice(&length.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    // The pseudo-header: both addresses, the protocol and the length.
    let mut pseudo = Vec::with_capacity(40);
    for address in [source.ip(), destination.ip()] {
        match address {
            IpAddr::V4(v4) => pseudo.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => pseudo.extend_from_slice(&v6.octets()),
        }
    }
    pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
    pseudo.extend_from_slice(&length.to_be_bytes());
    let checksum = match !fold(sum(&pseudo) + sum(&udp)) {
        // Zero means "no checksum": its other form.
        0 => 0xffff,
        checksum => checksum,
    };
    udp[6..8].copy_from_slice(&checksum.to_be_bytes());
    ip_packet(source.ip(), destination.ip(), IPPROTO_UDP, &udp, 0)
}

fn ipv6_octets(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V6(v6) => v6.octets(),
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
    }
}

/// The one's complement sum of `octets` as 16-bit words (a last odd octet padded), unfolded.
fn sum(octets: &[u8]) -> u64 {
    octets
        .chunks(2)
        .map(|word| u64::from(u16::from_be_bytes([word[0], *word.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The sockets the checks use: raw ones to send (out of an interface, or routed by family)
/// and a UDP socket per family that the answers come back to. Each is opened once; one that
/// cannot be opened is why its probes are unchecked.
struct Sockets {
    link: Result<Socket, String>,
    routed4: Result<Socket, String>,
    routed6: Result<Socket, String>,
    answers4: Result<UdpSocket, String>,
    answers6: Result<UdpSocket, String>,
}

impl Sockets {
    fn open() -> Self {
        let raw = |domain: Domain, protocol: Option<Protocol>| {
            let socket = Socket::new(domain, Type::RAW.cloexec(), protocol)?;
            socket.set_nonblocking(true)?;
            Ok::<_, io::Error>(socket)
        };
        fn error(what: &'static str) -> impl Fn(io::Error) -> String {
            move |err| format!("cannot open {what}: {err}")
        }
        // IPPROTO_RAW: the packets carry their own IP header.
        let ip_raw = Some(Protocol::from(libc::IPPROTO_RAW));
        Self {
            // Protocol 0: sends only, receives nothing.
            link: raw(Domain::PACKET, None).map_err(error("a packet socket")),
            routed4: raw(Domain::IPV4, ip_raw).map_err(error("a raw IPv4 socket")),
            routed6: raw(Domain::IPV6, ip_raw).map_err(error("a raw IPv6 socket")),
            answers4: answer_socket(false).map_err(error("a UDP socket for IPv4 answers")),
            answers6: answer_socket(true).map_err(error("a UDP socket for IPv6 answers")),
        }
    }

    /// The socket the answers to probes of this family come back to, and its port.
    fn answers(&self, v6: bool) -> Result<u16, String> {
        let socket = if v6 { &self.answers6 } else { &self.answers4 };
        let socket = socket.as_ref().map_err(Clone::clone)?;
        socket
            .local_addr()
            .map(|address| address.port())
            .map_err(|err| err.to_string())
    }

    /// Sends `packet` (an IP packet) for `target`: `Ok(false)` if the socket had no room
    /// for it (not the backend's fault: the probe does not count).
    fn send(&self, target: &Target, packet: &[u8]) -> Result<bool, String> {
        let outer_v6 = target.outer_destination().is_ipv6();
        let sent = match target.exit {
            Exit::Link { ifindex, macs } => {
                let socket = self.link.as_ref().map_err(Clone::clone)?;
                let ethertype: u16 = if outer_v6 { 0x86dd } else { 0x0800 };
                let mut frame = Vec::with_capacity(14 + packet.len());
                frame.extend_from_slice(&macs);
                frame.extend_from_slice(&ethertype.to_be_bytes());
                frame.extend_from_slice(packet);
                socket.send_to(&frame, &link_address(ifindex, ethertype, &macs))
            }
            Exit::Routed => {
                let socket = if outer_v6 {
                    &self.routed6
                } else {
                    &self.routed4
                };
                let socket = socket.as_ref().map_err(Clone::clone)?;
                let destination = SocketAddr::new(target.outer_destination(), 0);
                socket.send_to(packet, &destination.into())
            }
        };
        match sent {
            Ok(_) => Ok(true),
            Err(err)
                if err.kind() == io::ErrorKind::WouldBlock
                    || err.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                Ok(false)
            }
            Err(err) => Err(format!("cannot send: {err}")),
        }
    }
}

/// A UDP socket of its own port for the answers of one family.
fn answer_socket(v6: bool) -> io::Result<UdpSocket> {
    let (domain, unspecified) = if v6 {
        (Domain::IPV6, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    } else {
        (Domain::IPV4, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    };
    let socket = Socket::new(domain, Type::DGRAM.cloexec(), None)?;
    if v6 {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(unspecified, 0).into())?;
    UdpSocket::from_std(socket.into())
}

/// The packet socket address of interface `ifindex` and the frame's destination MAC.
fn link_address(ifindex: u32, ethertype: u16, macs: &[u8; 12]) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is one of the platform's socket address types, smaller than the
    // storage.
    let link = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    link.sll_family = libc::AF_PACKET as u16;
    link.sll_protocol = ethertype.to_be();
    link.sll_ifindex = ifindex as i32;
    link.sll_halen = 6;
    link.sll_addr[..6].copy_from_slice(&macs[..6]);
    // SAFETY: the storage holds an initialised sockaddr_ll of that length.
    unsafe { SockAddr::new(storage, size_of::<libc::sockaddr_ll>() as libc::socklen_t) }
}

/// A probe in flight: its backend, when it is counted, and whether it was answered.
struct Sent {
    backend: String,
    probe: Probe,
    vip: SocketAddr,
    due: Instant,
    answered: bool,
}

/// The probes in flight, found by the connection ID their answer echoes, counted in the
/// order they were sent.
#[derive(Default)]
struct InFlight {
    by_cid: HashMap<[u8; CID_LEN], Sent>,
    order: VecDeque<[u8; CID_LEN]>,
}

impl InFlight {
    fn push(&mut self, sent: Sent) {
        let cid = sent.probe.scid;
        self.order.push_back(cid);
        self.by_cid.insert(cid, sent);
    }

    /// Marks the probe that `reply`, from `from`, answers (if any): it must come from the VIP
    /// and port probed, and be that probe's own Version Negotiation.
    fn answered(&mut self, reply: &[u8], from: SocketAddr) {
        // A Version Negotiation's DCID (the probe's SCID) follows the first octet, the
        // version and its length.
        let Some(cid) = reply
            .get(5..6 + CID_LEN)
            .filter(|header| usize::from(header[0]) == CID_LEN)
            .and_then(|header| <[u8; CID_LEN]>::try_from(&header[1..]).ok())
        else {
            return;
        };
        if let Some(sent) = self.by_cid.get_mut(&cid)
            && sent.vip == from
            && sent.probe.answered_by(reply)
        {
            sent.answered = true;
        }
    }

    /// The oldest probe, if it is due to be counted at `now`.
    fn due(&mut self, now: Instant) -> Option<Sent> {
        let cid = *self.order.front()?;
        if self.by_cid.get(&cid).is_some_and(|sent| sent.due > now) {
            return None;
        }
        self.order.pop_front();
        self.by_cid.remove(&cid)
    }
}

/// One backend's health as the checks last reported it, and its tally.
struct Watched {
    tally: Tally,
    reported: Option<(Health, String)>,
    /// Why the last probe could not be sent, if it could not.
    send_error: Option<String>,
}

/// The fewest milliseconds between two probes: at most a thousand a second, whatever the
/// number of backends (more backends than that make each one's interval longer).
const MIN_PACE: Duration = Duration::from_millis(1);

/// Runs the checks of the latest plan until `plans` closes: each backend probed once an
/// interval, the probes spread over it, each answer counted an interval after its probe;
/// reports each backend's health when first known and at each change.
pub async fn run(mut plans: watch::Receiver<Option<Plan>>, changes: mpsc::Sender<Change>) {
    let sockets = Sockets::open();
    let mut watched: BTreeMap<String, Watched> = BTreeMap::new();
    let (mut buffer4, mut buffer6) = ([0u8; 1500], [0u8; 1500]);
    loop {
        let Some(plan) = plans.borrow_and_update().clone() else {
            watched.clear();
            if plans.changed().await.is_err() {
                return;
            }
            continue;
        };
        watched.retain(|name, _| plan.config.backends.iter().any(|b| &b.name == name));
        let encap = encap_config(&plan.config.encapsulation);
        let backends = plan.config.backends.len().max(1) as u32;
        let mut pace = tokio::time::interval((plan.settings.interval / backends).max(MIN_PACE));
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next = 0;
        // Each backend's way, found once a cycle (one look at the host's addresses).
        let mut targets: Vec<Result<Target, String>> = Vec::new();
        let mut in_flight = InFlight::default();
        // Only the VIP probed answers: the kernel drops the rest.
        if let Some(listener) = plan.config.listeners.first() {
            let vip = SocketAddr::new(listener.address, listener.port);
            let socket = if vip.is_ipv6() {
                &sockets.answers6
            } else {
                &sockets.answers4
            };
            if let Ok(socket) = socket {
                let _ = socket.connect(vip).await;
            }
        }
        loop {
            tokio::select! {
                // Answers waiting are taken before a probe is counted.
                biased;
                Some((length, from)) = receive(&sockets.answers4, &mut buffer4) => {
                    in_flight.answered(&buffer4[..length], from);
                }
                Some((length, from)) = receive(&sockets.answers6, &mut buffer6) => {
                    in_flight.answered(&buffer6[..length], from);
                }
                _ = pace.tick() => {
                    let now = Instant::now();
                    while let Some(sent) = in_flight.due(now) {
                        let Some(entry) = watched.get_mut(&sent.backend) else {
                            continue;
                        };
                        entry.tally.count(sent.answered, &plan.settings);
                        // Up is reported on an answer, not assumed (after an unchecked spell
                        // too).
                        let known = matches!(entry.reported, Some((Health::Up | Health::Down, _)));
                        if !known && entry.tally.up && !sent.answered {
                            continue;
                        }
                        let health = if entry.tally.up { Health::Up } else { Health::Down };
                        let detail = match (&entry.send_error, health) {
                            (Some(error), Health::Down) => error.clone(),
                            (_, Health::Down) => format!("no answer to {} probes in a row", plan.settings.fall),
                            _ => "answers its probes".to_owned(),
                        };
                        if report(entry, &sent.backend, health, detail, &changes).await.is_err() {
                            return;
                        }
                    }
                    if next == 0 {
                        let addresses = netif::addresses();
                        targets = plan
                            .config
                            .backends
                            .iter()
                            .map(|backend| Target::of(backend, &plan.config, &addresses))
                            .collect();
                    }
                    let (Some(backend), Some(target)) =
                        (plan.config.backends.get(next), targets.get(next).cloned())
                    else {
                        continue;
                    };
                    next = (next + 1) % plan.config.backends.len();
                    let entry = watched.entry(backend.name.clone()).or_insert_with(|| Watched {
                        tally: Tally {
                            up: plan.known.get(&backend.name) != Some(&Health::Down),
                            streak: 0,
                        },
                        reported: None,
                        send_error: None,
                    });
                    let probe = Probe::new();
                    let target = target.and_then(|target| {
                        let port = sockets.answers(target.vip.is_ipv6())?;
                        Ok((target, port))
                    });
                    let (target, port) = match target {
                        Ok(target) => target,
                        Err(why) => {
                            // A down backend that cannot be probed stays down: nothing says
                            // it is back.
                            let (health, detail) = if entry.tally.up {
                                (Health::Unchecked, why)
                            } else {
                                (Health::Down, format!("cannot be probed: {why}"))
                            };
                            if report(entry, &backend.name, health, detail, &changes).await.is_err() {
                                return;
                            }
                            continue;
                        }
                    };
                    let packet = target.packet(port, &probe.datagram(), &encap);
                    match sockets.send(&target, &packet) {
                        Ok(true) => entry.send_error = None,
                        // No room in the socket: this probe does not count.
                        Ok(false) => continue,
                        Err(err) => entry.send_error = Some(err),
                    }
                    in_flight.push(Sent {
                        backend: backend.name.clone(),
                        probe,
                        vip: target.vip,
                        due: now + plan.settings.interval,
                        answered: false,
                    });
                }
                changed = plans.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Reports `backend`'s health unless it is what was reported last; an error if the
/// controller has gone.
async fn report(
    entry: &mut Watched,
    backend: &str,
    health: Health,
    detail: String,
    changes: &mpsc::Sender<Change>,
) -> Result<(), ()> {
    if entry.reported.as_ref() == Some(&(health, detail.clone())) {
        return Ok(());
    }
    entry.reported = Some((health, detail.clone()));
    changes
        .send(Change {
            backend: backend.to_owned(),
            health,
            detail,
        })
        .await
        .map_err(drop)
}

/// The next datagram on `socket` (never, without one): its length and source.
async fn receive(
    socket: &Result<UdpSocket, String>,
    buffer: &mut [u8],
) -> Option<(usize, SocketAddr)> {
    match socket {
        Ok(socket) => socket.recv_from(buffer).await.ok(),
        Err(_) => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: HealthSettings = HealthSettings {
        interval: Duration::from_secs(1),
        rise: 2,
        fall: 3,
    };

    #[test]
    fn a_backend_goes_down_after_fall_silences_in_a_row_and_up_after_rise_answers() {
        let mut tally = Tally {
            up: true,
            streak: 0,
        };
        // An answer between silences starts the count again.
        for answered in [false, false, true, false, false] {
            assert_eq!(tally.count(answered, &SETTINGS), None);
        }
        assert_eq!(tally.count(false, &SETTINGS), Some(false));
        assert_eq!(tally.count(false, &SETTINGS), None);
        assert_eq!(tally.count(true, &SETTINGS), None);
        assert_eq!(tally.count(false, &SETTINGS), None);
        assert_eq!(tally.count(true, &SETTINGS), None);
        assert_eq!(tally.count(true, &SETTINGS), Some(true));
        assert_eq!(tally.count(true, &SETTINGS), None);
    }

    fn down(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|&name| name.to_owned()).collect()
    }

    #[test]
    fn checks_fail_open_only_when_every_active_backend_is_down() {
        assert!(fails_open(["a", "b"].into_iter(), &down(&["a", "b"])));
        assert!(!fails_open(["a", "b"].into_iter(), &down(&["a"])));
        assert!(!fails_open([].into_iter(), &down(&["a"])));
        assert!(!fails_open(["a"].into_iter(), &down(&[])));
    }

    /// RFC 1071's sum over `octets`, written apart from the code under test (16-bit adds
    /// with end-around carry): 0xffff when a checksum inside is right.
    fn verify(octets: &[u8]) -> u16 {
        let mut sum: u16 = 0;
        for pair in octets.chunks(2) {
            let word = u16::from(pair[0]) << 8 | u16::from(pair.get(1).copied().unwrap_or(0));
            let (added, carried) = sum.overflowing_add(word);
            sum = added + u16::from(carried);
        }
        sum
    }

    /// The UDP pseudo-header and datagram of a packet whose IP header is `ip_len` octets.
    fn udp_with_pseudo_header(packet: &[u8], v6: bool) -> Vec<u8> {
        let (addresses, ip_len) = if v6 { (8..40, 40) } else { (12..20, 20) };
        let udp = &packet[ip_len..];
        let mut checked = packet[addresses].to_vec();
        checked.extend_from_slice(&[0, IPPROTO_UDP]);
        checked.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        checked.extend_from_slice(udp);
        checked
    }

    #[test]
    fn probes_are_udp_from_the_routers_address_to_the_vip_with_right_checksums() {
        let datagram = Probe::new().datagram();
        for (source, vip) in [
            ("198.18.1.1:40000", "198.18.0.10:443"),
            ("[2001:db8:1::1]:40000", "[2001:db8::10]:443"),
        ] {
            let (source, vip): (SocketAddr, SocketAddr) =
                (source.parse().unwrap(), vip.parse().unwrap());
            let packet = udp_packet(source, vip, &datagram);
            let v6 = vip.is_ipv6();
            let ip_len = if v6 { 40 } else { 20 };
            assert_eq!(packet.len(), ip_len + UDP_HLEN + PROBE_LEN);
            if !v6 {
                assert_eq!(verify(&packet[..20]), 0xffff, "IPv4 header checksum");
                assert_eq!(packet[8], 64);
                assert_eq!(packet[9], IPPROTO_UDP);
            } else {
                assert_eq!(packet[6], IPPROTO_UDP);
                assert_eq!(
                    usize::from(u16::from_be_bytes([packet[4], packet[5]])),
                    UDP_HLEN + PROBE_LEN
                );
            }
            assert_eq!(
                verify(&udp_with_pseudo_header(&packet, v6)),
                0xffff,
                "UDP checksum"
            );
            let udp = &packet[ip_len..];
            assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), 40000);
            assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 443);
            assert_eq!(&udp[UDP_HLEN..], datagram.as_slice());
        }
    }

    fn target(vip: &str, source: &str, wrap: Option<Wrap>) -> Target {
        Target {
            vip: vip.parse().unwrap(),
            source: source.parse().unwrap(),
            exit: Exit::Routed,
            wrap,
        }
    }

    #[test]
    fn wrapped_probes_carry_the_outer_headers_the_data_path_writes() {
        let mut encap = EncapConfig {
            source4: [198, 18, 100, 0],
            source4_hosts: [0, 0, 0, 0xff],
            source6: "2001:db8:100::".parse::<Ipv6Addr>().unwrap().octets(),
            source6_hosts: [0, 0, 0xff, 0xff],
            ..EncapConfig::default()
        };
        encap.gue_port_be = 6080u16.to_be();
        let datagram = Probe::new().datagram();
        let gue = Wrap {
            tunnel: "198.18.21.2".parse().unwrap(),
            gue_port: Some(6080),
        };
        let probe = target("198.18.0.10:443", "198.18.9.1", Some(gue));
        let packet = probe.packet(40000, &datagram, &encap);
        let inner = udp_packet("198.18.9.1:40000".parse().unwrap(), probe.vip, &datagram);
        assert_eq!(verify(&packet[..20]), 0xffff);
        assert_eq!(packet[9], IPPROTO_UDP);
        assert_eq!(
            &packet[12..15],
            &[198, 18, 100],
            "outer source in the prefix"
        );
        assert_eq!(&packet[16..20], &[198, 18, 21, 2]);
        let udp = &packet[20..];
        assert!(u16::from_be_bytes([udp[0], udp[1]]) >= 0xc000);
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 6080);
        assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
        assert_eq!(&udp[6..12], &[0, 0, 0, IPPROTO_IPIP, 0, 0]);
        assert_eq!(&udp[12..], inner.as_slice());

        // IP-in-IP over IPv6 around an IPv6 probe.
        let ipip = Wrap {
            tunnel: "2001:db8:21::2".parse().unwrap(),
            gue_port: None,
        };
        let probe = target("[2001:db8::10]:443", "2001:db8:9::1", Some(ipip));
        let packet = probe.packet(40000, &datagram, &encap);
        let inner = udp_packet(
            "[2001:db8:9::1]:40000".parse().unwrap(),
            probe.vip,
            &datagram,
        );
        assert_eq!(packet[6], IPPROTO_IPV6);
        let (_, source) = flow_addr(probe.source);
        let (_, vip) = flow_addr(probe.vip.ip());
        let hash = flow_hash(&source, &vip, 40000u16.to_be(), 443u16.to_be());
        let label = u32::from_be_bytes(packet[..4].try_into().unwrap()) & 0xf_ffff;
        assert_eq!(label, hash & 0xf_ffff, "the flow label from the hash");
        assert_eq!(
            &packet[8..20],
            &encap.source6[..12],
            "outer source in the prefix"
        );
        assert_eq!(&packet[24..40], &ipv6_octets(ipip.tunnel));
        assert_eq!(&packet[40..], inner.as_slice());
    }

    #[test]
    fn an_answer_counts_only_from_the_vip_probed_and_probes_are_counted_when_due() {
        let probe = Probe::new();
        let vip: SocketAddr = "198.18.0.10:443".parse().unwrap();
        let datagram = probe.datagram();
        // The Version Negotiation the probe draws: CIDs swapped, one version listed.
        let mut reply = vec![0x80, 0, 0, 0, 0, 8];
        reply.extend_from_slice(&datagram[15..23]);
        reply.push(8);
        reply.extend_from_slice(&datagram[6..14]);
        reply.extend_from_slice(&1u32.to_be_bytes());
        let now = Instant::now();
        let mut in_flight = InFlight::default();
        for (backend, probe, due) in [
            ("alpha", probe, now),
            ("beta", Probe::new(), now + Duration::from_secs(1)),
        ] {
            in_flight.push(Sent {
                backend: backend.into(),
                probe,
                vip,
                due,
                answered: false,
            });
        }
        in_flight.answered(&reply, "198.18.0.11:443".parse().unwrap());
        in_flight.answered(&reply, "198.18.0.10:444".parse().unwrap());
        in_flight.answered(&reply[..20], vip);
        in_flight.answered(&reply, vip);
        let alpha = in_flight.due(now).expect("alpha is due");
        assert_eq!(alpha.backend, "alpha");
        assert!(alpha.answered);
        assert!(in_flight.due(now).is_none(), "beta is not due yet");
        let beta = in_flight
            .due(now + Duration::from_secs(1))
            .expect("beta is due");
        assert!(!beta.answered, "alpha's answer is not beta's");
    }
}
