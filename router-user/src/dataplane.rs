//! The XDP program's maps, written one generation at a time (see `router_common::maps`):
//! a change goes into the generation that packets do not use, then one store flips it in,
//! and the old one is left alone until no packet can still be reading it.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{
        Array, DevMapHash, HashMap, Map, MapData, MapError, PerCpuArray, ReusePortSockArray,
        xdp::XdpMapError,
    },
};
use router_common::maps::{
    BackendCounters, BackendEntry, CID_CONFIG_SLOTS, CidConfigEntry, Control, FALLBACK_TABLE_SIZE,
    GENERATIONS, LOCAL_WORKER_IFINDEX, ListenerKey, LocalOutcome, MAX_BACKENDS, Outcome, PORTS,
    ServerIdKey, worker_socket_index,
};

use crate::{
    config::RouterConfig,
    netif::{Interface, NetifError},
    tables::{BackendIndices, RoutingTables, TablesError},
};

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("the XDP object has no map {0}")]
    MissingMap(&'static str),
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: MapError },
    #[error("map TX_PORTS: {0}")]
    TxPorts(#[from] XdpMapError),
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error(
        "map {map} has {actual} entries where this build expects {expected}: it was pinned by another version; `quic-router detach` first"
    )]
    Layout {
        map: &'static str,
        actual: u32,
        expected: u32,
    },
}

fn map_error(map: &'static str) -> impl FnOnce(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { map, source }
}

/// Counters summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets per [`Outcome`], in `Outcome::ALL` order.
    pub outcomes: Vec<u64>,
    /// Datagrams per [`LocalOutcome`] (local workers' socket selection), in
    /// `LocalOutcome::ALL` order.
    pub local: Vec<u64>,
    /// Delivered packets and bytes per backend index (backends with traffic only).
    pub backends: BTreeMap<u32, BackendCounters>,
}

impl Counters {
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(outcome as usize).copied().unwrap_or(0)
    }

    pub fn local(&self, outcome: LocalOutcome) -> u64 {
        self.local.get(outcome as usize).copied().unwrap_or(0)
    }

    /// What backend `index` was delivered (zero for a backend without traffic).
    pub fn backend(&self, index: u32) -> BackendCounters {
        self.backends.get(&index).copied().unwrap_or_default()
    }
}

pub struct Dataplane {
    control: Array<MapData, Control>,
    listener_ports: Array<MapData, u8>,
    listeners: HashMap<MapData, ListenerKey, u8>,
    cid_configs: Array<MapData, CidConfigEntry>,
    server_ids: HashMap<MapData, ServerIdKey, u32>,
    backends: Array<MapData, BackendEntry>,
    fallback: Array<MapData, u32>,
    tx_port_map: DevMapHash<MapData>,
    stats: PerCpuArray<MapData, u64>,
    local_stats: PerCpuArray<MapData, u64>,
    backend_stats: PerCpuArray<MapData, BackendCounters>,
    /// The epoch in CONTROL: changes applied; its low bit is the generation packets use.
    epoch: u32,
    /// What each generation holds; `None` when unknown (then the next write is a full one).
    installed: [Option<RoutingTables>; 2],
    /// The interfaces in the devmap. An entry is never written twice: the kernel replaces a
    /// devmap-hash entry by unlinking the old one before linking the new, and a packet that
    /// looks it up in between finds nothing.
    tx_ports: BTreeSet<u32>,
    worker_sockets: ReusePortSockArray<MapData>,
    /// Local workers by backend index as the last apply left them; `None` before the first.
    local_workers: Option<BTreeMap<u32, String>>,
}

/// Takes map `name` out of the loaded program.
pub(crate) fn take<T: TryFrom<Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, DataplaneError> {
    let map = ebpf
        .take_map(name)
        .ok_or(DataplaneError::MissingMap(name))?;
    T::try_from(map).map_err(map_error(name))
}

/// Opens map `name` that a router pinned in `pin_dir` (the loader pins each map under its
/// name).
pub(crate) fn open_pinned<T: TryFrom<Map, Error = MapError>>(
    pin_dir: &Path,
    name: &'static str,
) -> Result<T, DataplaneError> {
    MapData::from_pin(pin_dir.join(name))
        .and_then(Map::from_map_data)
        .and_then(T::try_from)
        .map_err(map_error(name))
}

impl Dataplane {
    /// Takes the program's maps: new ones, or pinned ones a running router uses (then the
    /// active generation is left alone and the other one is rewritten in full on the first
    /// apply).
    pub fn new(ebpf: &mut Ebpf) -> Result<Self, DataplaneError> {
        let control: Array<MapData, Control> = take(ebpf, "CONTROL")?;
        let epoch = control.get(&0, 0).map_err(map_error("CONTROL"))?.epoch;
        let tx_port_map: DevMapHash<MapData> = take(ebpf, "TX_PORTS")?;
        // Pinned entries are live: known from the start, so that none is written again.
        let tx_ports = tx_port_map
            .keys()
            .collect::<Result<_, _>>()
            .map_err(map_error("TX_PORTS"))?;
        let dataplane = Self {
            control,
            listener_ports: take(ebpf, "LISTENER_PORTS")?,
            listeners: take(ebpf, "LISTENERS")?,
            cid_configs: take(ebpf, "CID_CONFIGS")?,
            server_ids: take(ebpf, "SERVER_IDS")?,
            backends: take(ebpf, "BACKENDS")?,
            fallback: take(ebpf, "FALLBACK")?,
            tx_port_map,
            stats: take(ebpf, "STATS")?,
            local_stats: take(ebpf, "LOCAL_STATS")?,
            backend_stats: take(ebpf, "BACKEND_STATS")?,
            epoch,
            installed: [None, None],
            tx_ports,
            worker_sockets: take(ebpf, "WORKER_SOCKETS")?,
            local_workers: None,
        };
        dataplane.check_sizes()?;
        Ok(dataplane)
    }

    /// Pinned maps from an older build may have other sizes; typed maps check key and value
    /// sizes, this checks the number of entries.
    fn check_sizes(&self) -> Result<(), DataplaneError> {
        let sizes = [
            (
                "LISTENER_PORTS",
                self.listener_ports.len(),
                GENERATIONS * PORTS,
            ),
            (
                "CID_CONFIGS",
                self.cid_configs.len(),
                GENERATIONS * CID_CONFIG_SLOTS,
            ),
            ("BACKENDS", self.backends.len(), GENERATIONS * MAX_BACKENDS),
            (
                "FALLBACK",
                self.fallback.len(),
                GENERATIONS * FALLBACK_TABLE_SIZE,
            ),
            ("STATS", self.stats.len(), Outcome::COUNT),
            ("LOCAL_STATS", self.local_stats.len(), LocalOutcome::COUNT),
            ("BACKEND_STATS", self.backend_stats.len(), MAX_BACKENDS),
        ];
        for (map, actual, expected) in sizes {
            if actual != expected {
                return Err(DataplaneError::Layout {
                    map,
                    actual,
                    expected,
                });
            }
        }
        Ok(())
    }

    /// Changes applied so far (the generation packets use is its low bit).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The tables packets use; `None` while unknown (pinned maps adopted, nothing applied).
    pub fn active(&self) -> Option<&RoutingTables> {
        self.installed[Control { epoch: self.epoch }.generation() as usize].as_ref()
    }

    /// Installs the tables for `config` unless they are the active ones already. `indices`
    /// changes only when they are installed: new names get indices, and names that neither
    /// installed generation has any more are forgotten.
    pub fn install(
        &mut self,
        config: &RouterConfig,
        indices: &mut BackendIndices,
        interface: impl Fn(&str) -> Result<Interface, NetifError>,
    ) -> Result<(), DataplaneError> {
        let mut new_indices = indices.clone();
        let tables = RoutingTables::build(config, &mut new_indices, interface)?;
        if self.active() == Some(&tables) {
            return Ok(());
        }
        self.apply(tables)?;
        let installed: Vec<&RoutingTables> = self.installed.iter().flatten().collect();
        new_indices.retain(&installed);
        *indices = new_indices;
        Ok(())
    }

    /// Installs `tables`: writes the inactive generation, flips to it, waits until no packet
    /// can be using the old one. On an error the active generation is untouched.
    pub fn apply(&mut self, tables: RoutingTables) -> Result<(), DataplaneError> {
        let epoch = self.epoch.wrapping_add(1);
        let target = Control { epoch }.generation();
        // Unknown until written in full: an error half-way leaves it so.
        let previous = self.installed[target as usize].take();
        self.write_generation(target, &tables, previous.as_ref())?;
        self.control
            .set(0, Control { epoch }, 0)
            .map_err(map_error("CONTROL"))?;
        self.epoch = epoch;
        wait_for_readers();
        // Interfaces that only the retired generation used.
        let unused: Vec<u32> = self
            .tx_ports
            .difference(&tables.tx_ports)
            .copied()
            .collect();
        for ifindex in unused {
            self.tx_port_map
                .remove(ifindex)
                .map_err(map_error("TX_PORTS"))?;
            self.tx_ports.remove(&ifindex);
        }
        self.clear_worker_sockets(&tables);
        self.installed[target as usize] = Some(tables);
        Ok(())
    }

    /// Empties the socket slots of backend indices that are no longer the same local worker
    /// (removed, now a host, or reused for another name), so that a departed worker's process
    /// stops getting packets that name its index. The first apply clears every slot that is
    /// not a local worker's.
    fn clear_worker_sockets(&mut self, tables: &RoutingTables) {
        let now: BTreeMap<u32, String> = tables
            .backends
            .iter()
            .filter(|(_, entry)| entry.ifindex == LOCAL_WORKER_IFINDEX)
            .filter_map(|(index, _)| Some((*index, tables.backend_names.get(index)?.clone())))
            .collect();
        let stale: Vec<u32> = match &self.local_workers {
            None => (0..MAX_BACKENDS).filter(|i| !now.contains_key(i)).collect(),
            Some(before) => before
                .iter()
                .filter(|(index, name)| now.get(index) != Some(name))
                .map(|(index, _)| *index)
                .collect(),
        };
        for index in stale {
            for ipv6 in [false, true] {
                // An empty slot answers ENOENT: nothing to clear.
                let _ = self
                    .worker_sockets
                    .clear_index(&worker_socket_index(index, ipv6));
            }
        }
        self.local_workers = Some(now);
    }

    fn write_generation(
        &mut self,
        generation: u32,
        tables: &RoutingTables,
        previous: Option<&RoutingTables>,
    ) -> Result<(), DataplaneError> {
        let gen_u8 = generation as u8;
        for &ifindex in tables.tx_ports.difference(&self.tx_ports.clone()) {
            self.tx_port_map.insert(ifindex, ifindex, None, 0)?;
            self.tx_ports.insert(ifindex);
        }

        // Arrays: write the slots that differ (every slot when the previous content is unknown).
        let ports = |tables: &RoutingTables| -> BTreeSet<u32> {
            tables
                .listeners
                .keys()
                .map(|key| u32::from(u16::from_be(key.port_be)))
                .collect()
        };
        let wanted_ports = ports(tables);
        let previous_ports = previous.map(ports);
        for port in 0..PORTS {
            let wanted = u8::from(wanted_ports.contains(&port));
            let had = previous_ports.as_ref().map(|p| u8::from(p.contains(&port)));
            if had != Some(wanted) {
                self.listener_ports
                    .set(generation * PORTS + port, wanted, 0)
                    .map_err(map_error("LISTENER_PORTS"))?;
            }
        }
        for slot in 0..CID_CONFIG_SLOTS as usize {
            let new = tables.cid_configs[slot];
            if previous.is_none_or(|p| p.cid_configs[slot] != new) {
                self.cid_configs
                    .set(generation * CID_CONFIG_SLOTS + slot as u32, new, 0)
                    .map_err(map_error("CID_CONFIGS"))?;
            }
        }
        for index in 0..MAX_BACKENDS {
            let new = tables.backends.get(&index).copied().unwrap_or_default();
            let old = previous.map(|p| p.backends.get(&index).copied().unwrap_or_default());
            if old != Some(new) {
                self.backends
                    .set(generation * MAX_BACKENDS + index, new, 0)
                    .map_err(map_error("BACKENDS"))?;
            }
        }
        for (slot, &new) in tables.fallback.iter().enumerate() {
            if previous.is_none_or(|p| p.fallback[slot] != new) {
                self.fallback
                    .set(generation * FALLBACK_TABLE_SIZE + slot as u32, new, 0)
                    .map_err(map_error("FALLBACK"))?;
            }
        }

        // Hash maps: insert what is new or changed, remove what is gone.
        sync_hash_map(
            &mut self.server_ids,
            "SERVER_IDS",
            gen_u8,
            &tables.server_ids,
            previous.map(|p| &p.server_ids),
        )?;
        sync_hash_map(
            &mut self.listeners,
            "LISTENERS",
            gen_u8,
            &tables.listeners,
            previous.map(|p| &p.listeners),
        )?;
        Ok(())
    }

    /// Every counter, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, DataplaneError> {
        Counters::read(&self.stats, &self.local_stats, &self.backend_stats)
    }
}

impl Counters {
    /// Reads and sums the per-CPU counter maps.
    pub fn read(
        stats: &PerCpuArray<MapData, u64>,
        local_stats: &PerCpuArray<MapData, u64>,
        backend_stats: &PerCpuArray<MapData, BackendCounters>,
    ) -> Result<Self, DataplaneError> {
        let sum = |map: &PerCpuArray<MapData, u64>, name: &'static str, index: u32| {
            map.get(&index, 0)
                .map(|values| values.iter().sum())
                .map_err(map_error(name))
        };
        let outcomes = Outcome::ALL
            .iter()
            .map(|&outcome| sum(stats, "STATS", outcome as u32))
            .collect::<Result<_, _>>()?;
        let local = LocalOutcome::ALL
            .iter()
            .map(|&outcome| sum(local_stats, "LOCAL_STATS", outcome as u32))
            .collect::<Result<_, _>>()?;
        let mut backends = BTreeMap::new();
        for index in 0..MAX_BACKENDS {
            let values = backend_stats
                .get(&index, 0)
                .map_err(map_error("BACKEND_STATS"))?;
            let total =
                values
                    .iter()
                    .fold(BackendCounters::default(), |sum, cpu| BackendCounters {
                        packets: sum.packets + cpu.packets,
                        bytes: sum.bytes + cpu.bytes,
                    });
            if total.packets > 0 {
                backends.insert(index, total);
            }
        }
        Ok(Self {
            outcomes,
            local,
            backends,
        })
    }

    /// Opens the counter maps that a router pinned in `pin_dir` and reads them.
    pub fn read_pinned(pin_dir: &Path) -> Result<Self, DataplaneError> {
        Self::read(
            &open_pinned(pin_dir, "STATS")?,
            &open_pinned(pin_dir, "LOCAL_STATS")?,
            &open_pinned(pin_dir, "BACKEND_STATS")?,
        )
    }
}

/// CONTROL's epoch in the maps pinned in `pin_dir`: the changes applied so far.
pub fn pinned_epoch(pin_dir: &Path) -> Result<u32, DataplaneError> {
    let control: Array<MapData, Control> = open_pinned(pin_dir, "CONTROL")?;
    Ok(control.get(&0, 0).map_err(map_error("CONTROL"))?.epoch)
}

/// A hash map key with a generation octet.
trait GenerationKey: aya::Pod + Ord {
    fn generation(&self) -> u8;
    fn with_generation(self, generation: u8) -> Self;
}

impl GenerationKey for ServerIdKey {
    fn generation(&self) -> u8 {
        self.generation
    }
    fn with_generation(self, generation: u8) -> Self {
        Self { generation, ..self }
    }
}

impl GenerationKey for ListenerKey {
    fn generation(&self) -> u8 {
        self.generation
    }
    fn with_generation(self, generation: u8) -> Self {
        Self { generation, ..self }
    }
}

/// Makes `generation` of `map` hold exactly `wanted` (whose keys carry generation 0), given
/// what it held before (`None`: unknown, so the map's keys are read).
fn sync_hash_map<K: GenerationKey, V: aya::Pod + PartialEq>(
    map: &mut HashMap<MapData, K, V>,
    name: &'static str,
    generation: u8,
    wanted: &BTreeMap<K, V>,
    previous: Option<&BTreeMap<K, V>>,
) -> Result<(), DataplaneError> {
    for (key, value) in wanted {
        if previous.is_none_or(|p| p.get(key) != Some(value)) {
            map.insert(key.with_generation(generation), *value, 0)
                .map_err(map_error(name))?;
        }
    }
    let stale: Vec<K> = match previous {
        Some(p) => p
            .keys()
            .filter(|key| !wanted.contains_key(key))
            .map(|key| key.with_generation(generation))
            .collect(),
        None => map
            .keys()
            .filter_map(Result::ok)
            .filter(|key| {
                key.generation() == generation && !wanted.contains_key(&key.with_generation(0))
            })
            .collect(),
    };
    for key in stale {
        map.remove(&key).map_err(map_error(name))?;
    }
    Ok(())
}

/// Waits for an RCU grace period: every XDP run that started before it has finished, so no
/// packet can still be reading the generation just retired. `membarrier(MEMBARRIER_CMD_GLOBAL)`
/// is `synchronize_rcu()` in the kernel; where it is refused (nohz_full), sleep instead:
/// one XDP run takes microseconds.
fn wait_for_readers() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;
    // SAFETY: membarrier takes no pointers.
    let status = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if status != 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
}
