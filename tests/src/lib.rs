//! Shared harness for quic-router's integration tests. Tests that need root or the kernel
//! fail with a clear message when they cannot run; none of them skips.

pub mod deployment;
pub mod fleet;
pub mod mounts;
pub mod netns;
pub mod packet;
pub mod process;
pub mod quic;
pub mod topology;
pub mod traffic;

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions, Xdp, XdpMode},
};
use rand::{SeedableRng as _, rngs::StdRng};
use router_common::quic_lb::{Config, ConfigParams, Encoder, Key};
use router_user::{
    config::{self, RouterConfig},
    dataplane::{Counters, Dataplane},
    ebpf, netif,
    tables::{BackendIndices, RoutingTables},
};

pub use crate::topology::{VIP4, VIP6};
use crate::{netns::IsolatedNetns, topology::Topology};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

/// The standard test topology's QUIC-LB configs: (codepoint, server ID length, nonce length,
/// key, server-use octets). One per mode, four-pass both with three and with four passes.
pub const CID_CONFIGS: [(u8, u8, u8, Option<&str>, u8); 4] = [
    (0, 2, 6, None, 0),
    (1, 4, 12, Some("8f95f09245765f80256934e50c66207f"), 0),
    (2, 3, 4, Some("fdf726a9893ec05c0632d3956680baf0"), 0),
    (3, 8, 5, Some("0123456789abcdef0f1e2d3c4b5a6978"), 2),
];

/// Backends: (name, interface, next-hop MAC, server IDs per codepoint 0..=3, state).
pub const BACKENDS: [(&str, &str, &str, [&str; 4], &str); 3] = [
    (
        "alpha",
        "be0",
        "02:00:00:00:0a:01",
        ["0a01", "000000a1", "31441a", "a1a1a1a1a1a1a1a1"],
        "active",
    ),
    (
        "beta",
        "be1",
        "02:00:00:00:0b:01",
        ["0a02", "000000b1", "31441b", "b1b1b1b1b1b1b1b1"],
        "active",
    ),
    (
        "gamma",
        "be1",
        "02:00:00:00:0c:01",
        ["0a03", "000000c1", "31441c", "c1c1c1c1c1c1c1c1"],
        "draining",
    ),
];

/// Local workers for the standard configs: (name, server IDs per codepoint 0..=3).
pub const LOCAL_WORKERS: [(&str, [&str; 4]); 4] = [
    (
        "worker0",
        ["0e00", "000000e0", "e00000", "e0e0e0e0e0e0e0e0"],
    ),
    (
        "worker1",
        ["0e01", "000000e1", "e00001", "e1e1e1e1e1e1e1e1"],
    ),
    (
        "worker2",
        ["0e02", "000000e2", "e00002", "e2e2e2e2e2e2e2e2"],
    ),
    (
        "worker3",
        ["0e03", "000000e3", "e00003", "e3e3e3e3e3e3e3e3"],
    ),
];

/// The backend interfaces and their MACs.
pub const INTERFACES: [(&str, [u8; 6]); 2] = [
    ("be0", [0x02, 0, 0, 0, 0, 0xe0]),
    ("be1", [0x02, 0, 0, 0, 0, 0xe1]),
];

/// A config file (and its key files) in a temporary directory.
pub struct ConfigFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl ConfigFile {
    /// The standard topology's config; `backends` picks and edits the backend lines.
    pub fn standard() -> Self {
        Self::with_backends(&BACKENDS)
    }

    pub fn with_backends(backends: &[(&str, &str, &str, [&str; 4], &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut text = format!(
            "[[listener]]\naddress = \"{VIP4}\"\nport = 443\n\n[[listener]]\naddress = \"{VIP6}\"\nport = 443\n"
        );
        for (codepoint, sid_len, nonce_len, key, server_use) in CID_CONFIGS {
            text += &format!(
                "\n[[quic_lb]]\nconfig_rotation = {codepoint}\nserver_id_len = {sid_len}\nnonce_len = {nonce_len}\nserver_use_len = {server_use}\n"
            );
            if let Some(key) = key {
                let file = write_key(dir.path(), &format!("cr{codepoint}.key"), key);
                text += &format!("key_file = \"{}\"\n", file.display());
            }
        }
        for (name, interface, mac, server_ids, state) in backends {
            let ids = server_ids_text(server_ids);
            text += &format!(
                "\n[[backend]]\nname = \"{name}\"\nserver_ids = {{ {ids} }}\ninterface = \"{interface}\"\nnext_hop_mac = \"{mac}\"\nstate = \"{state}\"\n"
            );
        }
        let path = dir.path().join("router.toml");
        fs::write(&path, text).expect("write config");
        Self { dir, path }
    }

    /// Adds a local worker with `server_ids` under codepoints 0..=3.
    pub fn add_local_worker(&self, name: &str, server_ids: [&str; 4]) {
        let ids = server_ids_text(&server_ids);
        let mut text = fs::read_to_string(&self.path).expect("read config");
        text += &format!(
            "\n[[backend]]\nname = \"{name}\"\nserver_ids = {{ {ids} }}\nlocal_worker = true\n"
        );
        fs::write(&self.path, text).expect("write config");
    }

    pub fn load(&self) -> RouterConfig {
        config::load(&self.path).unwrap_or_else(|err| panic!("{err}"))
    }
}

/// `0 = ["..."], 1 = ["..."], ...`: one server ID per codepoint.
fn server_ids_text(server_ids: &[&str; 4]) -> String {
    server_ids
        .iter()
        .enumerate()
        .map(|(codepoint, id)| format!("{codepoint} = [\"{id}\"]"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the key file `name` (mode 0600, as the router requires) into `dir`: its path.
pub fn write_key(dir: &Path, name: &str, hex_key: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, hex_key).expect("write key");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod key");
    path
}

/// A connection ID that the server `server_id` mints under `codepoint` of [`CID_CONFIGS`],
/// with a nonce from `seed`.
pub fn mint(codepoint: u8, server_id: &str, seed: u64) -> Vec<u8> {
    let (_, sid_len, nonce_len, key, server_use) = CID_CONFIGS
        .iter()
        .copied()
        .find(|c| c.0 == codepoint)
        .expect("a standard codepoint");
    let params = ConfigParams {
        server_use_len: server_use,
        ..ConfigParams::new(codepoint, sid_len, nonce_len)
    };
    let cipher = key.map(|key| {
        Key::from_slice(&hex::decode(key).unwrap())
            .unwrap()
            .aes128()
    });
    let encoder = Encoder::new(Config::new(params, cipher).unwrap());
    let mut rng = StdRng::seed_from_u64(seed);
    let nonce: Vec<u8> = (0..nonce_len)
        .map(|_| rand::Rng::random(&mut rng))
        .collect();
    encoder
        .encode(&hex::decode(server_id).unwrap(), &nonce, &mut rng)
        .unwrap()
        .as_slice()
        .to_vec()
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

/// The router's program loaded in `topology`'s router namespace with `tables` installed and
/// attached to `r0` in `mode`; detached when the `Ebpf` drops.
pub fn attach_router(
    topology: &Topology,
    tables: &RoutingTables,
    mode: XdpMode,
) -> (Ebpf, Dataplane) {
    let _inside = topology.router.enter();
    let mut ebpf = ebpf::load(ebpf::LoadOptions::default()).unwrap_or_else(|err| panic!("{err}"));
    let mut dataplane = Dataplane::new(&mut ebpf).unwrap_or_else(|err| panic!("{err}"));
    dataplane
        .apply(tables.clone())
        .unwrap_or_else(|err| panic!("{err}"));
    ebpf::xdp_program(&mut ebpf)
        .expect("the router's program")
        .attach("r0", mode)
        .unwrap_or_else(|err| panic!("attach quic-router in {mode:?}: {err}"));
    (ebpf, dataplane)
}

/// The index that `indices` gives backend `name`.
pub fn backend_index(indices: &BackendIndices, name: &str) -> u32 {
    *indices
        .as_map()
        .get(name)
        .unwrap_or_else(|| panic!("no backend {name}"))
}

/// The router's program loaded (not attached) in an isolated namespace with the standard
/// backend interfaces, and a config installed.
pub struct Router {
    pub ebpf: Ebpf,
    pub dataplane: Dataplane,
    /// The tables installed at creation ([`install`](Self::install) leaves them).
    pub tables: RoutingTables,
    pub indices: BackendIndices,
    // Dropped last: the namespace holds the interfaces the devmap points at.
    pub netns: IsolatedNetns,
}

impl Router {
    pub fn new(config: &RouterConfig) -> Self {
        Self::with_options(config, ebpf::LoadOptions::default())
    }

    pub fn with_options(config: &RouterConfig, options: ebpf::LoadOptions<'_>) -> Self {
        let netns = IsolatedNetns::enter();
        for (name, mac) in INTERFACES {
            netns.veth(name, mac);
        }
        let mut ebpf = ebpf::load(options).unwrap_or_else(|err| panic!("{err}"));
        let mut dataplane = Dataplane::new(&mut ebpf).unwrap_or_else(|err| panic!("{err}"));
        let mut indices = BackendIndices::default();
        let tables = RoutingTables::build(config, &mut indices, netif::lookup)
            .unwrap_or_else(|err| panic!("{err}"));
        dataplane
            .apply(tables.clone())
            .unwrap_or_else(|err| panic!("{err}"));
        Self {
            ebpf,
            dataplane,
            tables,
            indices,
            netns,
        }
    }

    /// Runs `packet` through the program: the action and the packet as it leaves.
    pub fn run(&mut self, packet: &[u8]) -> (u32, Vec<u8>) {
        run_once(ebpf::xdp_program(&mut self.ebpf).unwrap(), packet)
    }

    /// Builds `config`'s tables (keeping the backend indices) and installs them.
    pub fn install(&mut self, config: &RouterConfig) {
        let tables = RoutingTables::build(config, &mut self.indices, netif::lookup)
            .unwrap_or_else(|err| panic!("{err}"));
        self.dataplane
            .apply(tables)
            .unwrap_or_else(|err| panic!("{err}"));
    }

    pub fn counters(&self) -> Counters {
        self.dataplane
            .counters()
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// The backend index of `name`.
    pub fn backend(&self, name: &str) -> u32 {
        backend_index(&self.indices, name)
    }
}
