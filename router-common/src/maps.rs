//! The maps that user space fills and the XDP program reads, and the counters it keeps.
//!
//! # Generations
//!
//! Every routing table exists twice, once per generation (0 and 1), and [`Control`] names the
//! generation that packets use: the low bit of its epoch, which counts the changes applied.
//! The program reads it once per packet and makes every other lookup in that generation. User
//! space writes a change into the other generation, bumps [`Control::epoch`] (one 32-bit
//! store) and waits for an RCU grace period before it touches the old generation again: a
//! packet sees either the old tables or the new ones, never half of each.
//!
//! # Layouts (all `repr(C)`, native byte order unless a field says otherwise)
//!
//! | map | kind | key | value |
//! |---|---|---|---|
//! | `CONTROL` | array, 1 | 0 | [`Control`] |
//! | `LISTENER_PORTS` | array | `generation * 65536 + UDP port` | `u8`: 1 if some listener has the port |
//! | `LISTENERS` | hash | [`ListenerKey`] | `u8` listener flags ([`LISTENER_HASH_INITIALS`]; 0: none; the entry itself marks a listener) |
//! | `CID_CONFIGS` | array | `generation * 8 + config_rotation` | [`CidConfigEntry`] |
//! | `SERVER_IDS` | hash | [`ServerIdKey`] | `u32` backend index |
//! | `BACKENDS` | array | `generation * MAX_BACKENDS + backend index` | [`BackendEntry`] |
//! | `FALLBACK` | array | `generation * FALLBACK_TABLE_SIZE + slot` | `u32` backend index or [`NO_BACKEND`] |
//! | `TX_PORTS` | devmap hash | ifindex | ifindex |
//! | `CID_CACHE` | LRU hash, per program | [`CidCacheKey`] | `u32` backend index |
//! | `STATS` | per-CPU array | [`Outcome`] | `u64` packets |
//! | `BACKEND_STATS` | per-CPU array | backend index | [`BackendCounters`] |
//! | `VERDICT` | array, 1 | 0 | [`Verdict`] (written only when tracing, for `explain`) |
//! | `WORKER_SOCKETS` | reuseport socket array | [`worker_socket_index`] | a worker's UDP socket |
//! | `LOCAL_STATS` | per-CPU array | [`LocalOutcome`] | `u64` datagrams |
//!
//! The benchmark's own programs (not the router) use `FLOOR_PORTS` (devmap) and `FLOOR_MACS`
//! (array of destination + source MAC), both by slot `0..FLOOR_SLOTS`, `GENERATOR_PORT`
//! (devmap, 1), `SINK_BACKEND` (array, 1: `u32` backend index) and `SINK_COUNTS` (per-CPU
//! array by [`SinkCounter`]: `u64`).

use crate::quic_lb::{AesRoundKeys, CONFIG_ROTATIONS, MAX_SERVER_ID_LEN};

/// Generations of each routing table.
pub const GENERATIONS: u32 = 2;
/// Backends per generation (backend indices are 0..MAX_BACKENDS).
pub const MAX_BACKENDS: u32 = 1024;
/// Listeners per generation.
pub const MAX_LISTENERS: u32 = 256;
/// Server IDs per generation, all codepoints together.
pub const MAX_SERVER_IDS: u32 = 131_072;
/// Slots of the consistent-hashing (Maglev) fallback table: a prime.
pub const FALLBACK_TABLE_SIZE: u32 = 65_537;
/// Config entries per generation: codepoints 0..=6 and the unused 7, so that the index is
/// `generation * 8 + codepoint`.
pub const CID_CONFIG_SLOTS: u32 = 8;
/// A fallback slot (or lookup) with no backend.
pub const NO_BACKEND: u32 = u32::MAX;
/// The `ifindex` of a [`BackendEntry`] for a worker on the router's own host: the XDP
/// program passes its packets to the stack, where the `SO_REUSEPORT` program gives them to
/// the worker's socket.
pub const LOCAL_WORKER_IFINDEX: u32 = u32::MAX;
/// Slots of `WORKER_SOCKETS`: one per backend and address family.
pub const WORKER_SOCKET_SLOTS: u32 = 2 * MAX_BACKENDS;

/// The `WORKER_SOCKETS` slot of backend `backend`'s socket for IPv4 or IPv6 (a socket is in
/// one `SO_REUSEPORT` group, and each family's listener is a group of its own).
#[inline(always)]
pub const fn worker_socket_index(backend: u32, ipv6: bool) -> u32 {
    backend + if ipv6 { MAX_BACKENDS } else { 0 }
}
/// Entries per generation of `LISTENER_PORTS`: one per UDP port.
pub const PORTS: u32 = 65_536;
/// Encrypted CIDs whose backend the program remembers (LRU).
pub const CID_CACHE_ENTRIES: u32 = 65_536;
/// Redirect targets of the benchmark floor: it sends a datagram to slot
/// `source port % FLOOR_SLOTS`, so that a generator spreads load as the router would.
pub const FLOOR_SLOTS: u32 = 4;
/// The benchmark's generator writes the index of the backend a packet's CID names at this
/// offset of the UDP payload; the benchmark's sink checks it.
pub const BENCH_MARKER_OFFSET: usize = 100;

/// Counters of a benchmark sink (indices of `SINK_COUNTS`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkCounter {
    Delivered = 0,
    /// Delivered to a backend that the packet's CID does not name.
    Misrouted = 1,
}

impl SinkCounter {
    pub const COUNT: u32 = 2;
}

/// Listener flag: route Initial and 0-RTT packets by the 4-tuple hash only, whatever their
/// DCID names (what load balancers without QUIC-LB for Initials do).
pub const LISTENER_HASH_INITIALS: u8 = 2;

const _: () = assert!(CONFIG_ROTATIONS < CID_CONFIG_SLOTS as usize);

/// Global state, written by user space only.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Control {
    /// How many changes have been applied; its low bit is the generation packets use.
    pub epoch: u32,
}

impl Control {
    /// The generation (0 or 1) that packets use.
    #[inline(always)]
    pub const fn generation(&self) -> u32 {
        self.epoch & 1
    }
}

/// A listener: the VIP and UDP port that QUIC traffic arrives on.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerKey {
    /// IPv4 in the first four octets (the rest zero), or IPv6; network byte order.
    pub addr: [u8; 16],
    /// UDP port in network byte order, as it is in the packet.
    pub port_be: u16,
    /// 4 or 6.
    pub family: u8,
    pub generation: u8,
}

/// How an active configuration decodes connection IDs. `active == 0`: the codepoint is
/// unused in this generation and its CIDs are unroutable.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidConfigEntry {
    pub active: u8,
    /// Whether `round_keys` hold a key (single-pass or four-pass) or the CID is plaintext.
    pub encrypted: u8,
    pub server_id_len: u8,
    /// Server ID + nonce.
    pub plaintext_len: u8,
    /// The whole CID, first octet and server-use octets included: a short header's DCID.
    pub cid_len: u8,
    pub _pad: [u8; 3],
    pub round_keys: AesRoundKeys,
}

impl CidConfigEntry {
    pub const INACTIVE: Self = Self {
        active: 0,
        encrypted: 0,
        server_id_len: 0,
        plaintext_len: 0,
        cid_len: 0,
        _pad: [0; 3],
        round_keys: AesRoundKeys {
            encrypt: [0; 44],
            decrypt: [0; 44],
        },
    };
}

/// A server ID under one codepoint, zero-padded to 15 octets.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerIdKey {
    pub generation: u8,
    pub config_rotation: u8,
    pub server_id: [u8; MAX_SERVER_ID_LEN],
}

impl ServerIdKey {
    /// The key of `server_id` (at most 15 octets; more are cut) under `config_rotation`, in
    /// generation 0.
    pub fn new(config_rotation: u8, server_id: &[u8]) -> Self {
        let mut key = Self {
            config_rotation,
            ..Self::default()
        };
        let len = server_id.len().min(MAX_SERVER_ID_LEN);
        key.server_id[..len].copy_from_slice(&server_id[..len]);
        key
    }
}

/// Where a backend is: the interface to redirect to and the Ethernet addresses to write.
/// `ifindex == 0`: no backend at this index.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendEntry {
    pub ifindex: u32,
    /// The next hop's MAC: the new Ethernet destination.
    pub dst_mac: [u8; 6],
    /// The egress interface's MAC: the new Ethernet source.
    pub src_mac: [u8; 6],
}

/// An encrypted connection ID the program decoded to a known server: the backend it found is
/// cached under the CID and the epoch, so that later packets with that CID skip the AES
/// passes. A new epoch (any change applied) leaves every older entry unused.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CidCacheKey {
    pub epoch: u32,
    /// The CID's length; octets past it are zero.
    pub len: u8,
    pub cid: [u8; crate::quic_lb::MAX_CID_LEN],
    pub _pad: [u8; 3],
}

/// Per-backend counters of delivered packets.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendCounters {
    pub packets: u64,
    pub bytes: u64,
}

/// What the program did with a packet: one per-CPU counter each.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Redirected to the server its DCID names (any header type).
    RoutedByServerId = 0,
    /// Initial or 0-RTT with a DCID that names no server (client-chosen): fallback hash.
    InitialHashed = 1,
    /// Any other packet whose DCID decodes to a server ID no backend has: fallback hash.
    UnknownServerId = 2,
    /// Any other packet whose DCID has codepoint 0b111 or an inactive one: fallback hash.
    UnroutableCodepoint = 3,
    /// Any other packet whose DCID is too short for its config, or too long to decode
    /// (an unknown QUIC version): fallback hash.
    UnroutableLength = 4,
    /// UDP to a listener that is not a QUIC packet (bad lengths, empty, a QUIC v1/v2 long
    /// header with a connection ID over 20 octets): dropped.
    MalformedQuic = 5,
    /// Not UDP to a listener (or too short to tell): passed to the stack untouched.
    NotListener = 6,
    /// An IP fragment: passed untouched.
    Fragment = 7,
    /// IPv6 with extension headers before UDP: passed untouched.
    Ipv6Extension = 8,
    /// A fallback with no active backend: dropped.
    NoBackend = 9,
    /// The backend's interface is not in the redirect map: dropped.
    RedirectFailed = 10,
}

impl Outcome {
    pub const COUNT: u32 = 11;
    pub const ALL: [Outcome; Self::COUNT as usize] = [
        Outcome::RoutedByServerId,
        Outcome::InitialHashed,
        Outcome::UnknownServerId,
        Outcome::UnroutableCodepoint,
        Outcome::UnroutableLength,
        Outcome::MalformedQuic,
        Outcome::NotListener,
        Outcome::Fragment,
        Outcome::Ipv6Extension,
        Outcome::NoBackend,
        Outcome::RedirectFailed,
    ];

    /// The name operators see in stats and `explain`.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::RoutedByServerId => "routed_by_server_id",
            Outcome::InitialHashed => "initial_hashed",
            Outcome::UnknownServerId => "unknown_server_id",
            Outcome::UnroutableCodepoint => "unroutable_codepoint",
            Outcome::UnroutableLength => "unroutable_length",
            Outcome::MalformedQuic => "malformed_quic",
            Outcome::NotListener => "not_listener",
            Outcome::Fragment => "fragment",
            Outcome::Ipv6Extension => "ipv6_extension_headers",
            Outcome::NoBackend => "no_backend",
            Outcome::RedirectFailed => "redirect_failed",
        }
    }

    pub fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.get(value as usize).copied()
    }
}

/// What the `SO_REUSEPORT` program did with a datagram for local workers: one per-CPU
/// counter each.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalOutcome {
    /// Given to the socket of the worker its DCID names.
    Worker = 0,
    /// The DCID names no server (a new connection's client-chosen DCID, an unknown server
    /// ID, an unroutable CID, not QUIC): given to the worker the fallback table picks for the
    /// 4-tuple, the one the XDP program passed it for.
    Fallback = 1,
    /// The DCID names a backend with no socket in this group (a remote host, or a worker
    /// that has not registered): the kernel's own choice by 4-tuple hash.
    NotRegistered = 2,
    /// The DCID names no server and the fallback table's backend has no socket in this
    /// group (none active, a remote host): the kernel's own choice.
    KernelChoice = 3,
}

impl LocalOutcome {
    pub const COUNT: u32 = 4;
    pub const ALL: [LocalOutcome; Self::COUNT as usize] = [
        LocalOutcome::Worker,
        LocalOutcome::Fallback,
        LocalOutcome::NotRegistered,
        LocalOutcome::KernelChoice,
    ];

    /// The name operators see in stats.
    pub const fn name(self) -> &'static str {
        match self {
            LocalOutcome::Worker => "local_worker_by_server_id",
            LocalOutcome::Fallback => "local_worker_by_fallback",
            LocalOutcome::NotRegistered => "local_not_registered",
            LocalOutcome::KernelChoice => "local_kernel_choice",
        }
    }
}

/// The last packet's verdict, for `quic-router explain`. Written only when the program is
/// loaded with tracing on (the `TRACE_VERDICTS` global).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// An [`Outcome`].
    pub outcome: u32,
    /// The backend index, or [`NO_BACKEND`].
    pub backend: u32,
    /// 1 when the DCID was decoded to a server ID (`config_rotation`, `server_id`, padded
    /// with zeros to 15 octets: the config gives its length).
    pub has_server_id: u8,
    pub config_rotation: u8,
    pub server_id: [u8; MAX_SERVER_ID_LEN],
    pub _pad: [u8; 3],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are repr(C) plain data without padding that could hold uninitialised bytes
    // the kernel would read (explicit `_pad` fields fill the gaps).
    unsafe impl aya::Pod for super::Control {}
    unsafe impl aya::Pod for super::ListenerKey {}
    unsafe impl aya::Pod for super::CidConfigEntry {}
    unsafe impl aya::Pod for super::ServerIdKey {}
    unsafe impl aya::Pod for super::CidCacheKey {}
    unsafe impl aya::Pod for super::BackendEntry {}
    unsafe impl aya::Pod for super::BackendCounters {}
    unsafe impl aya::Pod for super::Verdict {}
}
