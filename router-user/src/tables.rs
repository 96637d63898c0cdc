//! What one generation of the maps holds, built from a config: the user-space image of the
//! routing tables, compared with what is installed to write only the difference.
//! [`Router::active_tables`](crate::router::Router::active_tables) shows the ones packets use.

use std::collections::{BTreeMap, BTreeSet};

use router_common::{
    flow_hash::flow_addr,
    maps::{
        BackendEntry, CID_CONFIG_SLOTS, CidConfigEntry, DELIVERY_GUE, DELIVERY_IPIP, DELIVERY_L2,
        EncapConfig, FALLBACK_TABLE_SIZE, LISTENER_HASH_INITIALS, LOCAL_WORKER_IFINDEX, Limits,
        ListenerKey, MAX_SHORT_SERVER_ID_LEN, NO_BACKEND, ROUTED_IFINDEX, ServerIdKey,
        short_server_id_slot,
    },
    quic_lb::AesRoundKeys,
};

use crate::{
    config::{
        BackendState, Delivery, Encapsulation, InitialRouting, Listener, Reach, RouterConfig,
    },
    decap::Prefix,
    fallback::{Member, maglev_table},
    netif::{Interface, NetifError},
};

/// One generation's routing tables. Keys carry generation 0; the writer sets it.
#[derive(Clone, PartialEq, Eq)]
pub struct RoutingTables {
    /// Listener keys and their flags.
    pub listeners: BTreeMap<ListenerKey, u8>,
    pub cid_configs: Vec<CidConfigEntry>,
    pub server_ids: BTreeMap<ServerIdKey, u32>,
    pub backends: BTreeMap<u32, BackendEntry>,
    pub fallback: Vec<u32>,
    /// Interfaces that backends are reached through (devmap entries).
    pub tx_ports: BTreeSet<u32>,
    /// Backend names by index: not in the maps, for reports.
    pub backend_names: BTreeMap<u32, String>,
    /// How backends behind GUE or IP-in-IP are reached.
    pub encap: EncapConfig,
}

impl RoutingTables {
    /// What this generation's region of `SHORT_SERVER_IDS` holds besides zeros, as (slot in
    /// generation 0, backend index + 1): each server ID of at most [`MAX_SHORT_SERVER_ID_LEN`]
    /// octets under an active config.
    pub fn short_server_ids(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.server_ids.iter().filter_map(|(key, &backend)| {
            let config = self.cid_configs.get(usize::from(key.config_rotation))?;
            (config.active != 0 && config.server_id_len <= MAX_SHORT_SERVER_ID_LEN).then(|| {
                let slot = short_server_id_slot(0, key.config_rotation.into(), &key.server_id);
                (slot, backend + 1)
            })
        })
    }
}

/// Never shows the configs: they hold key schedules.
impl std::fmt::Debug for RoutingTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingTables")
            .field("listeners", &self.listeners.len())
            .field("server_ids", &self.server_ids.len())
            .field("backends", &self.backend_names)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("backend {backend}: {source}")]
    Interface { backend: String, source: NetifError },
    #[error(
        "more than {0} backend indices in use (twice limits.backends: a removed backend keeps its index until the next change)"
    )]
    OutOfIndices(u32),
}

/// Stable backend indices by name, so that per-backend counters stay with their backend
/// across reloads. An index is freed only when no installed generation uses it.
#[derive(Debug, Default, Clone)]
pub(crate) struct BackendIndices {
    by_name: BTreeMap<String, u32>,
}

impl BackendIndices {
    /// Indices recorded by an earlier controller.
    pub fn from_map(by_name: BTreeMap<String, u32>) -> Self {
        Self { by_name }
    }

    pub fn as_map(&self) -> &BTreeMap<String, u32> {
        &self.by_name
    }

    /// The index of `name`, assigning the lowest free one below `available` to a new name.
    fn index(&mut self, name: &str, available: u32) -> Result<u32, TablesError> {
        if let Some(&index) = self.by_name.get(name) {
            return Ok(index);
        }
        let used: BTreeSet<u32> = self.by_name.values().copied().collect();
        let index = (0..available)
            .find(|i| !used.contains(i))
            .ok_or(TablesError::OutOfIndices(available))?;
        self.by_name.insert(name.to_owned(), index);
        Ok(index)
    }

    /// Forgets every name that none of `in_use` has.
    pub fn retain(&mut self, in_use: &[&RoutingTables]) {
        self.by_name.retain(|name, index| {
            in_use
                .iter()
                .any(|tables| tables.backend_names.get(index) == Some(name))
        });
    }
}

impl RoutingTables {
    /// Tables that route nothing: every packet is "not for a listener".
    fn empty() -> Self {
        Self {
            listeners: BTreeMap::new(),
            cid_configs: vec![CidConfigEntry::INACTIVE; CID_CONFIG_SLOTS as usize],
            server_ids: BTreeMap::new(),
            backends: BTreeMap::new(),
            fallback: vec![NO_BACKEND; FALLBACK_TABLE_SIZE as usize],
            tx_ports: BTreeSet::new(),
            backend_names: BTreeMap::new(),
            encap: EncapConfig::default(),
        }
    }

    /// The tables for `config` in maps made to `limits`; `interface` resolves backend
    /// interfaces.
    pub(crate) fn build(
        config: &RouterConfig,
        indices: &mut BackendIndices,
        limits: &Limits,
        interface: impl Fn(&str) -> Result<Interface, NetifError>,
    ) -> Result<Self, TablesError> {
        let mut tables = Self::empty();
        tables.encap = encap_config(&config.encapsulation);
        tables.listeners = config
            .listeners
            .iter()
            .map(|listener| {
                let flags = match listener.initial_routing {
                    InitialRouting::Cid => 0,
                    InitialRouting::Hash => LISTENER_HASH_INITIALS,
                };
                (listener_key(listener), flags)
            })
            .collect();
        for cid_config in &config.cid_configs {
            let params = &cid_config.params;
            tables.cid_configs[params.config_rotation as usize] = CidConfigEntry {
                active: 1,
                encrypted: cid_config.key.is_some() as u8,
                server_id_len: params.server_id_len,
                plaintext_len: params.plaintext_len() as u8,
                cid_len: params.cid_len() as u8,
                _pad: [0; 3],
                round_keys: cid_config
                    .key
                    .as_ref()
                    .map_or(CidConfigEntry::INACTIVE.round_keys, |key| {
                        AesRoundKeys::expand(key.as_bytes())
                    }),
            };
        }
        let mut members = Vec::new();
        for backend in &config.backends {
            let index = indices.index(&backend.name, limits.backend_indices())?;
            let mut entry = match &backend.reach {
                Reach::Host {
                    interface: name,
                    next_hop_mac,
                    delivery,
                } => {
                    let Interface { ifindex, mac } =
                        interface(name).map_err(|source| TablesError::Interface {
                            backend: backend.name.clone(),
                            source,
                        })?;
                    tables.tx_ports.insert(ifindex);
                    BackendEntry {
                        ifindex,
                        dst_mac: *next_hop_mac,
                        src_mac: mac,
                        ..delivery_entry(delivery)
                    }
                }
                Reach::Routed { delivery } => BackendEntry {
                    ifindex: ROUTED_IFINDEX,
                    ..delivery_entry(delivery)
                },
                Reach::LocalWorker => BackendEntry {
                    ifindex: LOCAL_WORKER_IFINDEX,
                    ..BackendEntry::default()
                },
            };
            entry.draining = u8::from(backend.state == BackendState::Draining);
            tables.backends.insert(index, entry);
            tables.backend_names.insert(index, backend.name.clone());
            for (config_rotation, server_id) in &backend.server_ids {
                tables
                    .server_ids
                    .insert(ServerIdKey::new(*config_rotation, server_id), index);
            }
            if backend.state == BackendState::Active {
                members.push(Member {
                    name: &backend.name,
                    index,
                    weight: backend.weight,
                });
            }
        }
        tables.fallback = maglev_table(&members, FALLBACK_TABLE_SIZE);
        Ok(tables)
    }
}

/// A backend entry's delivery method and tunnel address.
fn delivery_entry(delivery: &Delivery) -> BackendEntry {
    let (method, tunnel) = match *delivery {
        Delivery::L2 => (DELIVERY_L2, None),
        Delivery::Gue { tunnel } => (DELIVERY_GUE, Some(tunnel)),
        Delivery::Ipip { tunnel } => (DELIVERY_IPIP, Some(tunnel)),
    };
    let (tunnel_family, tunnel_address) = tunnel.map_or((0, [0; 16]), flow_addr);
    BackendEntry {
        delivery: method,
        tunnel_family,
        tunnel_address,
        ..BackendEntry::default()
    }
}

/// The map key of a listener (generation 0).
fn listener_key(listener: &Listener) -> ListenerKey {
    let (family, addr) = flow_addr(listener.address);
    ListenerKey {
        addr,
        port_be: listener.port.to_be(),
        family,
        generation: 0,
    }
}

/// `[encapsulation]` as the program takes it: each prefix's address and its host bits (the
/// last 32 of an IPv6 prefix at most) as a mask.
pub(crate) fn encap_config(encapsulation: &Encapsulation) -> EncapConfig {
    let hosts = |prefix: &Prefix, bits: u32| {
        let host_bits = (bits - u32::from(prefix.len)).min(32);
        // No host bits: a shift by 32, which gives none.
        u32::MAX.checked_shr(32 - host_bits).unwrap_or(0)
    };
    let mut config = EncapConfig {
        gue_port_be: encapsulation.gue_port.unwrap_or(0).to_be(),
        ..EncapConfig::default()
    };
    if let Some(prefix) = &encapsulation.source4 {
        let (_, octets) = flow_addr(prefix.addr);
        config.source4.copy_from_slice(&octets[..4]);
        config.source4_hosts = hosts(prefix, 32).to_be_bytes();
    }
    if let Some(prefix) = &encapsulation.source6 {
        config.source6 = flow_addr(prefix.addr).1;
        config.source6_hosts = hosts(prefix, 128).to_be_bytes();
    }
    config
}
