//! The contract between the kernel programs and user space: every map's name, kind, key and
//! value, how many entries it has, and where each entry lives. The XDP program's map
//! definitions are built from these constants, user space opens maps by [`MapSpec::name`], and
//! a test checks the built object against [`ROUTER_MAPS`], so that the two sides cannot drift
//! apart unnoticed.
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
//! | `LISTENER_PORTS` | array | [`listener_port_slot`] | [`PortListeners`]: the port's listeners, per family |
//! | `LISTENERS` | hash | [`ListenerKey`] | `u8` listener flags ([`LISTENER_HASH_INITIALS`]; 0: none; the entry itself marks a listener); the program looks here only for a port with several listeners of one family |
//! | `CID_CONFIGS` | array | [`cid_config_slot`] | [`CidConfigEntry`] |
//! | `SERVER_IDS` | hash | [`ServerIdKey`] | `u32` backend index |
//! | `SHORT_SERVER_IDS` | array | [`short_server_id_slot`] | `u32` backend index + 1, 0: none (server IDs of at most [`MAX_SHORT_SERVER_ID_LEN`] octets; the program looks in `SERVER_IDS` only for longer ones) |
//! | `BACKENDS` | array | [`backend_slot`] | [`BackendEntry`] |
//! | `ENCAP_CONFIG` | array, one per generation | generation | [`EncapConfig`] |
//! | `FALLBACK` | array | [`fallback_slot`] | `u32` backend index or [`NO_BACKEND`] |
//! | `TX_PORTS` | devmap hash | ifindex | ifindex |
//! | `CID_CACHE` | array | [`cid_cache_slot`] | [`CidCacheSet`]: encrypted CIDs decoded before, with their backends (a region per CPU) |
//! | `SERVER_ID_KEY` | per-CPU array, 1 | 0 | [`ServerIdKey`]: where a decoded server ID is built |
//! | `CID_CACHE_PROBE` | per-CPU array, 1 | 0 | [`CidCacheWay`]: where a packet's CID is made into a cache entry |
//! | `TOKEN_FLOWS` | LRU hash | [`TokenFlowKey`] | [`TokenFlow`] |
//! | `TOKEN_FLOW_EPOCH` | array, 1 | 0 | `u32`: the epoch in which the programs last made a token flow (a flow of another epoch is void: no lookup) |
//! | `STATS` | per-CPU array | [`Outcome`] | `u64` packets |
//! | `BACKEND_STATS` | per-CPU array | backend index | [`BackendCounters`] |
//! | `WORKER_SOCKETS` | reuseport socket array | [`worker_socket_slot`] | a local worker's UDP socket |
//! | `LOCAL_STATS` | per-CPU array | [`LocalOutcome`] | `u64` datagrams |
//! | `VERDICT` | array, 1 | 0 | [`Verdict`] (written only when tracing, for `explain`) |
//! | `ICMP_BUDGET` | per-CPU array, 1 | 0 | [`IcmpBudget`]: the answers to too-big packets a CPU may still send |
//!
//! Every map but `VERDICT` and `ICMP_BUDGET` is pinned by the controller. The CID cache and the token flows are
//! shared by both programs, which fill and read them, and a new controller that adopts a
//! running program keeps them. The CID cache is per CPU, a region of one array each (a per-CPU
//! array would add a pointer to follow per lookup): a CPU reads and writes only its own sets,
//! so that no entry is ever seen half written (a CID paired with another's backend), and the
//! CPUs share no cache line of it.

use crate::{
    counters::{LocalOutcome, Outcome},
    quic_lb::{AesRoundKeys, CONFIG_ROTATIONS, MAX_CID_LEN, MAX_SERVER_ID_LEN},
};

/// Generations of each routing table.
pub const GENERATIONS: u32 = 2;
/// Slots of the consistent-hashing (Maglev) fallback table: a prime.
pub const FALLBACK_TABLE_SIZE: u32 = 65_537;
/// Config entries per generation: codepoints 0..=6 and the unused 7.
pub const CID_CONFIG_SLOTS: u32 = 8;
/// Entries per generation of `LISTENER_PORTS`: one per UDP port.
pub const PORTS: u32 = 65_536;
/// Server IDs of at most this many octets are also found by index, in `SHORT_SERVER_IDS`:
/// an array lookup instead of hashing the key.
pub const MAX_SHORT_SERVER_ID_LEN: u8 = 2;
/// `SHORT_SERVER_IDS` slots per codepoint and generation: one per two-octet value.
pub const SHORT_SERVER_ID_SLOTS: u32 = 1 << 16;
/// A fallback slot (or lookup) with no backend.
pub const NO_BACKEND: u32 = u32::MAX;
/// The `ifindex` of a [`BackendEntry`] for a worker on the router's own host: the XDP
/// program passes its packets to the stack, where the `SO_REUSEPORT` program gives them to
/// the worker's socket.
pub const LOCAL_WORKER_IFINDEX: u32 = u32::MAX;
/// The `ifindex` of a [`BackendEntry`] behind a tunnel whose next hop the kernel's routes
/// and neighbours give (`bpf_fib_lookup`), packet by packet, instead of a configured one.
pub const ROUTED_IFINDEX: u32 = u32::MAX - 1;
/// Listener flag: route Initial and 0-RTT packets by the 4-tuple hash only, whatever their
/// token or DCID names (what load balancers without QUIC-LB for Initials do).
pub const LISTENER_HASH_INITIALS: u8 = 2;

const _: () = assert!(CONFIG_ROTATIONS < CID_CONFIG_SLOTS as usize);

// Where each entry lives. Per-backend entries interleave the generations (and address
// families), so that no slot depends on the number of backends the maps were made for.

/// The `LISTENER_PORTS` slot of UDP `port` in `generation`.
#[inline(always)]
pub const fn listener_port_slot(generation: u32, port: u32) -> u32 {
    generation * PORTS + port
}

/// The `CID_CONFIGS` slot of codepoint `config_rotation` in `generation`.
#[inline(always)]
pub const fn cid_config_slot(generation: u32, config_rotation: u32) -> u32 {
    generation * CID_CONFIG_SLOTS + config_rotation
}

/// The `SHORT_SERVER_IDS` slot of a short server ID under codepoint `config_rotation` in
/// `generation`, from the first two octets of its zero-padded [`ServerIdKey::server_id`]
/// (a one-octet server ID `x` is `x, 0`).
#[inline(always)]
pub const fn short_server_id_slot(
    generation: u32,
    config_rotation: u32,
    server_id: &[u8; MAX_SERVER_ID_LEN],
) -> u32 {
    let index = (server_id[0] as u32) << 8 | server_id[1] as u32;
    (generation * CID_CONFIG_SLOTS + config_rotation) * SHORT_SERVER_ID_SLOTS + index
}

/// The `FALLBACK` slot of a flow `hash` in `generation`.
#[inline(always)]
pub const fn fallback_slot(generation: u32, hash: u32) -> u32 {
    generation * FALLBACK_TABLE_SIZE + hash % FALLBACK_TABLE_SIZE
}

/// The `BACKENDS` slot of backend index `backend` in `generation`.
#[inline(always)]
pub const fn backend_slot(generation: u32, backend: u32) -> u32 {
    backend * GENERATIONS + generation
}

/// The `WORKER_SOCKETS` slot of local worker `backend`'s socket for IPv4 or IPv6 (a socket is
/// in one `SO_REUSEPORT` group, and each family's listener is a group of its own).
#[inline(always)]
pub const fn worker_socket_slot(backend: u32, ipv6: bool) -> u32 {
    backend * 2 + ipv6 as u32
}

/// How big the maps that grow with a deployment are: the `[limits]` of the router config,
/// applied when the maps are created. Pinned maps keep the sizes they were made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct Limits {
    /// Backends in the config.
    pub backends: u32,
    /// Server IDs in the config, all codepoints together.
    pub server_ids: u32,
    /// Listeners in the config.
    pub listeners: u32,
    /// Encrypted connection IDs whose backend the program remembers, on each CPU: a power of
    /// two, in sets of [`CID_CACHE_WAYS`] (a new one takes the place of its set's older).
    pub cid_cache_entries: u32,
}

impl Limits {
    pub const DEFAULT: Self = Self {
        backends: 1024,
        server_ids: 131_072,
        listeners: 256,
        // 8 MiB per CPU: room for about 60,000 connections with encrypted CIDs on each CPU
        // (a set that three fall into loses one).
        cid_cache_entries: 262_144,
    };
    /// The largest value of each limit (the kernel preallocates hash maps: about 100 octets
    /// per entry and generation).
    pub const MAX: Self = Self {
        backends: 65_536,
        server_ids: 4_194_304,
        listeners: 65_536,
        cid_cache_entries: 1_048_576,
    };

    /// Backend indices: twice the backends, because an index stays taken while either
    /// generation uses it (a config that replaces every backend needs both sets at once).
    pub const fn backend_indices(&self) -> u32 {
        self.backends * 2
    }

    /// Sets of the CID cache on each CPU (`cid_cache_entries` is a power of two).
    pub const fn cid_cache_sets(&self) -> u32 {
        self.cid_cache_entries / CID_CACHE_WAYS
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The kernel's map types that the router uses (`enum bpf_map_type`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    Hash = 1,
    Array = 2,
    PerCpuArray = 6,
    LruHash = 9,
    LpmTrie = 11,
    ReusePortSockArray = 20,
    DevMapHash = 25,
}

/// How a map's entry count follows from the [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entries {
    /// Fixed by the layout.
    Fixed(u32),
    /// This many per backend index ([`Limits::backend_indices`]).
    PerBackendIndex(u32),
    /// This many per server ID.
    PerServerId(u32),
    /// This many per listener.
    PerListener(u32),
    /// [`Limits::cid_cache_sets`] per CPU slot.
    CidCache,
}

/// One map of the kernel/user contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSpec {
    /// The map's name in the object, the kernel and the pin directory.
    pub name: &'static str,
    pub kind: MapKind,
    pub key_size: u32,
    pub value_size: u32,
    pub entries: Entries,
    /// `BPF_F_*` creation flags.
    pub flags: u32,
}

impl MapSpec {
    /// The number of entries under `limits` on a machine of `cpu_slots` CPU numbers (the
    /// highest possible CPU's number + 1).
    pub const fn max_entries(&self, limits: &Limits, cpu_slots: u32) -> u32 {
        match self.entries {
            Entries::Fixed(n) => n,
            Entries::PerBackendIndex(n) => n * limits.backend_indices(),
            Entries::PerServerId(n) => n * limits.server_ids,
            Entries::PerListener(n) => n * limits.listeners,
            Entries::CidCache => limits.cid_cache_sets() * cpu_slots,
        }
    }

    /// The number of entries the kernel program is built with (the loader sets the rest).
    pub const fn default_entries(&self) -> u32 {
        self.max_entries(&Limits::DEFAULT, 1)
    }

    /// Whether the entry count follows from the limits (and so may differ from the built
    /// object's).
    pub const fn sized_by_limits(&self) -> bool {
        !matches!(self.entries, Entries::Fixed(_))
    }
}

pub(crate) const fn spec(
    name: &'static str,
    kind: MapKind,
    key_size: usize,
    value_size: usize,
    entries: Entries,
) -> MapSpec {
    MapSpec {
        name,
        kind,
        key_size: key_size as u32,
        value_size: value_size as u32,
        entries,
        flags: 0,
    }
}

/// `BPF_F_MMAPABLE`: an array user space can map into its memory.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

const U8: usize = size_of::<u8>();
pub(crate) const U32: usize = size_of::<u32>();
pub(crate) const U64: usize = size_of::<u64>();
/// `struct bpf_devmap_val`: ifindex and an optional program.
const DEVMAP_VALUE: usize = 8;

/// The maps of the router's object, each documented in the table above.
pub mod specs {
    use super::*;

    pub const CONTROL: MapSpec = spec(
        "CONTROL",
        MapKind::Array,
        U32,
        size_of::<Control>(),
        Entries::Fixed(1),
    );
    pub const LISTENER_PORTS: MapSpec = spec(
        "LISTENER_PORTS",
        MapKind::Array,
        U32,
        size_of::<PortListeners>(),
        Entries::Fixed(GENERATIONS * PORTS),
    );
    pub const LISTENERS: MapSpec = spec(
        "LISTENERS",
        MapKind::Hash,
        size_of::<ListenerKey>(),
        U8,
        Entries::PerListener(GENERATIONS),
    );
    pub const CID_CONFIGS: MapSpec = spec(
        "CID_CONFIGS",
        MapKind::Array,
        U32,
        size_of::<CidConfigEntry>(),
        Entries::Fixed(GENERATIONS * CID_CONFIG_SLOTS),
    );
    pub const SERVER_IDS: MapSpec = spec(
        "SERVER_IDS",
        MapKind::Hash,
        size_of::<ServerIdKey>(),
        U32,
        Entries::PerServerId(GENERATIONS),
    );
    /// Mapped into user space (`BPF_F_MMAPABLE`), which rewrites a generation's region
    /// (4 MiB: the kernel keeps array values 8 octets apart) in memory instead of an entry
    /// per syscall.
    pub const SHORT_SERVER_IDS: MapSpec = MapSpec {
        flags: BPF_F_MMAPABLE,
        ..spec(
            "SHORT_SERVER_IDS",
            MapKind::Array,
            U32,
            U32,
            Entries::Fixed(GENERATIONS * CID_CONFIG_SLOTS * SHORT_SERVER_ID_SLOTS),
        )
    };
    pub const BACKENDS: MapSpec = spec(
        "BACKENDS",
        MapKind::Array,
        U32,
        size_of::<BackendEntry>(),
        Entries::PerBackendIndex(GENERATIONS),
    );
    pub const INGRESS: MapSpec = spec(
        "INGRESS",
        MapKind::Array,
        U32,
        size_of::<Ingress>(),
        Entries::Fixed(1),
    );
    pub const ENCAP_CONFIG: MapSpec = spec(
        "ENCAP_CONFIG",
        MapKind::Array,
        U32,
        size_of::<EncapConfig>(),
        Entries::Fixed(GENERATIONS),
    );
    pub const FALLBACK: MapSpec = spec(
        "FALLBACK",
        MapKind::Array,
        U32,
        U32,
        Entries::Fixed(GENERATIONS * FALLBACK_TABLE_SIZE),
    );
    pub const TX_PORTS: MapSpec = spec(
        "TX_PORTS",
        MapKind::DevMapHash,
        U32,
        DEVMAP_VALUE,
        Entries::PerBackendIndex(1),
    );
    pub const CID_CACHE: MapSpec = spec(
        "CID_CACHE",
        MapKind::Array,
        U32,
        size_of::<CidCacheSet>(),
        Entries::CidCache,
    );
    pub const SERVER_ID_KEY: MapSpec = spec(
        "SERVER_ID_KEY",
        MapKind::PerCpuArray,
        U32,
        size_of::<ServerIdKey>(),
        Entries::Fixed(1),
    );
    pub const CID_CACHE_PROBE: MapSpec = spec(
        "CID_CACHE_PROBE",
        MapKind::PerCpuArray,
        U32,
        size_of::<CidCacheWay>(),
        Entries::Fixed(1),
    );
    pub const TOKEN_FLOWS: MapSpec = spec(
        "TOKEN_FLOWS",
        MapKind::LruHash,
        size_of::<TokenFlowKey>(),
        size_of::<TokenFlow>(),
        Entries::Fixed(TOKEN_FLOW_ENTRIES),
    );
    pub const TOKEN_FLOW_EPOCH: MapSpec = spec(
        "TOKEN_FLOW_EPOCH",
        MapKind::Array,
        U32,
        U32,
        Entries::Fixed(1),
    );
    pub const STATS: MapSpec = spec(
        "STATS",
        MapKind::PerCpuArray,
        U32,
        U64,
        Entries::Fixed(Outcome::COUNT),
    );
    pub const BACKEND_STATS: MapSpec = spec(
        "BACKEND_STATS",
        MapKind::PerCpuArray,
        U32,
        size_of::<BackendCounters>(),
        Entries::PerBackendIndex(1),
    );
    pub const WORKER_SOCKETS: MapSpec = spec(
        "WORKER_SOCKETS",
        MapKind::ReusePortSockArray,
        U32,
        U32,
        Entries::PerBackendIndex(2),
    );
    pub const LOCAL_STATS: MapSpec = spec(
        "LOCAL_STATS",
        MapKind::PerCpuArray,
        U32,
        U64,
        Entries::Fixed(LocalOutcome::COUNT),
    );
    pub const VERDICT: MapSpec = spec(
        "VERDICT",
        MapKind::Array,
        U32,
        size_of::<Verdict>(),
        Entries::Fixed(1),
    );
    pub const ICMP_BUDGET: MapSpec = spec(
        "ICMP_BUDGET",
        MapKind::PerCpuArray,
        U32,
        size_of::<IcmpBudget>(),
        Entries::Fixed(1),
    );
}

/// The maps that hold the router's state, pinned so that the data path outlives the
/// controller and a new controller adopts them.
pub const PINNED_MAPS: [MapSpec; 20] = [
    specs::CONTROL,
    specs::INGRESS,
    specs::LISTENER_PORTS,
    specs::LISTENERS,
    specs::CID_CONFIGS,
    specs::SERVER_IDS,
    specs::SHORT_SERVER_IDS,
    specs::BACKENDS,
    specs::ENCAP_CONFIG,
    specs::FALLBACK,
    specs::TX_PORTS,
    specs::CID_CACHE,
    specs::SERVER_ID_KEY,
    specs::CID_CACHE_PROBE,
    specs::TOKEN_FLOWS,
    specs::TOKEN_FLOW_EPOCH,
    specs::STATS,
    specs::BACKEND_STATS,
    specs::WORKER_SOCKETS,
    specs::LOCAL_STATS,
];

/// The maps that start afresh with each load of the program.
pub const UNPINNED_MAPS: [MapSpec; 2] = [specs::VERDICT, specs::ICMP_BUDGET];

/// Every map of the router's object: the pinned ones and the others.
pub const ROUTER_MAPS: [MapSpec; 22] = {
    let mut all = [specs::VERDICT; 22];
    let mut i = 0;
    while i < PINNED_MAPS.len() {
        all[i] = PINNED_MAPS[i];
        i += 1;
    }
    while i < all.len() {
        all[i] = UNPINNED_MAPS[i - PINNED_MAPS.len()];
        i += 1;
    }
    all
};

/// What a CPU may still answer of the packets too big for a tunnel (an `ICMP_BUDGET` value):
/// a token bucket kept as credit in nanoseconds, so that ICMP errors are rate-limited (RFC
/// 4443 §2.4 (f)) as the kernel limits its own (`icmp_msgs_per_sec`, `icmp_msgs_burst`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IcmpBudget {
    /// Credit, in nanoseconds: an answer costs [`IcmpBudget::COST_NS`].
    pub credit_ns: u64,
    /// When the credit was last brought up to date (`bpf_ktime_get_ns`).
    pub updated_ns: u64,
}

impl IcmpBudget {
    /// Answers per second per CPU, at most.
    pub const PER_SECOND: u64 = 1000;
    /// Answers in a burst, at most.
    pub const BURST: u64 = 50;
    pub const COST_NS: u64 = 1_000_000_000 / Self::PER_SECOND;

    /// Takes one answer's worth at `now_ns` if there is one. A budget never used (all zero)
    /// starts full.
    #[inline(always)]
    pub fn take(&mut self, now_ns: u64) -> bool {
        let earned = now_ns.saturating_sub(self.updated_ns);
        let credit = self.credit_ns.saturating_add(earned);
        self.credit_ns = if credit > Self::BURST * Self::COST_NS {
            Self::BURST * Self::COST_NS
        } else {
            credit
        };
        self.updated_ns = now_ns;
        if self.credit_ns < Self::COST_NS {
            return false;
        }
        self.credit_ns -= Self::COST_NS;
        true
    }
}

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

/// The listeners of one UDP port (a `LISTENER_PORTS` value), per address family (index 0:
/// IPv4, 1: IPv6): none, one (matched here, by one array lookup, without hashing the
/// address), or several (looked up in `LISTENERS`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortListeners {
    /// The one IPv6 listener's address, its octets in native-endian words (compared as such).
    pub addr6: [u64; 2],
    /// The one IPv4 listener's address, its octets as a native-endian word.
    pub addr4: u32,
    /// Per family: [`PortListeners::NONE`], [`PortListeners::ONE`] or [`PortListeners::SEVERAL`].
    pub count: [u8; 2],
    /// Per family: the one listener's flags.
    pub flags: [u8; 2],
}

impl PortListeners {
    pub const NONE: u8 = 0;
    pub const ONE: u8 = 1;
    pub const SEVERAL: u8 = 2;

    /// Adds the listener `key` (of this port) with `flags`.
    pub fn add(&mut self, key: &ListenerKey, flags: u8) {
        let ipv6 = key.family == 6;
        let family = usize::from(ipv6);
        if self.count[family] == Self::NONE {
            self.count[family] = Self::ONE;
            self.flags[family] = flags;
            if ipv6 {
                self.addr6 = ipv6_words(&key.addr);
            } else {
                self.addr4 = ipv4_word(&key.addr);
            }
        } else {
            // Only LISTENERS tells several apart: what is here is not used.
            self.count[family] = Self::SEVERAL;
            self.flags[family] = 0;
            if ipv6 {
                self.addr6 = [0; 2];
            } else {
                self.addr4 = 0;
            }
        }
    }

    /// Whether the port has a listener for `addr` (a [`ListenerKey::addr`]).
    #[inline(always)]
    pub fn listener(&self, addr: &[u8; 16], ipv6: bool) -> PortMatch {
        let family = usize::from(ipv6);
        let matches = match self.count[family] {
            Self::ONE if ipv6 => self.addr6 == ipv6_words(addr),
            Self::ONE => self.addr4 == ipv4_word(addr),
            Self::SEVERAL => return PortMatch::Several,
            _ => false,
        };
        if matches {
            PortMatch::Listener(self.flags[family])
        } else {
            PortMatch::None
        }
    }
}

/// What [`PortListeners::listener`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMatch {
    /// The port's one listener of the family has the address: its flags.
    Listener(u8),
    /// The port has several listeners of the family: `LISTENERS` knows.
    Several,
    /// No listener of the port has the address.
    None,
}

/// An IPv6 address's octets as two native-endian words.
#[inline(always)]
fn ipv6_words(addr: &[u8; 16]) -> [u64; 2] {
    let [o0, o1, o2, o3, o4, o5, o6, o7, rest @ ..] = *addr;
    [
        u64::from_ne_bytes([o0, o1, o2, o3, o4, o5, o6, o7]),
        u64::from_ne_bytes(rest),
    ]
}

/// An IPv4 address (the first four octets of a [`ListenerKey::addr`]) as a native-endian word.
#[inline(always)]
fn ipv4_word(addr: &[u8; 16]) -> u32 {
    let [o0, o1, o2, o3, ..] = *addr;
    u32::from_ne_bytes([o0, o1, o2, o3])
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
    /// 1: the backend is draining. It takes no new connection: no fallback traffic, and no
    /// Initial by its token (a returning client starts anew elsewhere); what names it by CID
    /// (its connections, their handshakes) still reaches it.
    pub draining: u8,
    /// How packets reach it: [`DELIVERY_L2`], [`DELIVERY_GUE`] or [`DELIVERY_IPIP`].
    pub delivery: u8,
    /// The tunnel address's family (4 or 6) when `delivery` encapsulates.
    pub tunnel_family: u8,
    pub _pad: u8,
    /// The backend's tunnel address (IPv4 in the first four octets), network byte order.
    pub tunnel_address: [u8; 16],
}

/// Delivery by rewriting the Ethernet addresses (the backend is on the router's segment).
pub const DELIVERY_L2: u8 = 0;
/// Delivery in GUE: outer IP + UDP to the encapsulation config's port + a GUE header.
pub const DELIVERY_GUE: u8 = 1;
/// Delivery in IP-in-IP (protocol 4 for IPv4 inside, 41 for IPv6).
pub const DELIVERY_IPIP: u8 = 2;

/// How the router encapsulates (an `ENCAP_CONFIG` value, one per generation): the outer
/// source addresses vary within these prefixes with each flow's hash, so that ECMP and the
/// backends' RSS spread flows; GUE's source port varies too.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncapConfig {
    /// The IPv4 source prefix's address, network byte order.
    pub source4: [u8; 4],
    /// Its host bits, as a mask in network byte order.
    pub source4_hosts: [u8; 4],
    /// The IPv6 source prefix's address.
    pub source6: [u8; 16],
    /// Host bits of its last 32 bits, as a mask in network byte order (more would not
    /// spread flows further).
    pub source6_hosts: [u8; 4],
    /// GUE's destination port, network byte order.
    pub gue_port_be: u16,
    pub _pad: [u8; 2],
}

/// The interface the controller attached the program to (the `INGRESS` value): a unicast
/// frame that arrives there for another MAC (a switch's flood) is not this router's to route;
/// every router on the segment would otherwise route it. An `ifindex` of 0 (nothing written:
/// a program that no controller attached, a test run) checks nothing.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingress {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

impl Ingress {
    /// Whether frames that arrive on `ifindex` are checked: it is the interface guarded.
    #[inline(always)]
    pub fn guards(&self, ifindex: u32) -> bool {
        self.ifindex != 0 && self.ifindex == ifindex
    }

    /// Whether a frame for `destination` on the guarded interface is this router's: a group
    /// address, or the interface's own.
    #[inline(always)]
    pub fn takes(&self, destination: &[u8; 6]) -> bool {
        destination[0] & 1 != 0 || *destination == self.mac
    }
}

impl EncapConfig {
    /// The outer source address of the flow with `hash`: the prefix's address with the
    /// hash in its host bits (IPv4 in the first four octets).
    #[inline(always)]
    pub fn outer_source(&self, outer_v6: bool, hash: u32) -> [u8; 16] {
        let host = hash.to_be_bytes();
        let mut source = [0u8; 16];
        if outer_v6 {
            source = self.source6;
            for i in 0..4 {
                source[12 + i] ^= host[i] & self.source6_hosts[i];
            }
        } else {
            for i in 0..4 {
                source[i] = self.source4[i] | host[i] & self.source4_hosts[i];
            }
        }
        source
    }
}

/// GUE's UDP source port for the flow with `hash`: in the dynamic range, varying with the
/// flow for the receivers' RSS.
#[inline(always)]
pub const fn gue_source_port(hash: u32) -> u16 {
    0xc000 | hash as u16 & 0x3fff
}

impl BackendEntry {
    /// The Ethernet destination and source that the program writes, as they lie in the
    /// entry: 12 octets from `dst_mac` on.
    #[inline(always)]
    pub fn ethernet_addresses(&self) -> &[u8; 12] {
        const DST: usize = core::mem::offset_of!(BackendEntry, dst_mac);
        const _: () = assert!(core::mem::offset_of!(BackendEntry, src_mac) == DST + 6);
        // SAFETY: `dst_mac` and `src_mac` are 12 consecutive octets of `self` (repr(C),
        // checked above), borrowed with it.
        unsafe {
            &*core::ptr::from_ref(self)
                .cast::<u8>()
                .add(DST)
                .cast::<[u8; 12]>()
        }
    }
}

/// Entries of a CID cache set: a CID whose set holds two others is decoded again.
pub const CID_CACHE_WAYS: u32 = 2;

/// The `CID_CACHE` slot of set `set` for CPU `cpu`: each CPU's sets follow one another,
/// `stride` apart (the sets per CPU; 0 makes one cache for all CPUs, which the benchmark
/// compares).
#[inline(always)]
pub const fn cid_cache_slot(cpu: u32, stride: u32, set: u32) -> u32 {
    cpu * stride + set
}

/// An encrypted connection ID the program decoded to a known server, and the backend it
/// found, so that later packets with that CID skip the AES passes. An entry of another epoch
/// (any change applied since) is unused. 32 octets; the first 28 are what a lookup matches.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CidCacheWay {
    /// The CID, zero past `len`.
    pub cid: [u8; MAX_CID_LEN],
    pub len: u8,
    pub _pad: [u8; 3],
    pub epoch: u32,
    pub backend: u32,
}

impl CidCacheWay {
    /// The entry for the first `len` octets of `cid` under `epoch` (the program builds it
    /// in place, in a per-CPU slot, to spare its stack).
    pub fn new(cid: &[u8], epoch: u32, backend: u32) -> Self {
        let mut way = Self {
            len: cid.len().min(MAX_CID_LEN) as u8,
            epoch,
            backend,
            ..Self::default()
        };
        way.cid[..way.len as usize].copy_from_slice(&cid[..way.len as usize]);
        way
    }

    /// The entry as four words: the CID's three (the last with the length and the zero
    /// padding), then the epoch's and the backend's.
    #[inline(always)]
    fn words(&self) -> &[u64; 4] {
        const _: () = assert!(size_of::<CidCacheWay>() == 32 && align_of::<CidCacheWay>() == 8);
        // SAFETY: 32 octets of plain integers, 8-aligned (checked above), borrowed with
        // `self`.
        unsafe { &*core::ptr::from_ref(self).cast::<[u64; 4]>() }
    }

    /// Whether `self` is the entry of `other`'s CID under `other`'s epoch. Both have zero
    /// padding (the program's probe is never written there).
    #[inline(always)]
    pub fn same_cid(&self, other: &Self) -> bool {
        let (mine, theirs) = (self.words(), other.words());
        mine[0] == theirs[0]
            && mine[1] == theirs[1]
            && mine[2] == theirs[2]
            && self.epoch == other.epoch
    }

    /// The CID's set among `sets` (a power of two): from the octets after the first, which
    /// every encrypted CID has at least five of and whose values are the cipher's (uniform).
    #[inline(always)]
    pub fn set(&self, sets: u32) -> u32 {
        let [_, second, third, fourth, fifth, ..] = self.cid;
        u32::from_le_bytes([second, third, fourth, fifth]) & (sets - 1)
    }
}

/// A set of the CID cache: 64 octets, read at once. A new entry goes first and the older one
/// moves second; what was second makes way.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CidCacheSet {
    pub ways: [CidCacheWay; CID_CACHE_WAYS as usize],
}

impl CidCacheSet {
    /// The backend of the entry that is `probe`'s CID under its epoch.
    #[inline(always)]
    pub fn find(&self, probe: &CidCacheWay) -> Option<u32> {
        self.ways
            .iter()
            .find(|way| way.same_cid(probe))
            .map(|way| way.backend)
    }

    /// Puts `entry` first; the first moves second.
    #[inline(always)]
    pub fn insert(&mut self, entry: &CidCacheWay) {
        self.ways[1] = self.ways[0];
        self.ways[0] = *entry;
    }
}

/// Connection attempts whose Initial was routed by its token: about as many as start within
/// [`TOKEN_FLOW_LIFETIME_NS`]. A full map forgets its least recently used attempt, whose 0-RTT
/// packets then go by their DCID; the handshake itself still completes.
pub const TOKEN_FLOW_ENTRIES: u32 = 16_384;
/// How long a token flow lasts: a handshake's Initial and 0-RTT packets, retransmissions
/// included, come within a few seconds; later packets carry the server's CID.
pub const TOKEN_FLOW_LIFETIME_NS: u64 = 10_000_000_000;

/// A connection attempt: the client's address and port and the DCID it chose. 0-RTT packets
/// carry no token; this is how they find the server that their attempt's Initial was
/// routed to by its token.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TokenFlowKey {
    /// IPv4 in the first four octets (the rest zero), or IPv6; network byte order.
    pub addr: [u8; 16],
    /// UDP port in network byte order.
    pub port_be: u16,
    /// 4 or 6.
    pub family: u8,
    pub dcid_len: u8,
    /// The DCID, zero past `dcid_len`.
    pub dcid: [u8; MAX_CID_LEN],
}

/// Where a connection attempt's Initial went, and until when that holds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenFlow {
    pub backend: u32,
    /// The epoch the route was found under: another epoch ignores it.
    pub epoch: u32,
    /// `bpf_ktime_get_ns` past which the flow is over.
    pub expires_ns: u64,
}

/// Per-backend counters of delivered packets.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendCounters {
    pub packets: u64,
    pub bytes: u64,
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
    unsafe impl aya::Pod for super::Ingress {}
    unsafe impl aya::Pod for super::ListenerKey {}
    unsafe impl aya::Pod for super::PortListeners {}
    unsafe impl aya::Pod for super::CidConfigEntry {}
    unsafe impl aya::Pod for super::ServerIdKey {}
    unsafe impl aya::Pod for super::CidCacheWay {}
    unsafe impl aya::Pod for super::CidCacheSet {}
    unsafe impl aya::Pod for super::TokenFlowKey {}
    unsafe impl aya::Pod for super::TokenFlow {}
    unsafe impl aya::Pod for super::BackendEntry {}
    unsafe impl aya::Pod for super::EncapConfig {}
    unsafe impl aya::Pod for super::BackendCounters {}
    unsafe impl aya::Pod for super::Verdict {}
}
