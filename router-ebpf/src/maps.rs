//! The program's maps, one per concern; names, layouts and sizes are router-common's
//! (`router_common::maps`), checked against this object by a test.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap, LruHashMap, PerCpuArray, ReusePortSockArray},
};
use router_common::maps::{
    BackendCounters, BackendEntry, CidCacheSet, CidCacheWay, CidConfigEntry, Control, EncapConfig,
    IcmpBudget, Ingress, ListenerKey, PortListeners, ServerIdKey, TokenFlow, TokenFlowKey, Verdict,
    specs,
};

// Routing state, in two generations (see router_common::maps): user space writes it.

/// The epoch, whose low bit names the generation packets use.
#[map]
pub static CONTROL: Array<Control> = Array::with_max_entries(specs::CONTROL.default_entries(), 0);

/// The interface the controller attached to, and its MAC: frames for other hosts pass.
#[map]
pub static INGRESS: Array<Ingress> = Array::with_max_entries(specs::INGRESS.default_entries(), 0);

/// The listeners of each UDP port: most traffic is told apart by this one lookup.
#[map]
pub static LISTENER_PORTS: Array<PortListeners> =
    Array::with_max_entries(specs::LISTENER_PORTS.default_entries(), 0);

/// The listeners (VIP and port) and their flags.
#[map]
pub static LISTENERS: HashMap<ListenerKey, u8> =
    HashMap::with_max_entries(specs::LISTENERS.default_entries(), 0);

/// The QUIC-LB config of each codepoint, with its AES key schedules.
#[map]
pub static CID_CONFIGS: Array<CidConfigEntry> =
    Array::with_max_entries(specs::CID_CONFIGS.default_entries(), 0);

/// Server IDs to backend indices.
#[map]
pub static SERVER_IDS: HashMap<ServerIdKey, u32> =
    HashMap::with_max_entries(specs::SERVER_IDS.default_entries(), 0);

/// Server IDs of at most two octets to backend indices + 1, by index.
#[map]
pub static SHORT_SERVER_IDS: Array<u32> = Array::with_max_entries(
    specs::SHORT_SERVER_IDS.default_entries(),
    specs::SHORT_SERVER_IDS.flags,
);

/// How to reach each backend.
#[map]
pub static BACKENDS: Array<BackendEntry> =
    Array::with_max_entries(specs::BACKENDS.default_entries(), 0);

/// How the router encapsulates, per generation.
#[map]
pub static ENCAP_CONFIG: Array<EncapConfig> =
    Array::with_max_entries(specs::ENCAP_CONFIG.default_entries(), 0);

/// The consistent-hashing table for packets whose DCID names no server.
#[map]
pub static FALLBACK: Array<u32> = Array::with_max_entries(specs::FALLBACK.default_entries(), 0);

/// The interfaces backends are reached through: the redirect targets.
#[map]
pub static TX_PORTS: DevMapHash =
    DevMapHash::with_max_entries(specs::TX_PORTS.default_entries(), 0);

/// Local workers' sockets, for the `SO_REUSEPORT` selection.
#[map]
pub static WORKER_SOCKETS: ReusePortSockArray =
    ReusePortSockArray::with_max_entries(specs::WORKER_SOCKETS.default_entries(), 0);

// Written by the programs themselves, shared by both.

/// Backends of encrypted CIDs decoded before, in sets by CID, a region per CPU.
#[map]
pub static CID_CACHE: Array<CidCacheSet> =
    Array::with_max_entries(specs::CID_CACHE.default_entries(), 0);

/// Where the server ID a packet's CID or token decodes to is built, as `SERVER_IDS`' key
/// (one per CPU). Not on the stack: the decoder's call chain needs every octet of it.
#[map]
pub static SERVER_ID_KEY: PerCpuArray<ServerIdKey> =
    PerCpuArray::with_max_entries(specs::SERVER_ID_KEY.default_entries(), 0);

/// Where a packet's CID is made into a CID cache entry (one per CPU).
#[map]
pub static CID_CACHE_PROBE: PerCpuArray<CidCacheWay> =
    PerCpuArray::with_max_entries(specs::CID_CACHE_PROBE.default_entries(), 0);

/// Connection attempts whose Initial was routed by its token, for their 0-RTT packets.
#[map]
pub static TOKEN_FLOWS: LruHashMap<TokenFlowKey, TokenFlow> = LruHashMap::with_max_entries(
    specs::TOKEN_FLOWS.default_entries(),
    specs::TOKEN_FLOWS.flags,
);

/// The epoch in which a token flow was last made: while it is not the current one, no flow
/// can match, and a token-less Initial or 0-RTT packet skips the lookup.
#[map]
pub static TOKEN_FLOW_EPOCH: Array<u32> =
    Array::with_max_entries(specs::TOKEN_FLOW_EPOCH.default_entries(), 0);

// Counters, per CPU, read and summed by user space.

/// Packets by `Outcome`.
#[map]
pub static STATS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(specs::STATS.default_entries(), 0);

/// Packets and octets delivered to each backend.
#[map]
pub static BACKEND_STATS: PerCpuArray<BackendCounters> =
    PerCpuArray::with_max_entries(specs::BACKEND_STATS.default_entries(), 0);

/// Local workers' datagrams by `LocalOutcome`.
#[map]
pub static LOCAL_STATS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(specs::LOCAL_STATS.default_entries(), 0);

// Answers the program sends itself.

/// This CPU's budget of answers to packets too big for a tunnel (rate-limited ICMP).
#[map]
pub static ICMP_BUDGET: PerCpuArray<IcmpBudget> =
    PerCpuArray::with_max_entries(specs::ICMP_BUDGET.default_entries(), 0);

// Tracing, for `explain` only.

/// The last packet's verdict.
#[map]
pub static VERDICT: Array<Verdict> = Array::with_max_entries(specs::VERDICT.default_entries(), 0);
