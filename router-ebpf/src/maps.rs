//! The program's maps. Layouts and the generation scheme: `router_common::maps`.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMap, DevMapHash, HashMap, LruHashMap, PerCpuArray, ReusePortSockArray},
};
use router_common::maps::{
    BackendCounters, BackendEntry, CID_CACHE_ENTRIES, CID_CONFIG_SLOTS, CidCacheKey,
    CidConfigEntry, Control, FALLBACK_TABLE_SIZE, FLOOR_SLOTS, GENERATIONS, ListenerKey,
    LocalOutcome, MAX_BACKENDS, MAX_LISTENERS, MAX_SERVER_IDS, Outcome, PORTS, ServerIdKey,
    SinkCounter, Verdict, WORKER_SOCKET_SLOTS,
};

#[map]
pub static CONTROL: Array<Control> = Array::with_max_entries(1, 0);

#[map]
pub static LISTENER_PORTS: Array<u8> = Array::with_max_entries(GENERATIONS * PORTS, 0);

#[map]
pub static LISTENERS: HashMap<ListenerKey, u8> =
    HashMap::with_max_entries(GENERATIONS * MAX_LISTENERS, 0);

#[map]
pub static CID_CONFIGS: Array<CidConfigEntry> =
    Array::with_max_entries(GENERATIONS * CID_CONFIG_SLOTS, 0);

#[map]
pub static SERVER_IDS: HashMap<ServerIdKey, u32> =
    HashMap::with_max_entries(GENERATIONS * MAX_SERVER_IDS, 0);

#[map]
pub static BACKENDS: Array<BackendEntry> = Array::with_max_entries(GENERATIONS * MAX_BACKENDS, 0);

#[map]
pub static FALLBACK: Array<u32> = Array::with_max_entries(GENERATIONS * FALLBACK_TABLE_SIZE, 0);

#[map]
pub static TX_PORTS: DevMapHash = DevMapHash::with_max_entries(MAX_BACKENDS, 0);

#[map]
pub static CID_CACHE: LruHashMap<CidCacheKey, u32> =
    LruHashMap::with_max_entries(CID_CACHE_ENTRIES, 0);

/// Where the CID cache's key is built (one per CPU).
#[map]
pub static CID_CACHE_KEY: PerCpuArray<CidCacheKey> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Outcome::COUNT, 0);

#[map]
pub static BACKEND_STATS: PerCpuArray<BackendCounters> =
    PerCpuArray::with_max_entries(MAX_BACKENDS, 0);

#[map]
pub static WORKER_SOCKETS: ReusePortSockArray =
    ReusePortSockArray::with_max_entries(WORKER_SOCKET_SLOTS, 0);

#[map]
pub static LOCAL_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(LocalOutcome::COUNT, 0);

#[map]
pub static VERDICT: Array<Verdict> = Array::with_max_entries(1, 0);

/// The benchmark floor's redirect targets.
#[map]
pub static FLOOR_PORTS: DevMap = DevMap::with_max_entries(FLOOR_SLOTS, 0);

/// The Ethernet addresses the benchmark floor writes (destination, source), per slot.
#[map]
pub static FLOOR_MACS: Array<[u8; 12]> = Array::with_max_entries(FLOOR_SLOTS, 0);

/// The interface the benchmark's generator sends through (slot 0).
#[map]
pub static GENERATOR_PORT: DevMap = DevMap::with_max_entries(1, 0);

/// The index of the backend a benchmark sink counts for (slot 0).
#[map]
pub static SINK_BACKEND: Array<u32> = Array::with_max_entries(1, 0);

/// A benchmark sink's counters, by [`SinkCounter`].
#[map]
pub static SINK_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SinkCounter::COUNT, 0);
