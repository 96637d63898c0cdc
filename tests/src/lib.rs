//! Shared harness for quic-router's integration tests. Tests that need root or the kernel
//! fail with a clear message when they cannot run; none of them skips.

pub mod addresses;
pub mod aioquic;
pub mod config_text;
pub mod deployment;
pub mod fixtures;
pub mod fleet;
pub mod mounts;
pub mod netns;
pub mod packet;
pub mod process;
pub mod quic;
pub mod router_fleet;
pub mod topology;
pub mod traffic;

use std::{
    fs,
    ops::{Deref, DerefMut},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use router_user::{
    config::{self, Delivery, Encapsulation, Reach, RouterConfig},
    router::{Counters, LoadOptions, Mode, Router},
};

use crate::{
    addresses::{QUIC_PORT, VIP4, VIP6},
    config_text::{BackendText, ConfigText},
    fixtures::{BACKENDS, BackendFixture, CID_CONFIGS, INTERFACES, WorkerFixture},
    netns::{Entered, Netns},
    topology::Topology,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

/// The standard config's text: both VIPs' listeners, the [`CID_CONFIGS`] (key files written
/// into `dir`) and `backends`.
pub fn standard_config_text(dir: &Path, backends: &[BackendFixture]) -> ConfigText {
    backends.iter().fold(
        standard_quic_lb(standard_listeners(None), dir),
        |text, backend| text.backend(&backend_text(backend)),
    )
}

/// Both VIPs' listeners on the QUIC port, with `initial_routing` when given.
pub fn standard_listeners(initial_routing: Option<&str>) -> ConfigText {
    ConfigText::new()
        .listener(VIP4, QUIC_PORT, initial_routing)
        .listener(VIP6, QUIC_PORT, initial_routing)
}

/// `text` with the [`CID_CONFIGS`], their key files written into `dir`.
pub fn standard_quic_lb(text: ConfigText, dir: &Path) -> ConfigText {
    CID_CONFIGS.iter().fold(text, |text, config| {
        let key_file = config
            .key
            .map(|key| write_key(dir, &config.key_file_name(), key));
        text.quic_lb(
            config.config_rotation,
            config.server_id_len,
            config.nonce_len,
            config.server_use_len,
            key_file.as_deref(),
        )
    })
}

/// A standard backend's `[[backend]]`.
pub fn backend_text(backend: &BackendFixture) -> BackendText {
    with_server_ids(
        BackendText::host(backend.name, backend.interface, backend.next_hop_mac),
        &backend.server_ids,
    )
    .state(backend.state)
}

/// A local worker's `[[backend]]`.
pub fn worker_text(worker: &WorkerFixture) -> BackendText {
    with_server_ids(BackendText::local_worker(worker.name), &worker.server_ids)
}

/// `backend` with one server ID per standard codepoint.
fn with_server_ids(backend: BackendText, server_ids: &[&str; 4]) -> BackendText {
    server_ids
        .iter()
        .zip(CID_CONFIGS)
        .fold(backend, |backend, (id, config)| {
            backend.server_id(config.config_rotation, id)
        })
}

/// A config file (and its key files) in a temporary directory.
pub struct ConfigFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl ConfigFile {
    /// The standard config: [`BACKENDS`].
    pub fn standard() -> Self {
        Self::with_backends(&BACKENDS)
    }

    /// The standard config with other backends.
    pub fn with_backends(backends: &[BackendFixture]) -> Self {
        Self::with_text(|dir| standard_config_text(dir, backends))
    }

    /// The config that `text` builds (given the directory, for key files).
    pub fn with_text(text: impl FnOnce(&Path) -> ConfigText) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("router.toml");
        fs::write(&path, text(dir.path()).build()).expect("write config");
        Self { dir, path }
    }

    pub fn load(&self) -> RouterConfig {
        config::load(&self.path).unwrap_or_else(|err| panic!("{err}"))
    }
}

/// The config `text` builds, written to a file and loaded; an error as its one line (the
/// line is checked to be one).
pub fn load_config_text(text: ConfigText) -> Result<RouterConfig, String> {
    let file = ConfigFile::with_text(|_| text);
    config::load(&file.path).map_err(|err| {
        let message = err.to_string();
        assert!(!message.contains('\n'), "{message:?} is not one line");
        message
    })
}

/// Writes the key file `name` (mode 0600, as the router requires) into `dir`: its path.
pub fn write_key(dir: &Path, name: &str, hex_key: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, hex_key).expect("write key");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod key");
    path
}

/// The benchmark's programs (bench-ebpf, built by this crate's build script), aligned for
/// aya's ELF parser.
pub fn bench_program_bytes() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-ebpf"))
}

/// The C yardstick floor (bench-ebpf/c/floor.c, built with clang by this crate's build
/// script), aligned for aya's ELF parser.
pub fn c_floor_bytes() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/c-floor.o"))
}

/// The C yardstick floor loaded (not into the kernel yet).
pub fn load_c_floor() -> Ebpf {
    Ebpf::load(c_floor_bytes()).unwrap_or_else(|err| panic!("C floor: {err}"))
}

/// The benchmark's programs loaded (none of them is loaded into the kernel yet).
pub fn load_bench_programs() -> Ebpf {
    Ebpf::load(bench_program_bytes()).unwrap_or_else(|err| panic!("bench programs: {err}"))
}

/// The XDP program `name` of `ebpf`.
pub fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    ebpf.program_mut(name)
        .unwrap_or_else(|| panic!("no program {name}"))
        .try_into()
        .unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// Takes the map `name` out of `ebpf`, as the kind of map `T`.
pub fn take_map<T>(ebpf: &mut Ebpf, name: &str) -> T
where
    T: TryFrom<aya::maps::Map>,
    T::Error: std::fmt::Display,
{
    let map = ebpf
        .take_map(name)
        .unwrap_or_else(|| panic!("no map {name}"));
    T::try_from(map).unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// Runs `packet` once through `program` (BPF_PROG_TEST_RUN): the action and the packet as
/// it leaves.
pub fn run_once(program: &Xdp, packet: &[u8]) -> (u32, Vec<u8>) {
    let (action, out, _) = run_repeated(program, packet, 1);
    (action, out)
}

/// Runs `packet` through `program` `repeat` times in one BPF_PROG_TEST_RUN: the action and
/// the packet as it leaves (of the last run), and the average time of a run.
pub fn run_repeated(program: &Xdp, packet: &[u8], repeat: u32) -> (u32, Vec<u8>, Duration) {
    let mut out = vec![0u8; packet.len() + 512];
    let result = program
        .test_run(TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            repeat,
            ..TestRunOptions::default()
        })
        .unwrap_or_else(|err| panic!("BPF_PROG_TEST_RUN: {err}"));
    out.truncate(result.data_size_out as usize);
    (result.return_value, out, result.duration)
}

/// The router loaded with `options` (not attached) and `config` installed; backend
/// interfaces are looked up in the calling thread's namespace.
pub fn load_router(config: &RouterConfig, options: &LoadOptions<'_>) -> Router {
    load_router_from(router_user::router::object(), config, options)
}

/// [`load_router`] from `object`, another build of the router's object.
pub fn load_router_from(object: &[u8], config: &RouterConfig, options: &LoadOptions<'_>) -> Router {
    let mut router = Router::load_object(object, options).unwrap_or_else(|err| panic!("{err}"));
    router.install(config).unwrap_or_else(|err| panic!("{err}"));
    router
}

/// `config` with backend `name` reached by `delivery` (its interface and next hop kept,
/// or, `routed`, the kernel's routes), and the test networks' `[encapsulation]`.
pub fn deliver_to(config: &mut RouterConfig, name: &str, delivery: Delivery, routed: bool) {
    config.encapsulation = Encapsulation {
        source4: Some(addresses::ENCAP_SOURCE4.parse().expect("a prefix")),
        source6: Some(addresses::ENCAP_SOURCE6.parse().expect("a prefix")),
        gue_port: Some(addresses::GUE_PORT),
    };
    let backend = config
        .backends
        .iter_mut()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no backend {name}"));
    match &mut backend.reach {
        _ if routed => backend.reach = Reach::Routed { delivery },
        Reach::Host { delivery: d, .. } => *d = delivery,
        reach => panic!("{name} is {reach:?}, not a host"),
    }
}

/// The load options for `config`: its limits, the rest as default.
pub fn options_for(config: &RouterConfig) -> LoadOptions<'static> {
    LoadOptions {
        limits: config.limits,
        ..LoadOptions::default()
    }
}

/// The router loaded in `topology`'s router namespace with `config` installed and attached
/// to `r0` in `mode` until it drops.
pub fn attach_router(topology: &Topology, config: &RouterConfig, mode: Mode) -> Router {
    attach_router_with(topology, config, mode, &options_for(config))
}

/// [`attach_router`] loaded with `options`.
pub fn attach_router_with(
    topology: &Topology,
    config: &RouterConfig,
    mode: Mode,
    options: &LoadOptions<'_>,
) -> Router {
    let _inside = topology.router.enter();
    let mut router = load_router(config, options);
    router
        .attach_unpinned("r0", mode)
        .unwrap_or_else(|err| panic!("attach quic-router in {mode:?}: {err}"));
    router
}

/// The router loaded to explain packets (verdict tracing on, not attached), with `config`
/// installed.
pub fn explaining_router(config: &RouterConfig) -> Router {
    load_router(
        config,
        &LoadOptions {
            trace_verdicts: true,
            ..options_for(config)
        },
    )
}

/// The router loaded (not attached) in a namespace of its own that has the standard
/// backend interfaces ([`INTERFACES`]), with a config installed. The calling thread stays in
/// the namespace while it lives.
pub struct TestRouter {
    router: Router,
    // Dropped after the router: the namespace holds the interfaces the devmap points at.
    _inside: Entered,
    pub netns: Netns,
}

impl TestRouter {
    pub fn new(config: &RouterConfig) -> Self {
        Self::with_options(config, options_for(config))
    }

    pub fn with_options(config: &RouterConfig, options: LoadOptions<'_>) -> Self {
        Self::with_object(config, router_user::router::object(), options)
    }

    /// The router from `object` (another build of it, say) with `options`.
    pub fn with_object(config: &RouterConfig, object: &[u8], options: LoadOptions<'_>) -> Self {
        let netns = Netns::create("router");
        for interface in INTERFACES {
            netns.veth(interface.name, interface.mac);
        }
        let inside = netns.enter();
        let router = load_router_from(object, config, &options);
        Self {
            router,
            _inside: inside,
            netns,
        }
    }

    /// Runs `packet` through the program: the action and the packet as it leaves.
    pub fn run(&self, packet: &[u8]) -> (u32, Vec<u8>) {
        self.router
            .run(packet)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// Installs `config` (keeping the backend indices).
    pub fn install(&mut self, config: &RouterConfig) -> u32 {
        self.router
            .install(config)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    pub fn counters(&self) -> Counters {
        self.router.counters().unwrap_or_else(|err| panic!("{err}"))
    }

    /// The backend index of `name`.
    pub fn backend(&self, name: &str) -> u32 {
        self.router
            .backend_index(name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }
}

impl Deref for TestRouter {
    type Target = Router;
    fn deref(&self) -> &Router {
        &self.router
    }
}

impl DerefMut for TestRouter {
    fn deref_mut(&mut self) -> &mut Router {
        &mut self.router
    }
}

/// Restricts task `tid` (0: the calling thread) to `cpu`.
pub fn pin_to_cpu(tid: libc::pid_t, cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET stays within it for cpu < CPU_SETSIZE.
    let status = unsafe {
        let mut set: libc::cpu_set_t = std::mem::MaybeUninit::zeroed().assume_init();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        status,
        0,
        "pin task {tid} to CPU {cpu}: {}",
        std::io::Error::last_os_error()
    );
}
