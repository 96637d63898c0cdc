//! The controller's run state (`/run/quic-router/<iface>/state.json`): what the maps do not
//! say, for the next controller and for the operator's commands. Written atomically.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::Path,
};

use router_common::{maps::Limits, quic_lb::Mode as CipherMode};
use serde::{Deserialize, Serialize};

use crate::{
    config::{BackendState, Reach, RouterConfig},
    files,
    health::{Health, HealthRecord},
    router::Mode,
};

/// A backend as the last applied config had it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendRecord {
    pub name: String,
    /// The index of its entries and counters in the maps.
    pub index: u32,
    /// A host's interface and next hop; none for a local worker.
    pub interface: Option<String>,
    pub next_hop_mac: Option<String>,
    /// A worker on the router's own host.
    #[serde(default)]
    pub local_worker: bool,
    pub weight: u32,
    pub state: BackendState,
    /// `codepoint:hex` per server ID.
    pub server_ids: Vec<String>,
}

/// A config rotation codepoint in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodepointRecord {
    pub config_rotation: u8,
    pub mode: CipherMode,
    pub server_id_len: u8,
    pub nonce_len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub iface: String,
    pub mode: Mode,
    pub debug: bool,
    pub config: String,
    /// The controller's process ID while it runs.
    pub pid: Option<u32>,
    pub program_id: u32,
    /// The epoch after the config below was applied.
    pub epoch: u32,
    /// The sizes the maps were made with.
    pub limits: Limits,
    pub codepoints: Vec<CodepointRecord>,
    pub backends: Vec<BackendRecord>,
    /// [`RouterConfig::routing_digest`] of the config applied (empty in a run state written
    /// before there was one).
    #[serde(default)]
    pub routing_digest: String,
    /// Each checked backend's health (none without `[health]`).
    #[serde(default)]
    pub health: BTreeMap<String, HealthRecord>,
    /// The VIPs' routes for the BGP daemon (none without `[announce]`).
    #[serde(default)]
    pub announce: Option<AnnounceRecord>,
}

/// What the controller announces (`[announce]`, `crate::announce`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceRecord {
    pub table: u32,
    /// How long `detach` waits after withdrawing the routes.
    pub drain_ms: u64,
    /// The VIPs whose routes are in the table.
    pub routes: Vec<IpAddr>,
    /// The operator withdrew them (`quic-router withdraw`), until `quic-router announce`.
    pub withdrawn: bool,
    /// Why the controller withdrew them (the data path is broken), until it works again.
    pub broken: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunStateError {
    #[error(transparent)]
    Read(#[from] files::FileError),
    #[error("{path} is not a run state: {source}")]
    Format {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl RunState {
    pub fn load(path: &Path) -> Result<Self, RunStateError> {
        let text = files::read_regular(path, files::MAX_STATE_LEN)?;
        serde_json::from_slice(&text).map_err(|source| RunStateError::Format {
            path: path.display().to_string(),
            source,
        })
    }

    /// Writes to a temporary file (mode 0600) and renames it over `path`; `path` is as it was
    /// if that fails.
    pub fn store(&self, path: &Path) -> Result<(), RunStateError> {
        let error = |source| RunStateError::Write {
            path: path.display().to_string(),
            source,
        };
        let text = serde_json::to_string_pretty(self).expect("run state serializes");
        files::write_atomically(path, ".new", text.as_bytes(), 0o600).map_err(error)
    }

    /// The backend indices it records, by name.
    pub fn indices(&self) -> BTreeMap<String, u32> {
        self.backends
            .iter()
            .map(|b| (b.name.clone(), b.index))
            .collect()
    }

    /// The backends that fail their health checks.
    pub fn down(&self) -> BTreeSet<String> {
        self.health
            .iter()
            .filter(|(_, record)| record.health == Health::Down)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Records `config` as applied, to `epoch`, with these backend indices.
    pub fn record_config(
        &mut self,
        config: &RouterConfig,
        epoch: u32,
        indices: &BTreeMap<String, u32>,
    ) {
        self.epoch = epoch;
        self.limits = config.limits;
        self.routing_digest = config.routing_digest();
        self.codepoints = config
            .cid_configs
            .iter()
            .map(|c| CodepointRecord {
                config_rotation: c.params.config_rotation,
                mode: c.mode(),
                server_id_len: c.params.server_id_len,
                nonce_len: c.params.nonce_len,
            })
            .collect();
        self.backends = config
            .backends
            .iter()
            .filter_map(|b| {
                Some(BackendRecord {
                    name: b.name.clone(),
                    index: *indices.get(&b.name)?,
                    interface: match &b.reach {
                        Reach::Host { interface, .. } => Some(interface.clone()),
                        Reach::Routed { .. } | Reach::LocalWorker => None,
                    },
                    next_hop_mac: match &b.reach {
                        Reach::Host { next_hop_mac, .. } => {
                            Some(next_hop_mac.map(|o| format!("{o:02x}")).join(":"))
                        }
                        Reach::Routed { .. } | Reach::LocalWorker => None,
                    },
                    local_worker: b.reach == Reach::LocalWorker,
                    weight: b.weight,
                    state: b.state,
                    server_ids: b
                        .server_ids
                        .iter()
                        .map(|(codepoint, id)| format!("{codepoint}:{}", hex::encode(id)))
                        .collect(),
                })
            })
            .collect();
    }
}
