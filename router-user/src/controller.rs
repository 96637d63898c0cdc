//! `quic-router run`: loads and attaches the router, keeps its maps in line with the config
//! file (on SIGHUP, when the file or a key file changes, and on control requests), and
//! leaves the data path running when it stops.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    net::{IpAddr, SocketAddr},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use aya_log::EbpfLogger;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader, unix::AsyncFd},
    net::UnixListener,
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot, watch},
};
use tracing::{error, info, warn};

use crate::{
    announce,
    config::{self, ConfigError, RouterConfig},
    config_edit,
    control::{Request, Response},
    health,
    metrics::{self, RouterCollector},
    netif,
    pin::{ControllerLock, PinError, RouterPaths},
    router::{Attachment, LoadOptions, Mode, PinnedRouter, Router, RouterError},
    runstate::{AnnounceRecord, RunState, RunStateError},
    serve,
};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    pub iface: String,
    pub mode: Mode,
    pub metrics_addr: Option<SocketAddr>,
    /// Log a line per packet from the kernel (aya-log).
    pub debug: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error(transparent)]
    RunState(#[from] RunStateError),
    #[error(
        "{iface} is attached in {attached} mode; `quic-router detach --iface {iface}` first to run in {requested} mode"
    )]
    ModeMismatch {
        iface: String,
        attached: &'static str,
        requested: &'static str,
    },
    #[error("control socket {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
    #[error("metrics address {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("debug logging: {0}")]
    DebugLog(String),
    #[error(transparent)]
    Edit(#[from] config_edit::EditError),
    #[error("{error}; undoing what was done before it failed too: {undo}")]
    NotUndone {
        error: Box<ControllerError>,
        undo: Box<ControllerError>,
    },
    #[error("interface {iface}: {source}")]
    Interface {
        iface: String,
        source: netif::NetifError,
    },
    #[error("signal handling: {0}")]
    Signal(std::io::Error),
}

/// What a file looked like: a change to any of these means it changed.
type FileStamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> FileStamp {
    let metadata = fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
}

/// The files a config was read from: the config itself and its key files.
fn watched_files(path: &Path, config: &RouterConfig) -> Vec<(PathBuf, FileStamp)> {
    std::iter::once(path.to_owned())
        .chain(config.cid_configs.iter().filter_map(|c| c.key_file.clone()))
        .map(|file| {
            let stamp = stamp(&file);
            (file, stamp)
        })
        .collect()
}

pub struct Controller {
    options: RunOptions,
    paths: RouterPaths,
    _lock: ControllerLock,
    /// Bound by `start`, served by `serve`.
    listeners: Option<Listeners>,
    router: Router,
    watched: Vec<(PathBuf, FileStamp)>,
    state: RunState,
    attachment: Attachment,
    /// The config applied, as its file gives it (health checks may take backends out of
    /// the tables' fallback on top of it).
    config: RouterConfig,
    /// What the health checks probe; set while the controller serves.
    health_plans: Option<watch::Sender<Option<health::Plan>>>,
    /// Each backend's health as the checks last reported it; the run state has what the
    /// tables hold (they differ only while an install fails, and it is tried again).
    health: BTreeMap<String, health::HealthRecord>,
    /// The last failure to announce or withdraw, logged once.
    announce_error: Option<String>,
    /// An install of the backends' health failed (logged once; tried again each second).
    health_unapplied: bool,
}

/// The listeners a controller serves on, bound before it changes anything: an address in
/// use or a full `/run` refuses the start with nothing changed.
struct Listeners {
    control: std::os::unix::net::UnixListener,
    metrics: Option<std::net::TcpListener>,
}

impl Listeners {
    /// Binds the control socket under a name of its own (clients find it only once
    /// [`publish`](Self::publish) puts it in place) and the metrics address.
    fn bind(paths: &RouterPaths, metrics: Option<SocketAddr>) -> Result<Self, ControllerError> {
        let path = unpublished(paths);
        let socket_error = |source| ControllerError::Socket {
            path: path.display().to_string(),
            source,
        };
        let _ = fs::remove_file(&path);
        let control = std::os::unix::net::UnixListener::bind(&path).map_err(socket_error)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(socket_error)?;
        control.set_nonblocking(true).map_err(socket_error)?;
        let metrics = metrics
            .map(|addr| {
                let error = |source| ControllerError::Metrics { addr, source };
                let listener = std::net::TcpListener::bind(addr).map_err(error)?;
                listener.set_nonblocking(true).map_err(error)?;
                Ok::<_, ControllerError>(listener)
            })
            .transpose()?;
        Ok(Self { control, metrics })
    }

    /// Puts the control socket where clients find it (in place of a dead controller's): a
    /// connection to it means a controller that runs the router.
    fn publish(&self, paths: &RouterPaths) -> Result<(), ControllerError> {
        let path = paths.control_socket();
        fs::rename(unpublished(paths), &path).map_err(|source| ControllerError::Socket {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Where the control socket is bound until the controller runs.
fn unpublished(paths: &RouterPaths) -> PathBuf {
    paths.run_dir.join("control.sock.starting")
}

/// What a start made, for the controller that runs it.
struct TakenOver {
    router: Router,
    state: RunState,
    attachment: Attachment,
    listeners: Listeners,
}

impl Controller {
    /// Loads the config, then the program (adopting pinned maps), installs the config and
    /// attaches (adopting or replacing a pinned link). Everything that can be checked is
    /// checked before anything changes: the config, the interface, the lock, the listeners,
    /// the pinned maps, the tables (interfaces, indices), the run state's write. A router made
    /// for this start is removed again if the start fails after all.
    pub fn start(options: RunOptions) -> Result<Self, ControllerError> {
        let config = config::load(&options.config)?;
        let paths = RouterPaths::new(&options.iface)?;
        // A typo creates nothing.
        netif::lookup(&options.iface).map_err(|source| ControllerError::Interface {
            iface: options.iface.clone(),
            source,
        })?;
        paths.prepare()?;
        // One controller per interface, for as long as it runs.
        let lock = paths.lock(Duration::ZERO)?;
        let fresh = !paths.link().exists();
        match Self::take_over(&options, &config, &paths).and_then(|taken| {
            taken.listeners.publish(&paths)?;
            Ok(taken)
        }) {
            Ok(TakenOver {
                router,
                state,
                attachment,
                listeners,
            }) => Ok(Self {
                watched: watched_files(&options.config, &config),
                options,
                paths,
                _lock: lock,
                listeners: Some(listeners),
                router,
                health: state.health.clone(),
                state,
                attachment,
                config,
                health_plans: None,
                announce_error: None,
                health_unapplied: false,
            }),
            Err(err) => {
                if fresh {
                    // Nothing was attached: the pins this start made go (under the lock).
                    let _ = PinnedRouter::new(&paths).detach();
                    let _ = fs::remove_file(paths.state());
                }
                let _ = fs::remove_file(unpublished(&paths));
                Err(err)
            }
        }
    }

    fn take_over(
        options: &RunOptions,
        config: &RouterConfig,
        paths: &RouterPaths,
    ) -> Result<TakenOver, ControllerError> {
        let previous = RunState::load(&paths.state()).ok();
        let link_pinned = paths.link().exists();
        if let Some(previous) = previous.as_ref().filter(|_| link_pinned)
            && previous.mode != options.mode
        {
            return Err(ControllerError::ModeMismatch {
                iface: options.iface.clone(),
                attached: previous.mode.name(),
                requested: options.mode.name(),
            });
        }
        // A change of debug mode changes the program's log level: swap it in.
        let replace = previous.as_ref().is_some_and(|p| p.debug != options.debug);
        let listeners = Listeners::bind(paths, options.metrics_addr)?;

        let mut router = Router::load(&LoadOptions {
            limits: config.limits,
            pin_dir: Some(&paths.pin_dir),
            debug_log: options.debug,
            ..LoadOptions::default()
        })?;
        router.pin_worker_program(&paths.worker_program())?;
        router.adopt_indices(previous.as_ref().map(RunState::indices).unwrap_or_default());
        let mut state = RunState {
            iface: options.iface.clone(),
            mode: options.mode,
            debug: options.debug,
            config: options.config.display().to_string(),
            pid: Some(std::process::id()),
            program_id: previous.as_ref().map_or(0, |p| p.program_id),
            epoch: 0,
            limits: config.limits,
            codepoints: Vec::new(),
            backends: Vec::new(),
            routing_digest: String::new(),
            // A backend that failed its checks stays out until it answers again.
            health: previous
                .as_ref()
                .map(|p| health::kept(config, &p.health))
                .unwrap_or_default(),
            // What the previous controller announced, to take over (and the operator's
            // withdrawal, to keep).
            announce: previous.as_ref().and_then(|p| p.announce.clone()),
        };
        let prepared = router.prepare(&effective(config, &state))?;
        state.record_config(config, prepared.epoch(), prepared.backend_indices());
        // Recorded before the point of no return (the flip of a running router's maps, or
        // the attach of a new one).
        state.store(&paths.state())?;
        let committed = router.commit(prepared).map_err(ControllerError::from);
        let attached = committed.and_then(|epoch| {
            let (attachment, program_id) =
                router.attach(&options.iface, options.mode, &paths.link(), replace)?;
            Ok((epoch, attachment, program_id))
        });
        let (epoch, attachment, program_id) = match attached {
            Ok(attached) => attached,
            Err(err) => {
                // What runs is what the previous state says.
                match &previous {
                    Some(previous) => {
                        let _ = previous.store(&paths.state());
                    }
                    None => {
                        let _ = fs::remove_file(paths.state());
                    }
                }
                return Err(err);
            }
        };
        state.program_id = program_id;
        // Frames for other hosts (a switch's flood) are not this router's to route.
        if let Err(err) = router.guard_ingress(&options.iface) {
            warn!(%err, "cannot record the interface's MAC: frames for other hosts are routed too");
        }
        if let Err(err) = state.store(&paths.state()) {
            // The router runs the config recorded; only the program's ID is missing.
            warn!(%err, "cannot record the attached program's ID");
        }
        info!(
            iface = %options.iface,
            mode = options.mode.name(),
            attachment = ?attachment,
            program_id,
            epoch,
            backends = config.backends.len(),
            routing_digest = %state.routing_digest,
            "router running"
        );
        Ok(TakenOver {
            router,
            state,
            attachment,
            listeners,
        })
    }

    /// Serves until SIGINT, SIGTERM or a shutdown request. The data path keeps running.
    pub async fn serve(mut self) -> Result<(), ControllerError> {
        let listeners = self
            .listeners
            .take()
            .expect("start binds the listeners; serve runs once");
        let socket_path = self.paths.control_socket();
        let socket_error = |source| ControllerError::Socket {
            path: socket_path.display().to_string(),
            source,
        };
        let control = UnixListener::from_std(listeners.control).map_err(socket_error)?;
        let (requests, mut incoming) = mpsc::channel(16);
        tokio::spawn(accept_requests(control, requests));

        if let (Some(addr), Some(listener)) = (self.options.metrics_addr, listeners.metrics) {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|source| ControllerError::Metrics { addr, source })?;
            let collector = RouterCollector {
                paths: self.paths.clone(),
            };
            tokio::spawn(metrics::serve(listener, collector));
            info!(%addr, "serving metrics");
        }

        let (plans, plan) = watch::channel(self.health_plan());
        self.health_plans = Some(plans);
        let (changes, mut health_changes) = mpsc::channel(64);
        tokio::spawn(health::run(plan, changes));

        let mut logger = self.debug_logger()?;
        let mut hangup = signal(SignalKind::hangup()).map_err(ControllerError::Signal)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(ControllerError::Signal)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(ControllerError::Signal)?;
        self.announce_vips();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    let _ = self.reload("SIGHUP");
                }
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = tick.tick() => {
                    if self.files_changed() {
                        let _ = self.reload("the config or a key file changed");
                    }
                    self.apply_health();
                    self.announce_vips();
                    // The interface's MAC may change under it.
                    let _ = self.router.guard_ingress(&self.options.iface);
                }
                Some(change) = health_changes.recv() => self.health_changed(change),
                Some((request, reply)) = incoming.recv() => {
                    let stop = request == Request::Shutdown;
                    let _ = reply.send(self.handle(request));
                    if stop {
                        break;
                    }
                }
                readable = async {
                    match logger.as_mut() {
                        Some(logger) => logger.readable_mut().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Ok(mut guard) = readable {
                        guard.get_inner_mut().flush();
                        guard.clear_ready();
                    }
                }
            }
        }
        self.state.pid = None;
        if let Err(err) = self.state.store(&self.paths.state()) {
            warn!(%err, "cannot record the stop");
        }
        let _ = fs::remove_file(&socket_path);
        info!(iface = %self.options.iface, "controller stopped; the data path keeps running");
        Ok(())
    }

    /// The kernel's log lines, in debug mode, from the attached program.
    fn debug_logger(
        &mut self,
    ) -> Result<Option<AsyncFd<EbpfLogger<&'static dyn log::Log>>>, ControllerError> {
        if !self.options.debug {
            return Ok(None);
        }
        let logger = match self.attachment {
            Attachment::Adopted => EbpfLogger::init_from_id(self.state.program_id),
            Attachment::New | Attachment::Replaced => EbpfLogger::init(self.router.ebpf_mut()),
        }
        .map_err(|err| ControllerError::DebugLog(err.to_string()))?;
        // SAFETY: the logger owns its ring buffer's descriptor for as long as it lives, and
        // always reports that same descriptor.
        let logger = unsafe { AsyncFd::register(logger) }
            .map_err(|err| ControllerError::DebugLog(err.to_string()))?;
        info!("debug mode: the kernel logs a line per packet");
        Ok(Some(logger))
    }

    /// Whether the config file or a key file changed since it was last read.
    fn files_changed(&mut self) -> bool {
        let mut changed = false;
        for (path, last) in &mut self.watched {
            let now = stamp(path);
            if now != *last {
                *last = now;
                changed = true;
            }
        }
        changed
    }

    /// Reads, validates and applies the config file. An invalid config changes nothing.
    fn reload(&mut self, why: &str) -> Result<u32, String> {
        let result = config::load(&self.options.config)
            .map_err(|err| err.to_string())
            .and_then(|config| {
                let epoch = self.install(&config).map_err(|err| err.to_string())?;
                self.config_applied(config);
                Ok(epoch)
            });
        match &result {
            Ok(epoch) => info!(
                why,
                epoch,
                routing_digest = %self.state.routing_digest,
                "config applied"
            ),
            Err(err) => error!(why, %err, "config not applied; the running one stays"),
        }
        result
    }

    /// What follows a new config file's install: its files watched, health checks and
    /// announcements made to it.
    fn config_applied(&mut self, config: RouterConfig) {
        self.watched = watched_files(&self.options.config, &config);
        self.config = config;
        self.publish_health_plan();
        self.announce_vips();
    }

    /// Applies `config` with the backends' health if it changes anything; returns the epoch.
    /// The run state records the change before the flip; if the flip fails after all, it is
    /// recorded back.
    fn install(&mut self, config: &RouterConfig) -> Result<u32, ControllerError> {
        self.install_with(config, || Ok(()), || Ok(()))
    }

    /// [`install`](Self::install), with `before` run after every check and the run state's
    /// write, just before the flip (where an edit writes the config file), and `undo` run if
    /// the flip fails after `before` succeeded.
    fn install_with(
        &mut self,
        config: &RouterConfig,
        before: impl FnOnce() -> Result<(), ControllerError>,
        undo: impl FnOnce() -> Result<(), ControllerError>,
    ) -> Result<u32, ControllerError> {
        let mut state = self.state.clone();
        state.health = health::kept(config, &self.health);
        let prepared = self.router.prepare(&effective(config, &state))?;
        state.record_config(config, prepared.epoch(), prepared.backend_indices());
        state.store(&self.paths.state())?;
        let restore_state = |state: &RunState| {
            if let Err(err) = state.store(&self.paths.state()) {
                warn!(%err, "cannot record the run state back");
            }
        };
        if let Err(err) = before() {
            restore_state(&self.state);
            return Err(err);
        }
        match self.router.commit(prepared) {
            Ok(epoch) => {
                self.state = state;
                Ok(epoch)
            }
            Err(err) => {
                let undone = undo();
                restore_state(&self.state);
                match undone {
                    Ok(()) => Err(err.into()),
                    Err(undo) => Err(ControllerError::NotUndone {
                        error: Box::new(err.into()),
                        undo: Box::new(undo),
                    }),
                }
            }
        }
    }

    /// Edits the config file and applies it: every check first, the file written just before
    /// the flip, and put back if the flip fails. What the answer says is what happened.
    fn edit(&mut self, edit: &config_edit::Edit) -> Result<String, String> {
        let path = self.options.config.clone();
        let prepared = config_edit::prepare(&path, edit).map_err(|err| err.to_string())?;
        let (original, edited) = (prepared.original, prepared.edited);
        let write = |text: &str| config_edit::write(&path, text).map_err(ControllerError::from);
        match self.install_with(&prepared.config, || write(&edited), || write(&original)) {
            Ok(epoch) => {
                info!(
                    ?edit,
                    epoch,
                    routing_digest = %self.state.routing_digest,
                    "config edited and applied"
                );
                self.config_applied(prepared.config);
                Ok(format!("{} and applied", describe(edit)))
            }
            Err(err @ ControllerError::NotUndone { .. }) => Err(format!(
                "not applied, and the config file keeps the edit: {err}"
            )),
            Err(err) => Err(format!("nothing was changed: {err}")),
        }
    }

    /// What the health checks are to probe under the config applied: nothing without
    /// `[health]`.
    fn health_plan(&self) -> Option<health::Plan> {
        let settings = self.config.health?;
        Some(health::Plan {
            settings,
            config: Arc::new(self.config.clone()),
            known: self
                .state
                .health
                .iter()
                .map(|(name, record)| (name.clone(), record.health))
                .collect(),
        })
    }

    fn publish_health_plan(&self) {
        if let Some(plans) = &self.health_plans {
            plans.send_replace(self.health_plan());
        }
    }

    /// Records a backend's health; when it comes up or goes down, the tables follow (it
    /// takes new connections or not).
    fn health_changed(&mut self, change: health::Change) {
        let health::Change {
            backend,
            health,
            detail,
        } = change;
        match health {
            health::Health::Down => warn!(backend, %detail, "backend down: no new connections"),
            health::Health::Up => info!(backend, %detail, "backend up"),
            health::Health::Unchecked => warn!(backend, %detail, "backend not checked"),
        }
        let since = match self.health.get(&backend) {
            Some(record) if record.health == health => record.since,
            _ => SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        self.health.insert(
            backend,
            health::HealthRecord {
                health,
                detail,
                since,
            },
        );
        self.apply_health();
    }

    /// Brings the tables and the run state to the health reported: an install when the set
    /// of down backends changed (tried again each second if it fails), a run state write
    /// otherwise.
    fn apply_health(&mut self) {
        let wanted = health::kept(&self.config, &self.health);
        if wanted == self.state.health {
            return;
        }
        let down = |records: &BTreeMap<String, health::HealthRecord>| -> BTreeSet<String> {
            records
                .iter()
                .filter(|(_, record)| record.health == health::Health::Down)
                .map(|(name, _)| name.clone())
                .collect()
        };
        if down(&wanted) == self.state.down() {
            self.state.health = wanted;
            if let Err(err) = self.state.store(&self.paths.state()) {
                warn!(%err, "cannot record the backends' health");
            }
            return;
        }
        let active = self
            .config
            .backends
            .iter()
            .filter(|b| b.state == config::BackendState::Active)
            .map(|b| b.name.as_str());
        if health::fails_open(active, &down(&wanted)) {
            warn!("every active backend is down: all keep taking new connections (failing open)");
        }
        let config = self.config.clone();
        match self.install(&config) {
            Ok(_) => self.health_unapplied = false,
            Err(err) => {
                if !self.health_unapplied {
                    error!(%err, "cannot apply the backends' health; trying again every second");
                }
                self.health_unapplied = true;
            }
        }
    }

    /// Why the data path cannot route, if it cannot: the interface gone or down, or the
    /// program no longer the one attached.
    fn data_path_broken(&self) -> Option<String> {
        let iface = &self.options.iface;
        if netif::lookup(iface).is_err() {
            return Some(format!("interface {iface} is gone"));
        }
        if !netif::running(iface) {
            return Some(format!("interface {iface} is down"));
        }
        match PinnedRouter::new(&self.paths).program_id() {
            Ok(Some(id)) if id == self.state.program_id => None,
            _ => Some(format!(
                "the router's program is no longer attached to {iface}"
            )),
        }
    }

    /// Keeps the VIPs' routes as `[announce]`, the operator and the data path say: each VIP
    /// announced while the config has `[announce]`, the operator has not withdrawn them and
    /// the data path works; none otherwise. Routes are put back if something removed them;
    /// each change is logged and recorded in the run state.
    fn announce_vips(&mut self) {
        let previous = self.state.announce.clone();
        let withdrawn = previous.as_ref().is_some_and(|p| p.withdrawn);
        let broken = self.data_path_broken();
        let settings = self.config.announce;
        let wanted: BTreeSet<IpAddr> = match settings {
            Some(_) if !withdrawn && broken.is_none() => {
                self.config.listeners.iter().map(|l| l.address).collect()
            }
            _ => BTreeSet::new(),
        };
        let table = settings.map(|s| s.table);
        let mut routes = BTreeSet::new();
        let mut failures = Vec::new();
        if let Some(previous) = &previous {
            for &vip in &previous.routes {
                if table == Some(previous.table) && wanted.contains(&vip) {
                    continue;
                }
                match announce::withdraw(previous.table, vip) {
                    Ok(()) => info!(%vip, table = previous.table, "VIP withdrawn"),
                    Err(err) => {
                        failures.push(err.to_string());
                        if table == Some(previous.table) {
                            routes.insert(vip);
                        }
                    }
                }
            }
        }
        if let Some(table) = table {
            let had = previous
                .as_ref()
                .filter(|p| p.table == table)
                .map(|p| p.routes.clone())
                .unwrap_or_default();
            for &vip in &wanted {
                match announce::announce(table, vip) {
                    Ok(()) => {
                        if !had.contains(&vip) {
                            info!(%vip, table, "VIP announced");
                        }
                        routes.insert(vip);
                    }
                    Err(err) => failures.push(err.to_string()),
                }
            }
        }
        // Failures are tried again each second, and logged when they change.
        let failure = (!failures.is_empty()).then(|| failures.join("; "));
        if failure != self.announce_error {
            match &failure {
                Some(err) => error!(%err, "the VIPs' routes are not as they should be"),
                None => info!("the VIPs' routes are as they should be again"),
            }
            self.announce_error = failure;
        }
        if broken != previous.as_ref().and_then(|p| p.broken.clone()) {
            match &broken {
                Some(why) => error!(why, "the data path is broken: its VIPs are withdrawn"),
                None => info!("the data path works again"),
            }
        }
        let record = settings.map(|settings| AnnounceRecord {
            table: settings.table,
            drain_ms: settings.drain.as_millis() as u64,
            routes: routes.into_iter().collect(),
            withdrawn,
            broken,
        });
        if record != self.state.announce {
            self.state.announce = record;
            if let Err(err) = self.state.store(&self.paths.state()) {
                warn!(%err, "cannot record the VIPs announced");
            }
        }
    }

    /// The operator's `announce` (`withdrawn` false) or `withdraw`.
    fn set_withdrawn(&mut self, withdrawn: bool) -> Result<String, String> {
        let Some(record) = self.state.announce.as_mut() else {
            return Err("the config has no [announce]: nothing is announced".to_owned());
        };
        record.withdrawn = withdrawn;
        if withdrawn {
            info!("the operator withdraws the VIPs");
        } else {
            info!("the operator announces the VIPs");
        }
        self.announce_vips();
        // The operator's word is kept whether or not a route changed.
        if let Err(err) = self.state.store(&self.paths.state()) {
            return Err(format!("not recorded, so a restart would forget it: {err}"));
        }
        if let Some(err) = &self.announce_error {
            return Err(format!(
                "recorded, but the routes are not as they should be: {err}"
            ));
        }
        let record = self
            .state
            .announce
            .as_ref()
            .expect("kept while the config has [announce]");
        Ok(match (&record.broken, withdrawn) {
            (_, true) => format!("VIPs withdrawn from table {}", record.table),
            (Some(why), false) => {
                format!("not announced while the data path is broken: {why}")
            }
            (None, false) => format!(
                "VIPs announced in table {}: {}",
                record.table,
                record
                    .routes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    fn handle(&mut self, request: Request) -> Response {
        let outcome = match request {
            Request::Announce => self.set_withdrawn(false),
            Request::Withdraw => self.set_withdrawn(true),
            Request::Reload => self
                .reload("reload request")
                .map(|_| "config applied".to_owned()),
            Request::Shutdown => Ok("stopping; the data path keeps running".to_owned()),
            Request::Edit { edit } => self.edit(&edit),
        };
        let (ok, message) = match outcome {
            Ok(message) => (true, message),
            Err(message) => (false, message),
        };
        Response {
            ok,
            message,
            epoch: self.router.epoch(),
        }
    }
}

/// `config` as the tables are to hold it, with the backends that `state` has down taking no
/// new connection.
fn effective(config: &RouterConfig, state: &RunState) -> RouterConfig {
    health::without_new_connections(config, &state.down()).0
}

fn describe(edit: &config_edit::Edit) -> String {
    use config_edit::Edit;
    match edit {
        Edit::AddBackend { backend } => format!("backend {} added", backend.name),
        Edit::RemoveBackend { name } => format!("backend {name} removed"),
        Edit::SetBackendState { name, state } => {
            format!("backend {name} is {}", state.name())
        }
    }
}

/// The longest request line a control connection may send.
const MAX_REQUEST_LEN: u64 = 64 << 10;
/// How long a control connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Control connections served at once; more wait in the listen backlog.
const MAX_CONTROL_CONNECTIONS: usize = 16;

/// Accepts control connections: one JSON request line each, answered with one line, each
/// bounded in size and time ([`serve::accept_loop`] bounds how many at once).
async fn accept_requests(
    listener: UnixListener,
    requests: mpsc::Sender<(Request, oneshot::Sender<Response>)>,
) {
    let listener = &listener;
    serve::accept_loop(
        "control socket",
        MAX_CONTROL_CONNECTIONS,
        move || async move { listener.accept().await.map(|(stream, _)| stream) },
        |stream| answer(stream, requests.clone()),
    )
    .await;
}

/// Reads one request from `stream`, has the controller handle it, and writes the answer.
async fn answer(
    stream: tokio::net::UnixStream,
    requests: mpsc::Sender<(Request, oneshot::Sender<Response>)>,
) {
    let (read, mut write) = stream.into_split();
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(read)).await {
        Err(_) => Response::refused("no request line within 10 s"),
        Ok(Err(message)) => Response::refused(message),
        Ok(Ok(request)) => {
            let (reply, answer) = oneshot::channel();
            if requests.send((request, reply)).await.is_err() {
                return;
            }
            match answer.await {
                Ok(response) => response,
                Err(_) => return,
            }
        }
    };
    let mut text = serde_json::to_string(&response).unwrap_or_default();
    text.push('\n');
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, write.write_all(text.as_bytes())).await;
}

/// One request line, at most [`MAX_REQUEST_LEN`] octets of UTF-8 JSON; why not if not.
async fn read_request(read: tokio::net::unix::OwnedReadHalf) -> Result<Request, String> {
    let mut line = Vec::new();
    BufReader::new(read.take(MAX_REQUEST_LEN + 1))
        .read_until(b'\n', &mut line)
        .await
        .map_err(|err| format!("cannot read the request: {err}"))?;
    if line.len() as u64 > MAX_REQUEST_LEN {
        return Err(format!("a request is at most {MAX_REQUEST_LEN} octets"));
    }
    let text = std::str::from_utf8(&line).map_err(|_| "a request is UTF-8 JSON".to_owned())?;
    serde_json::from_str(text).map_err(|err| format!("not a request: {err}"))
}
