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
        Array, DevMapHash, HashMap, IterableMap as _, Map, MapData, MapError, MapInfo, PerCpuArray,
        ReusePortSockArray, xdp::XdpMapError,
    },
};
use router_common::{
    counters::{LocalOutcome, Outcome},
    maps::{
        BackendCounters, BackendEntry, CID_CONFIG_SLOTS, CidConfigEntry, Control, EncapConfig,
        Ingress, LOCAL_WORKER_IFINDEX, Limits, ListenerKey, MapSpec, PORTS, PortListeners,
        SHORT_SERVER_ID_SLOTS, ServerIdKey, backend_slot, cid_config_slot, fallback_slot,
        listener_port_slot, short_server_id_slot, specs, worker_socket_slot,
    },
    quic_lb::MAX_SERVER_ID_LEN,
};

use crate::{
    config::RouterConfig,
    mapped::MappedArray,
    netif::{Interface, NetifError},
    tables::{BackendIndices, RoutingTables, TablesError},
};

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("the router's object has no map {0}")]
    MissingMap(&'static str),
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: MapError },
    #[error("map {map}: cannot map it into memory: {source}")]
    Mmap {
        map: &'static str,
        source: std::io::Error,
    },
    #[error("map TX_PORTS: {0}")]
    TxPorts(#[from] XdpMapError),
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error(
        "another writer changed the maps (epoch {prepared}, now {now}) since the change was prepared; nothing was written"
    )]
    Moved { prepared: u32, now: u32 },
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

/// A config made into tables and checked, not yet installed ([`Dataplane::prepare`]).
pub struct Prepared {
    /// The epoch once installed.
    epoch: u32,
    /// The epoch it was prepared at.
    from_epoch: u32,
    /// `None`: the active tables are these already.
    tables: Option<RoutingTables>,
    /// The backend indices once installed.
    indices: BackendIndices,
}

impl Prepared {
    /// The epoch once installed.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The backend indices once installed, by name.
    pub fn backend_indices(&self) -> &BTreeMap<String, u32> {
        self.indices.as_map()
    }
}

/// The maps user space writes and reads, taken out of a loaded router.
pub struct Dataplane {
    limits: Limits,
    control: Array<MapData, Control>,
    listener_ports: Array<MapData, PortListeners>,
    listeners: HashMap<MapData, ListenerKey, u8>,
    cid_configs: Array<MapData, CidConfigEntry>,
    server_ids: HashMap<MapData, ServerIdKey, u32>,
    short_server_ids: MappedArray,
    backends: Array<MapData, BackendEntry>,
    encap_config: Array<MapData, EncapConfig>,
    ingress: Array<MapData, Ingress>,
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

/// Takes `spec`'s map out of the loaded program.
pub(crate) fn take<T: TryFrom<Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    spec: &MapSpec,
) -> Result<T, DataplaneError> {
    let map = ebpf
        .take_map(spec.name)
        .ok_or(DataplaneError::MissingMap(spec.name))?;
    T::try_from(map).map_err(map_error(spec.name))
}

/// Takes `spec`'s map, an array made with `BPF_F_MMAPABLE`, and maps it.
fn take_mapped(ebpf: &mut Ebpf, spec: &MapSpec) -> Result<MappedArray, DataplaneError> {
    let map = ebpf
        .take_map(spec.name)
        .ok_or(DataplaneError::MissingMap(spec.name))?;
    MappedArray::new(map, spec.default_entries()).map_err(|source| DataplaneError::Mmap {
        map: spec.name,
        source,
    })
}

/// Opens `spec`'s map that a router pinned in `pin_dir`.
pub(crate) fn open_pinned<T: TryFrom<Map, Error = MapError>>(
    pin_dir: &Path,
    spec: &MapSpec,
) -> Result<T, DataplaneError> {
    MapData::from_pin(crate::ebpf::pin_path(pin_dir, spec))
        .and_then(Map::from_map_data)
        .and_then(T::try_from)
        .map_err(map_error(spec.name))
}

impl Dataplane {
    /// Takes the program's maps (made, or adopted and checked, by `ebpf::load` to `limits`):
    /// new ones, or pinned ones a running router uses (then the active generation is left
    /// alone and the other one is rewritten in full on the first apply).
    pub fn new(ebpf: &mut Ebpf, limits: Limits) -> Result<Self, DataplaneError> {
        let control: Array<MapData, Control> = take(ebpf, &specs::CONTROL)?;
        let epoch = kernel_epoch(&control)?;
        let tx_port_map: DevMapHash<MapData> = take(ebpf, &specs::TX_PORTS)?;
        let tx_ports = devmap_ports(&tx_port_map)?;
        Ok(Self {
            limits,
            control,
            listener_ports: take(ebpf, &specs::LISTENER_PORTS)?,
            listeners: take(ebpf, &specs::LISTENERS)?,
            cid_configs: take(ebpf, &specs::CID_CONFIGS)?,
            server_ids: take(ebpf, &specs::SERVER_IDS)?,
            short_server_ids: take_mapped(ebpf, &specs::SHORT_SERVER_IDS)?,
            backends: take(ebpf, &specs::BACKENDS)?,
            encap_config: take(ebpf, &specs::ENCAP_CONFIG)?,
            ingress: take(ebpf, &specs::INGRESS)?,
            fallback: take(ebpf, &specs::FALLBACK)?,
            tx_port_map,
            stats: take(ebpf, &specs::STATS)?,
            local_stats: take(ebpf, &specs::LOCAL_STATS)?,
            backend_stats: take(ebpf, &specs::BACKEND_STATS)?,
            epoch,
            installed: [None, None],
            tx_ports,
            worker_sockets: take(ebpf, &specs::WORKER_SOCKETS)?,
            local_workers: None,
        })
    }

    /// The sizes the maps were made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes applied so far (the generation packets use is its low bit).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The tables packets use; `None` while unknown (pinned maps adopted, nothing applied).
    pub fn active(&self) -> Option<&RoutingTables> {
        self.installed[Control { epoch: self.epoch }.generation() as usize].as_ref()
    }

    /// Builds the tables for `config` (new names get indices; nothing is written yet): every
    /// check installing makes, done. [`commit`](Self::commit) installs them.
    pub fn prepare(
        &mut self,
        config: &RouterConfig,
        indices: &BackendIndices,
        interface: impl Fn(&str) -> Result<Interface, NetifError>,
    ) -> Result<Prepared, DataplaneError> {
        self.follow_kernel()?;
        let mut indices = indices.clone();
        let tables = RoutingTables::build(config, &mut indices, &self.limits, interface)?;
        let unchanged = self.active() == Some(&tables);
        // What the indices will be once installed: names that neither generation has any
        // more are forgotten.
        if !unchanged {
            let other =
                self.installed[Control { epoch: self.epoch }.generation() as usize].as_ref();
            indices.retain(
                &[Some(&tables), other]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>(),
            );
        }
        Ok(Prepared {
            epoch: if unchanged {
                self.epoch
            } else {
                self.epoch.wrapping_add(1)
            },
            from_epoch: self.epoch,
            tables: (!unchanged).then_some(tables),
            indices,
        })
    }

    /// Installs what [`prepare`](Self::prepare) made, unless the kernel's epoch moved since
    /// (another writer): then nothing is written.
    pub fn commit(&mut self, prepared: Prepared) -> Result<BackendIndices, DataplaneError> {
        let epoch = kernel_epoch(&self.control)?;
        if epoch != prepared.from_epoch {
            return Err(DataplaneError::Moved {
                prepared: prepared.from_epoch,
                now: epoch,
            });
        }
        if let Some(tables) = prepared.tables {
            self.apply(tables)?;
        }
        Ok(prepared.indices)
    }

    /// Installs `tables`: writes the inactive generation, flips to it, waits until no packet
    /// can be using the old one. On an error the active generation is untouched.
    fn apply(&mut self, tables: RoutingTables) -> Result<(), DataplaneError> {
        let epoch = self.epoch.wrapping_add(1);
        let target = Control { epoch }.generation();
        // Unknown until written in full: an error half-way leaves it so.
        let previous = self.installed[target as usize].take();
        self.write_generation(target, &tables, previous.as_ref())?;
        self.control
            .set(0, Control { epoch }, 0)
            .map_err(map_error(specs::CONTROL.name))?;
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
                .map_err(map_error(specs::TX_PORTS.name))?;
            self.tx_ports.remove(&ifindex);
        }
        self.clear_worker_sockets(&tables);
        self.installed[target as usize] = Some(tables);
        Ok(())
    }

    /// Takes the epoch from the kernel, not from memory: if another writer flipped the
    /// generations since (there should be none: a controller holds its interface's lock),
    /// neither generation's content is known any more, and the next write is a full one into
    /// the generation packets do not use.
    fn follow_kernel(&mut self) -> Result<(), DataplaneError> {
        let epoch = kernel_epoch(&self.control)?;
        if epoch != self.epoch {
            self.epoch = epoch;
            self.installed = [None, None];
            self.tx_ports = devmap_ports(&self.tx_port_map)?;
            self.local_workers = None;
        }
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
            None => (0..self.limits.backend_indices())
                .filter(|i| !now.contains_key(i))
                .collect(),
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
                    .clear_index(&worker_socket_slot(index, ipv6));
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
        let wanted_ports = port_listeners(tables);
        let previous_ports = previous.map(port_listeners);
        for port in 0..PORTS {
            let wanted = wanted_ports.get(&port).copied().unwrap_or_default();
            let had = previous_ports
                .as_ref()
                .map(|p| p.get(&port).copied().unwrap_or_default());
            if had != Some(wanted) {
                self.listener_ports
                    .set(listener_port_slot(generation, port), wanted, 0)
                    .map_err(map_error(specs::LISTENER_PORTS.name))?;
            }
        }
        for slot in 0..CID_CONFIG_SLOTS as usize {
            let new = tables.cid_configs[slot];
            if previous.is_none_or(|p| p.cid_configs[slot] != new) {
                self.cid_configs
                    .set(cid_config_slot(generation, slot as u32), new, 0)
                    .map_err(map_error(specs::CID_CONFIGS.name))?;
            }
        }
        for index in 0..self.limits.backend_indices() {
            let new = tables.backends.get(&index).copied().unwrap_or_default();
            let old = previous.map(|p| p.backends.get(&index).copied().unwrap_or_default());
            if old != Some(new) {
                self.backends
                    .set(backend_slot(generation, index), new, 0)
                    .map_err(map_error(specs::BACKENDS.name))?;
            }
        }
        if previous.is_none_or(|p| p.encap != tables.encap) {
            self.encap_config
                .set(generation, tables.encap, 0)
                .map_err(map_error(specs::ENCAP_CONFIG.name))?;
        }
        for (slot, &new) in tables.fallback.iter().enumerate() {
            if previous.is_none_or(|p| p.fallback[slot] != new) {
                self.fallback
                    .set(fallback_slot(generation, slot as u32), new, 0)
                    .map_err(map_error(specs::FALLBACK.name))?;
            }
        }

        // Short server IDs: the whole generation's region, rewritten in memory.
        let start = short_server_id_slot(generation, 0, &[0; MAX_SERVER_ID_LEN]) as usize;
        self.short_server_ids.rewrite(
            start..start + (CID_CONFIG_SLOTS * SHORT_SERVER_ID_SLOTS) as usize,
            tables
                .short_server_ids()
                .map(|(slot, value)| (start + slot as usize, value)),
        );

        // Hash maps: insert what is new or changed, remove what is gone.
        sync_hash_map(
            &mut self.server_ids,
            specs::SERVER_IDS.name,
            gen_u8,
            &tables.server_ids,
            previous.map(|p| &p.server_ids),
        )?;
        sync_hash_map(
            &mut self.listeners,
            specs::LISTENERS.name,
            gen_u8,
            &tables.listeners,
            previous.map(|p| &p.listeners),
        )?;
        Ok(())
    }

    /// The interface the program guards, and its MAC ([`Ingress`]).
    pub fn ingress(&self) -> Result<Ingress, DataplaneError> {
        self.ingress
            .get(&0, 0)
            .map_err(map_error(specs::INGRESS.name))
    }

    /// Makes the program route only frames for `ingress`'s MAC on its interface.
    pub fn set_ingress(&mut self, ingress: Ingress) -> Result<(), DataplaneError> {
        self.ingress
            .set(0, ingress, 0)
            .map_err(map_error(specs::INGRESS.name))
    }

    /// The local workers' socket slots.
    pub fn worker_sockets_mut(&mut self) -> &mut ReusePortSockArray<MapData> {
        &mut self.worker_sockets
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
            .map(|&outcome| sum(stats, specs::STATS.name, outcome as u32))
            .collect::<Result<_, _>>()?;
        let local = LocalOutcome::ALL
            .iter()
            .map(|&outcome| sum(local_stats, specs::LOCAL_STATS.name, outcome as u32))
            .collect::<Result<_, _>>()?;
        let mut backends = BTreeMap::new();
        // The kernel's size: pinned maps keep the limits they were made with.
        let indices = backend_stats
            .map()
            .info()
            .map_err(map_error(specs::BACKEND_STATS.name))?
            .max_entries();
        for index in 0..indices {
            let values = backend_stats
                .get(&index, 0)
                .map_err(map_error(specs::BACKEND_STATS.name))?;
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
            &open_pinned(pin_dir, &specs::STATS)?,
            &open_pinned(pin_dir, &specs::LOCAL_STATS)?,
            &open_pinned(pin_dir, &specs::BACKEND_STATS)?,
        )
    }
}

/// The epoch in `CONTROL`.
fn kernel_epoch(control: &Array<MapData, Control>) -> Result<u32, DataplaneError> {
    Ok(control
        .get(&0, 0)
        .map_err(map_error(specs::CONTROL.name))?
        .epoch)
}

/// The interfaces in the devmap: live entries, never to be written again.
fn devmap_ports(map: &DevMapHash<MapData>) -> Result<BTreeSet<u32>, DataplaneError> {
    map.keys()
        .collect::<Result<_, _>>()
        .map_err(map_error(specs::TX_PORTS.name))
}

/// The number of entries of `spec`'s map pinned in `pin_dir`, as the kernel made it.
pub(crate) fn pinned_entries(pin_dir: &Path, spec: &MapSpec) -> Result<u32, DataplaneError> {
    MapInfo::from_pin(crate::ebpf::pin_path(pin_dir, spec))
        .map(|info| info.max_entries())
        .map_err(map_error(spec.name))
}

/// CONTROL's epoch in the maps pinned in `pin_dir`: the changes applied so far.
pub fn pinned_epoch(pin_dir: &Path) -> Result<u32, DataplaneError> {
    let control: Array<MapData, Control> = open_pinned(pin_dir, &specs::CONTROL)?;
    Ok(control
        .get(&0, 0)
        .map_err(map_error(specs::CONTROL.name))?
        .epoch)
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

/// The `LISTENER_PORTS` value of each port that has listeners.
fn port_listeners(tables: &RoutingTables) -> BTreeMap<u32, PortListeners> {
    let mut ports = BTreeMap::<u32, PortListeners>::new();
    for (key, &flags) in &tables.listeners {
        ports
            .entry(u32::from(u16::from_be(key.port_be)))
            .or_default()
            .add(key, flags);
    }
    ports
}
