//! [`Router`]: one loaded router — the programs, their maps, the backend indices and the
//! installed tables — and [`PinnedRouter`], what a running router leaves pinned for the
//! operator's commands to read.
//!
//! ```no_run
//! use router_user::{config, router::{LoadOptions, Mode, Router}};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = config::load("/etc/quic-router/router.toml".as_ref())?;
//! let mut router = Router::load(&LoadOptions {
//!     limits: config.limits,
//!     ..LoadOptions::default()
//! })?;
//! let epoch = router.install(&config)?;
//! // Attached until `router` drops; `quic-router run` pins a link instead.
//! router.attach_unpinned("eth0", Mode::Native)?;
//! println!("epoch {epoch}: {:?}", router.counters()?.outcomes);
//! # Ok(())
//! # }
//! ```

use std::{collections::BTreeMap, fs, os::fd::BorrowedFd, path::Path};

use aya::{
    Ebpf,
    maps::{Array, MapData, MapError, ReusePortSockArray},
    programs::{ProgramError, SkReuseport, TestRun as _, TestRunOptions, Xdp, XdpMode},
};
use router_common::{
    counters::Outcome,
    maps::{Ingress, LOCAL_WORKER_IFINDEX, Limits, NO_BACKEND, Verdict, specs},
};
use serde::{Deserialize, Serialize};

use crate::{
    attach,
    config::RouterConfig,
    dataplane::{self, Dataplane},
    ebpf,
    local::{self, LocalError},
    netif,
    pin::RouterPaths,
    tables::{BackendIndices, RoutingTables, TablesError},
};
pub use crate::{
    attach::{AttachError, Attachment},
    dataplane::{Counters, DataplaneError, Prepared},
    ebpf::{CidCacheMode, LoadError, LoadOptions, cpu_slots},
    explain::{Explanation, XDP_PASS, XDP_REDIRECT, action_name},
};

/// The router's eBPF object as this build embeds it (ELF).
pub fn object() -> &'static [u8] {
    ebpf::program_bytes()
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The kernel chose (native where the driver supports it).
    Auto,
    Native,
    Skb,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Native => "native",
            Mode::Skb => "skb",
        }
    }

    pub(crate) fn xdp_mode(self) -> XdpMode {
        match self {
            Mode::Auto => XdpMode::Default,
            Mode::Native => XdpMode::Driver,
            Mode::Skb => XdpMode::Skb,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(
        "the config's [limits] differ from the running router's ({0}): a running router's maps cannot be resized; keep the old limits, or `quic-router detach` first (routing stops until the next start)"
    )]
    LimitsChanged(String),
    #[error("the router's interface: {0}")]
    Ingress(netif::NetifError),
    #[error("this router was not loaded to explain packets (LoadOptions::trace_verdicts)")]
    NotTracing,
    #[error("no router is attached to {0}")]
    NotAttached(String),
    #[error("map VERDICT: {0}")]
    Verdict(MapError),
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    TestRun(ProgramError),
    #[error("a packet of {0} octets is shorter than an Ethernet header (14)")]
    TooShort(usize),
    #[error("cannot pin the worker selection program at {path}: {source}")]
    PinProgram {
        path: String,
        source: aya::pin::PinError,
    },
    #[error("cannot put the pin in place at {path}: {source}")]
    RenamePin {
        path: String,
        source: std::io::Error,
    },
}

impl RouterError {
    /// Whether the config is what is wrong: it asks for map sizes other than the running
    /// router's (keep the limits, or detach first), or names an interface this host lacks.
    pub fn is_bad_config(&self) -> bool {
        matches!(
            self,
            RouterError::LimitsChanged(_)
                | RouterError::Load(LoadError::LimitsChanged { .. })
                | RouterError::Dataplane(DataplaneError::Tables(TablesError::Interface { .. }))
        )
    }
}

/// A loaded router: its programs (attached or not), maps, backend indices and installed
/// tables. The only way to change what the maps hold is [`install`](Self::install).
pub struct Router {
    ebpf: Ebpf,
    dataplane: Dataplane,
    /// Stable backend indices by name. An index is freed only when no installed generation
    /// uses it; the data plane's install keeps that rule.
    indices: BackendIndices,
    /// `explain`'s verdict map, when loaded to trace.
    verdict: Option<Array<MapData, Verdict>>,
}

impl Router {
    /// Loads the programs (not attached) with new maps, or with the maps pinned in
    /// `options.pin_dir` once they are checked against this build and `options.limits`.
    pub fn load(options: &LoadOptions<'_>) -> Result<Self, RouterError> {
        Self::load_object(object(), options)
    }

    /// [`load`](Self::load) from another build of the router's object (a variant that a
    /// benchmark compares, say); its maps must still be the contract's.
    pub fn load_object(object: &[u8], options: &LoadOptions<'_>) -> Result<Self, RouterError> {
        let mut ebpf = ebpf::load(object, options)?;
        let dataplane = Dataplane::new(&mut ebpf, options.limits)?;
        let verdict = if options.trace_verdicts {
            Some(dataplane::take(&mut ebpf, &specs::VERDICT)?)
        } else {
            None
        };
        Ok(Self {
            ebpf,
            dataplane,
            indices: BackendIndices::default(),
            verdict,
        })
    }

    /// Takes the backend indices that an earlier controller recorded for the maps it pinned,
    /// so that counters stay with their backends. Call before the first install.
    pub fn adopt_indices(&mut self, indices: BTreeMap<String, u32>) {
        self.indices = BackendIndices::from_map(indices);
    }

    /// Installs `config` unless the active tables are its tables already: writes the other
    /// generation, flips to it and waits until no packet can read the old one. Returns the
    /// epoch (changes applied so far). On an error the active generation is untouched.
    pub fn install(&mut self, config: &RouterConfig) -> Result<u32, RouterError> {
        let prepared = self.prepare(config)?;
        self.commit(prepared)
    }

    /// Makes `config` into tables and checks it as installing does (limits, interfaces,
    /// indices), writing nothing: what [`commit`](Self::commit) then installs, and what the
    /// installed epoch and backend indices will be, so that they can be recorded first.
    pub fn prepare(&mut self, config: &RouterConfig) -> Result<Prepared, RouterError> {
        let limits = self.limits();
        if config.limits != limits {
            return Err(RouterError::LimitsChanged(limit_changes(
                &limits,
                &config.limits,
            )));
        }
        let prepared = if self.verdict.is_some() {
            // Explaining runs anywhere: interfaces this host lacks stand in as loopback.
            self.dataplane.prepare(config, &self.indices, |name| {
                netif::lookup(name).or_else(|_| netif::lookup("lo"))
            })?
        } else {
            self.dataplane
                .prepare(config, &self.indices, netif::lookup)?
        };
        Ok(prepared)
    }

    /// Installs what [`prepare`](Self::prepare) made: writes the other generation, flips to it
    /// and waits until no packet can read the old one (nothing, if the active tables are these
    /// already). Returns the epoch. On an error the active generation is untouched.
    pub fn commit(&mut self, prepared: Prepared) -> Result<u32, RouterError> {
        self.indices = self.dataplane.commit(prepared)?;
        Ok(self.dataplane.epoch())
    }

    /// Changes applied so far (its low bit is the generation packets use).
    pub fn epoch(&self) -> u32 {
        self.dataplane.epoch()
    }

    /// The sizes the maps were made with.
    pub fn limits(&self) -> Limits {
        self.dataplane.limits()
    }

    /// The tables packets use; `None` while unknown (pinned maps adopted, nothing installed).
    pub fn active_tables(&self) -> Option<&RoutingTables> {
        self.dataplane.active()
    }

    /// The backend indices in use, by name (the counters' keys).
    pub fn backend_indices(&self) -> &BTreeMap<String, u32> {
        self.indices.as_map()
    }

    /// The index of backend `name`, if it has one.
    pub fn backend_index(&self, name: &str) -> Option<u32> {
        self.indices.as_map().get(name).copied()
    }

    /// Every counter, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, RouterError> {
        Ok(self.dataplane.counters()?)
    }

    /// The XDP program, for BPF_PROG_TEST_RUN and pinning.
    pub fn program(&self) -> &Xdp {
        self.ebpf
            .program(ebpf::PROGRAM_NAME)
            .and_then(|program| program.try_into().ok())
            .expect("the router's object has its XDP program: ebpf::load checked it")
    }

    /// The XDP program, to pin it or attach it elsewhere.
    pub fn program_mut(&mut self) -> &mut Xdp {
        ebpf::xdp_program(&mut self.ebpf)
            .expect("the router's object has its XDP program: ebpf::load checked it")
    }

    /// Runs `frame` (an Ethernet frame) through the XDP program once: the action and the
    /// frame as it leaves.
    pub fn run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), RouterError> {
        let mut out = vec![0u8; frame.len() + 512];
        let result = self
            .program()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })
            .map_err(RouterError::TestRun)?;
        out.truncate(result.data_size_out as usize);
        Ok((result.return_value, out))
    }

    /// What the program does with `frame` (an Ethernet frame), through BPF_PROG_TEST_RUN;
    /// the router must be loaded with [`LoadOptions::trace_verdicts`]. Explaining decodes
    /// every CID (the CID cache is bypassed).
    pub fn explain(&mut self, frame: &[u8]) -> Result<Explanation, RouterError> {
        if frame.len() < 14 {
            return Err(RouterError::TooShort(frame.len()));
        }
        let verdict = self.verdict.as_mut().ok_or(RouterError::NotTracing)?;
        let unknown = Verdict {
            outcome: u32::MAX,
            backend: NO_BACKEND,
            ..Verdict::default()
        };
        verdict.set(0, unknown, 0).map_err(RouterError::Verdict)?;
        let (action, out) = self.run(frame)?;
        let verdict = self
            .verdict
            .as_ref()
            .ok_or(RouterError::NotTracing)?
            .get(&0, 0)
            .map_err(RouterError::Verdict)?;
        let tables = self.dataplane.active();
        // An inactive codepoint's entry has length 0.
        let server_id_len = tables
            .and_then(|t| t.cid_configs.get(usize::from(verdict.config_rotation)))
            .map_or(0, |entry| usize::from(entry.server_id_len));
        // What left for a backend: not a packet dropped, or answered, before it went.
        let outcome = Outcome::from_u32(verdict.outcome);
        let left = matches!(action, XDP_PASS | XDP_REDIRECT) && outcome != Some(Outcome::TooBig);
        let (delivery, outer) = tables
            .and_then(|t| t.backends.get(&verdict.backend))
            .filter(|_| left)
            .map_or((None, None), |entry| Explanation::delivery_of(entry, &out));
        Ok(Explanation {
            action: action_name(action),
            backend: tables.and_then(|t| t.backend_names.get(&verdict.backend).cloned()),
            server_id: (verdict.has_server_id != 0)
                .then(|| hex::encode(&verdict.server_id[..server_id_len])),
            reason: outcome.map_or("unknown", Outcome::name),
            delivery,
            outer,
        })
    }

    /// Attaches the XDP program to `iface` through the link pinned at `link_path`: a new
    /// link if there is none; otherwise the attached program stays when it is this build's
    /// and `replace` is false, and is swapped for this one atomically if not. Returns what it
    /// did and the ID of the program now attached.
    pub fn attach(
        &mut self,
        iface: &str,
        mode: Mode,
        link_path: &Path,
        replace: bool,
    ) -> Result<(Attachment, u32), RouterError> {
        Ok(attach::attach(
            self.program_mut(),
            iface,
            mode.name(),
            mode.xdp_mode(),
            link_path,
            replace,
        )?)
    }

    /// Makes the program route only the frames addressed to `iface`'s MAC that arrive on
    /// `iface` (unicast frames for other hosts, a switch's flood, pass to the stack); what it
    /// wrote. Called again when the interface changes (a new MAC, or index).
    pub fn guard_ingress(&mut self, iface: &str) -> Result<Ingress, RouterError> {
        let interface = netif::lookup(iface).map_err(RouterError::Ingress)?;
        let ingress = Ingress {
            ifindex: interface.ifindex,
            mac: interface.mac,
            _pad: [0; 2],
        };
        if self.dataplane.ingress()? != ingress {
            self.dataplane.set_ingress(ingress)?;
        }
        Ok(ingress)
    }

    /// Attaches the XDP program to `iface` until this router drops (tests, benchmarks and
    /// programs that embed the router; `quic-router run` pins a link instead).
    pub fn attach_unpinned(&mut self, iface: &str, mode: Mode) -> Result<(), RouterError> {
        self.program_mut()
            .attach(iface, mode.xdp_mode())
            .map_err(|source| AttachError::Attach {
                iface: iface.to_owned(),
                mode: mode.name(),
                source,
            })?;
        Ok(())
    }

    /// Pins the `SO_REUSEPORT` program at `path`, where local workers find it, in place of an
    /// earlier controller's (groups that run that one keep it: it uses the same pinned
    /// maps). Pinned under a temporary name and renamed over the old pin, so that a worker
    /// registering meanwhile always finds one.
    pub fn pin_worker_program(&mut self, path: &Path) -> Result<(), RouterError> {
        // bpffs refuses names with a dot.
        let fresh = path.with_file_name("select_worker_new");
        let _ = fs::remove_file(&fresh);
        ebpf::worker_program(&mut self.ebpf)?
            .pin(&fresh)
            .map_err(|source| RouterError::PinProgram {
                path: fresh.display().to_string(),
                source,
            })?;
        fs::rename(&fresh, path).map_err(|source| RouterError::RenamePin {
            path: path.display().to_string(),
            source,
        })
    }

    /// The `SO_REUSEPORT` program that selects local workers' sockets.
    pub fn worker_program(&self) -> &SkReuseport {
        self.ebpf
            .program(ebpf::WORKER_PROGRAM_NAME)
            .and_then(|program| program.try_into().ok())
            .expect("the router's object has its worker program: ebpf::load checked it")
    }

    /// Registers `socket` as local worker `backend`'s (a backend of the installed config with
    /// `local_worker = true`) and attaches the selection program to the socket's
    /// `SO_REUSEPORT` group: what [`local::register_worker`](crate::local::register_worker)
    /// does for a router that a controller runs.
    pub fn register_worker(
        &mut self,
        backend: &str,
        socket: BorrowedFd<'_>,
    ) -> Result<(), LocalError> {
        let index = self
            .backend_index(backend)
            .ok_or_else(|| LocalError::UnknownBackend(backend.to_owned()))?;
        let local = self
            .active_tables()
            .and_then(|tables| tables.backends.get(&index))
            .is_some_and(|entry| entry.ifindex == LOCAL_WORKER_IFINDEX);
        if !local {
            return Err(LocalError::NotLocal(backend.to_owned()));
        }
        let program = ebpf::worker_program(&mut self.ebpf)
            .expect("the router's object has its worker program: ebpf::load loaded it");
        local::register_socket(self.dataplane.worker_sockets_mut(), program, index, socket)
    }

    /// The loaded object, for the controller's kernel log.
    pub(crate) fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// `name old -> new` for each limit that differs.
fn limit_changes(running: &Limits, config: &Limits) -> String {
    [
        ("backends", running.backends, config.backends),
        ("server_ids", running.server_ids, config.server_ids),
        ("listeners", running.listeners, config.listeners),
        (
            "cid_cache_entries",
            running.cid_cache_entries,
            config.cid_cache_entries,
        ),
    ]
    .iter()
    .filter(|(_, old, new)| old != new)
    .map(|(name, old, new)| format!("{name} {old} in the maps, {new} in the config"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// What a running router leaves pinned, read by the operator's commands (`status`, `stats`,
/// `detach`) and the metrics, whether or not a controller runs.
pub struct PinnedRouter<'a> {
    paths: &'a RouterPaths,
}

impl<'a> PinnedRouter<'a> {
    pub fn new(paths: &'a RouterPaths) -> Self {
        Self { paths }
    }

    /// The ID of the attached program, if a router is attached.
    pub fn program_id(&self) -> Result<Option<u32>, RouterError> {
        Ok(attach::attached_program(&self.paths.link())?)
    }

    /// The epoch in the pinned `CONTROL` map.
    pub fn epoch(&self) -> Result<u32, RouterError> {
        self.pinned()?;
        Ok(dataplane::pinned_epoch(&self.paths.pin_dir)?)
    }

    /// Every counter, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, RouterError> {
        self.pinned()?;
        Ok(Counters::read_pinned(&self.paths.pin_dir)?)
    }

    /// Whether the router's maps are pinned: [`RouterError::NotAttached`] if not, rather than
    /// the kernel's word for a missing pin.
    fn pinned(&self) -> Result<(), RouterError> {
        let path = &self.paths.pin_dir;
        match path.try_exists() {
            Ok(true) => Ok(()),
            Ok(false) => Err(RouterError::NotAttached(self.paths.iface.clone())),
            Err(source) => Err(AttachError::Inspect {
                path: path.display().to_string(),
                source,
            }
            .into()),
        }
    }

    /// The local workers' socket array.
    pub(crate) fn worker_sockets(&self) -> Result<ReusePortSockArray<MapData>, RouterError> {
        Ok(dataplane::open_pinned(
            &self.paths.pin_dir,
            &specs::WORKER_SOCKETS,
        )?)
    }

    /// Removes the pinned link (the kernel detaches the program once no process holds it)
    /// and the pinned maps; empties the local workers' socket slots first, so that socket
    /// groups that keep running the selection program leave every choice to the kernel.
    /// Whether a link was pinned.
    pub fn detach(&self) -> Result<bool, RouterError> {
        let had_link = attach::unpin_link(&self.paths.link())?;
        if let Ok(mut sockets) = self.worker_sockets() {
            let slots =
                dataplane::pinned_entries(&self.paths.pin_dir, &specs::WORKER_SOCKETS).unwrap_or(0);
            for slot in 0..slots {
                let _ = sockets.clear_index(&slot);
            }
        }
        if self.paths.pin_dir.exists() {
            let _ = fs::remove_dir_all(&self.paths.pin_dir);
        }
        Ok(had_link)
    }
}
