//! `quic-router run`: loads and attaches the router, keeps its maps in line with the config
//! file (on SIGHUP, when the file or a key file changes, and on control requests), and
//! leaves the data path running when it stops.

use std::{
    fs,
    net::SocketAddr,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use aya::Ebpf;
use aya_log::EbpfLogger;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, unix::AsyncFd},
    net::UnixListener,
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot},
};
use tracing::{error, info, warn};

use crate::{
    attach::{self, AttachError, Attachment},
    config::{self, ConfigError, RouterConfig},
    config_edit,
    control::{Request, Response},
    dataplane::{Dataplane, DataplaneError},
    ebpf::{self, LoadError, LoadOptions},
    metrics::{self, RouterCollector},
    netif,
    pin::{PinError, RouterPaths},
    runstate::{Mode, RunState, RunStateError},
    tables::BackendIndices,
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
    Load(#[from] LoadError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Attach(#[from] AttachError),
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
    #[error("cannot pin {path}: {source}")]
    PinProgram {
        path: String,
        source: aya::pin::PinError,
    },
    #[error("cannot put the pin in place at {path}: {source}")]
    RenamePin {
        path: String,
        source: std::io::Error,
    },
    #[error("a controller already runs for {0}")]
    AlreadyRunning(String),
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
    #[error("signal handling: {0}")]
    Signal(std::io::Error),
}

/// Pins this controller's `SO_REUSEPORT` program where local workers find it, in place of
/// an earlier controller's (groups that run that one keep it: it uses the same pinned maps).
/// Pinned under a temporary name and renamed over the old pin: a worker registering meanwhile
/// always finds one.
fn pin_worker_program(ebpf: &mut Ebpf, paths: &RouterPaths) -> Result<(), ControllerError> {
    let path = paths.worker_program();
    // bpffs refuses names with a dot.
    let fresh = path.with_file_name("select_worker_new");
    let _ = fs::remove_file(&fresh);
    let error = |path: &Path| {
        let path = path.display().to_string();
        move |source| ControllerError::PinProgram { path, source }
    };
    ebpf::worker_program(ebpf)?
        .pin(&fresh)
        .map_err(error(&fresh))?;
    fs::rename(&fresh, &path).map_err(|source| ControllerError::RenamePin {
        path: path.display().to_string(),
        source,
    })
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
    // Holds the loaded program (and, once attached by this controller, nothing else: the
    // link is pinned).
    ebpf: Ebpf,
    dataplane: Dataplane,
    indices: BackendIndices,
    watched: Vec<(PathBuf, FileStamp)>,
    state: RunState,
    attachment: Attachment,
}

impl Controller {
    /// Loads the config, then the program (adopting pinned maps), installs the config and
    /// attaches (adopting or replacing a pinned link). Nothing is changed if the config is
    /// invalid.
    pub fn start(options: RunOptions) -> Result<Self, ControllerError> {
        let config = config::load(&options.config)?;
        let paths = RouterPaths::new(&options.iface)?;
        paths.prepare()?;
        if std::os::unix::net::UnixStream::connect(paths.control_socket()).is_ok() {
            return Err(ControllerError::AlreadyRunning(options.iface.clone()));
        }
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

        let mut ebpf = ebpf::load(LoadOptions {
            debug_log: options.debug,
            pin_dir: Some(&paths.pin_dir),
            ..LoadOptions::default()
        })?;
        let mut dataplane = Dataplane::new(&mut ebpf)?;
        pin_worker_program(&mut ebpf, &paths)?;
        let mut indices =
            BackendIndices::from_map(previous.as_ref().map(RunState::indices).unwrap_or_default());
        dataplane.install(&config, &mut indices, netif::lookup)?;
        let (attachment, program_id) = attach::attach(
            &mut ebpf,
            &options.iface,
            options.mode,
            &paths.link(),
            replace,
        )?;

        let mut state = RunState {
            iface: options.iface.clone(),
            mode: options.mode,
            debug: options.debug,
            config: options.config.display().to_string(),
            pid: Some(std::process::id()),
            program_id,
            epoch: dataplane.epoch(),
            codepoints: Vec::new(),
            backends: Vec::new(),
        };
        state.record_config(&config, indices.as_map());
        state.store(&paths.state())?;
        info!(
            iface = %options.iface,
            mode = options.mode.name(),
            attachment = ?attachment,
            program_id,
            epoch = dataplane.epoch(),
            backends = config.backends.len(),
            "router running"
        );
        Ok(Self {
            watched: watched_files(&options.config, &config),
            options,
            paths,
            ebpf,
            dataplane,
            indices,
            state,
            attachment,
        })
    }

    /// Serves until SIGINT, SIGTERM or a shutdown request. The data path keeps running.
    pub async fn serve(mut self) -> Result<(), ControllerError> {
        let socket_path = self.paths.control_socket();
        let socket_error = |source| ControllerError::Socket {
            path: socket_path.display().to_string(),
            source,
        };
        let _ = fs::remove_file(&socket_path);
        let listener = UnixListener::bind(&socket_path).map_err(socket_error)?;
        fs::set_permissions(&socket_path, fs::Permissions::from_mode(0o600))
            .map_err(socket_error)?;
        let (requests, mut incoming) = mpsc::channel(16);
        tokio::spawn(accept_requests(listener, requests));

        if let Some(addr) = self.options.metrics_addr {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ControllerError::Metrics { addr, source })?;
            let collector = RouterCollector {
                pin_dir: self.paths.pin_dir.clone(),
                state_file: self.paths.state(),
            };
            tokio::spawn(async move {
                if let Err(err) = metrics::serve(listener, collector).await {
                    error!(%err, "metrics server stopped");
                }
            });
            info!(%addr, "serving metrics");
        }

        let mut logger = self.debug_logger()?;
        let mut hangup = signal(SignalKind::hangup()).map_err(ControllerError::Signal)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(ControllerError::Signal)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(ControllerError::Signal)?;
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
                }
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
            Attachment::New | Attachment::Replaced => EbpfLogger::init(&mut self.ebpf),
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
            .and_then(|config| self.install(&config).map_err(|err| err.to_string()));
        match &result {
            Ok(epoch) => info!(why, epoch, "config applied"),
            Err(err) => error!(why, %err, "config not applied; the running one stays"),
        }
        result
    }

    /// Applies `config` if it changes anything; returns the epoch.
    fn install(&mut self, config: &RouterConfig) -> Result<u32, ControllerError> {
        self.watched = watched_files(&self.options.config, config);
        self.dataplane
            .install(config, &mut self.indices, netif::lookup)?;
        self.state.epoch = self.dataplane.epoch();
        self.state.record_config(config, self.indices.as_map());
        self.state.store(&self.paths.state())?;
        Ok(self.dataplane.epoch())
    }

    fn handle(&mut self, request: Request) -> Response {
        let outcome = match request {
            Request::Reload => self
                .reload("reload request")
                .map(|_| "config applied".to_owned()),
            Request::Shutdown => Ok("stopping; the data path keeps running".to_owned()),
            Request::Edit { edit } => match config_edit::edit_file(&self.options.config, &edit) {
                Ok(config) => match self.install(&config) {
                    Ok(epoch) => {
                        info!(?edit, epoch, "config edited and applied");
                        Ok(format!("{} and applied", describe(&edit)))
                    }
                    Err(err) => Err(format!("config edited but not applied: {err}")),
                },
                Err(err) => Err(err.to_string()),
            },
        };
        let (ok, message) = match outcome {
            Ok(message) => (true, message),
            Err(message) => (false, message),
        };
        Response {
            ok,
            message,
            epoch: self.dataplane.epoch(),
        }
    }
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

/// Accepts control connections: one JSON request line each, answered with one line.
async fn accept_requests(
    listener: UnixListener,
    requests: mpsc::Sender<(Request, oneshot::Sender<Response>)>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let requests = requests.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let response = match serde_json::from_str::<Request>(&line) {
                Ok(request) => {
                    let (reply, answer) = oneshot::channel();
                    if requests.send((request, reply)).await.is_err() {
                        return;
                    }
                    match answer.await {
                        Ok(response) => response,
                        Err(_) => return,
                    }
                }
                Err(err) => Response {
                    ok: false,
                    message: format!("not a request: {err}"),
                    epoch: 0,
                },
            };
            let mut text = serde_json::to_string(&response).unwrap_or_default();
            text.push('\n');
            let _ = write.write_all(text.as_bytes()).await;
        });
    }
}
