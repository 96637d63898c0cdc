//! The standard test router's fixtures: QUIC-LB configs, backends, local workers and the
//! interfaces the backends are reached through, and CIDs minted to them.

use rand::{SeedableRng as _, rngs::StdRng};
use router_common::quic_lb::{Config, ConfigParams, Encoder, Key};

/// One `[[quic_lb]]`.
#[derive(Debug, Clone, Copy)]
pub struct CidConfigFixture {
    pub config_rotation: u8,
    pub server_id_len: u8,
    pub nonce_len: u8,
    /// The key in hex; none: plaintext.
    pub key: Option<&'static str>,
    pub server_use_len: u8,
}

impl CidConfigFixture {
    pub fn params(&self) -> ConfigParams {
        ConfigParams {
            server_use_len: self.server_use_len,
            ..ConfigParams::new(self.config_rotation, self.server_id_len, self.nonce_len)
        }
    }

    /// The key file's name next to the config.
    pub fn key_file_name(&self) -> String {
        format!("cr{}.key", self.config_rotation)
    }
}

/// One `[[backend]]` host of the standard config.
#[derive(Debug, Clone, Copy)]
pub struct BackendFixture {
    pub name: &'static str,
    /// One of [`INTERFACES`].
    pub interface: &'static str,
    pub next_hop_mac: &'static str,
    /// One server ID per standard codepoint 0..=3 ([`CID_CONFIGS`]).
    pub server_ids: [&'static str; 4],
    pub state: &'static str,
}

/// A local worker of the standard config.
#[derive(Debug, Clone, Copy)]
pub struct WorkerFixture {
    pub name: &'static str,
    /// One server ID per standard codepoint 0..=3.
    pub server_ids: [&'static str; 4],
}

/// An interface of the test router's namespace, with its MAC.
#[derive(Debug, Clone, Copy)]
pub struct InterfaceFixture {
    pub name: &'static str,
    pub mac: [u8; 6],
}

/// One config per mode, four-pass both with three and with four passes.
pub const CID_CONFIGS: [CidConfigFixture; 4] = [
    CidConfigFixture {
        config_rotation: 0,
        server_id_len: 2,
        nonce_len: 6,
        key: None,
        server_use_len: 0,
    },
    CidConfigFixture {
        config_rotation: 1,
        server_id_len: 4,
        nonce_len: 12,
        key: Some("8f95f09245765f80256934e50c66207f"),
        server_use_len: 0,
    },
    CidConfigFixture {
        config_rotation: 2,
        server_id_len: 3,
        nonce_len: 4,
        key: Some("fdf726a9893ec05c0632d3956680baf0"),
        server_use_len: 0,
    },
    CidConfigFixture {
        config_rotation: 3,
        server_id_len: 8,
        nonce_len: 5,
        key: Some("0123456789abcdef0f1e2d3c4b5a6978"),
        server_use_len: 2,
    },
];

pub const BACKENDS: [BackendFixture; 3] = [
    BackendFixture {
        name: "alpha",
        interface: "be0",
        next_hop_mac: "02:00:00:00:0a:01",
        server_ids: ["0a01", "000000a1", "31441a", "a1a1a1a1a1a1a1a1"],
        state: "active",
    },
    BackendFixture {
        name: "beta",
        interface: "be1",
        next_hop_mac: "02:00:00:00:0b:01",
        server_ids: ["0a02", "000000b1", "31441b", "b1b1b1b1b1b1b1b1"],
        state: "active",
    },
    BackendFixture {
        name: "gamma",
        interface: "be1",
        next_hop_mac: "02:00:00:00:0c:01",
        server_ids: ["0a03", "000000c1", "31441c", "c1c1c1c1c1c1c1c1"],
        state: "draining",
    },
];

pub const LOCAL_WORKERS: [WorkerFixture; 4] = [
    WorkerFixture {
        name: "worker0",
        server_ids: ["0e00", "000000e0", "e00000", "e0e0e0e0e0e0e0e0"],
    },
    WorkerFixture {
        name: "worker1",
        server_ids: ["0e01", "000000e1", "e00001", "e1e1e1e1e1e1e1e1"],
    },
    WorkerFixture {
        name: "worker2",
        server_ids: ["0e02", "000000e2", "e00002", "e2e2e2e2e2e2e2e2"],
    },
    WorkerFixture {
        name: "worker3",
        server_ids: ["0e03", "000000e3", "e00003", "e3e3e3e3e3e3e3e3"],
    },
];

pub const INTERFACES: [InterfaceFixture; 2] = [
    InterfaceFixture {
        name: "be0",
        mac: [0x02, 0, 0, 0, 0, 0xe0],
    },
    InterfaceFixture {
        name: "be1",
        mac: [0x02, 0, 0, 0, 0, 0xe1],
    },
];

/// The standard backend named `name`.
pub fn backend(name: &str) -> &'static BackendFixture {
    BACKENDS
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no standard backend {name}"))
}

/// The standard interface named `name`.
pub fn interface(name: &str) -> &'static InterfaceFixture {
    INTERFACES
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no standard interface {name}"))
}

/// A connection ID that the server `server_id` mints under codepoint `config_rotation` of
/// [`CID_CONFIGS`], with a nonce from `seed`.
pub fn mint(config_rotation: u8, server_id: &str, seed: u64) -> Vec<u8> {
    let config = CID_CONFIGS
        .iter()
        .find(|c| c.config_rotation == config_rotation)
        .expect("a standard codepoint");
    let cipher = config.key.map(|key| {
        Key::from_slice(&hex::decode(key).unwrap())
            .unwrap()
            .aes128()
    });
    let encoder = Encoder::new(Config::new(config.params(), cipher).unwrap());
    let mut rng = StdRng::seed_from_u64(seed);
    let nonce: Vec<u8> = (0..config.nonce_len)
        .map(|_| rand::Rng::random(&mut rng))
        .collect();
    encoder
        .encode(&hex::decode(server_id).unwrap(), &nonce, &mut rng)
        .unwrap()
        .as_slice()
        .to_vec()
}
