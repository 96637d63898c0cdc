//! Differential tests: the kernel's server ID decoding (table AES in BPF) against
//! router-common's on RustCrypto AES, on random connection IDs.

use integration_tests::{
    ConfigFile,
    addresses::{QUIC_PORT, SENDER4, VIP4},
    explaining_router,
    fixtures::CID_CONFIGS,
    netns::Netns,
    packet::{Datagram, short_header},
};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use router_common::{
    maps::Limits,
    quic_lb::{Config, ConfigParams, Decoder, Encoder, Key},
};
use router_user::config::{
    Backend, BackendState, CidConfig, Delivery, Encapsulation, InitialRouting, Listener, Reach,
    RouterConfig,
};

const PER_MODE: usize = 10_000;

fn packet(cid: &[u8]) -> Vec<u8> {
    Datagram::new(
        SENDER4.parse().unwrap(),
        VIP4.parse().unwrap(),
        50_000,
        QUIC_PORT,
        short_header(cid),
    )
    .frame()
}

/// What router-common decodes from `cid`, as `explain` shows it.
fn expected_server_id(config: &CidConfig, cid: &[u8]) -> String {
    let mut decoder = Decoder::new();
    let cipher = config.key.as_ref().map(Key::aes128);
    decoder.insert(Config::new(config.params, cipher).unwrap());
    decoder.server_id(cid).unwrap().1.to_string()
}

/// For each mode of the standard config, half minted CIDs (the kernel must find the server
/// ID that was put in) and half random octets under the mode's codepoint (it must decode
/// what router-common decodes).
#[test]
fn ten_thousand_random_cids_per_mode_decode_alike() {
    let netns = Netns::create("explain");
    let _inside = netns.enter();
    let config = ConfigFile::standard().load();
    let mut explainer = explaining_router(&config);
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for fixture in CID_CONFIGS {
        let (codepoint, sid_len, nonce_len) = (
            fixture.config_rotation,
            fixture.server_id_len,
            fixture.nonce_len,
        );
        let cid_config = config
            .cid_configs
            .iter()
            .find(|c| c.params.config_rotation == codepoint)
            .unwrap();
        let cipher = cid_config.key.as_ref().map(Key::aes128);
        let encoder = Encoder::new(Config::new(cid_config.params, cipher).unwrap());
        for i in 0..PER_MODE {
            let (cid, expected) = if i % 2 == 0 {
                let sid: Vec<u8> = (0..sid_len).map(|_| rng.random()).collect();
                let nonce: Vec<u8> = (0..nonce_len).map(|_| rng.random()).collect();
                let cid = encoder
                    .encode(&sid, &nonce, &mut rng)
                    .unwrap()
                    .as_slice()
                    .to_vec();
                (cid, hex::encode(sid))
            } else {
                let mut cid: Vec<u8> = (0..cid_config.params.cid_len())
                    .map(|_| rng.random())
                    .collect();
                cid[0] = (codepoint << 5) | (cid[0] & 0x1f);
                let expected = expected_server_id(cid_config, &cid);
                (cid, expected)
            };
            let explanation = explainer.explain(&packet(&cid)).unwrap();
            assert_eq!(
                explanation.server_id.as_deref(),
                Some(expected.as_str()),
                "codepoint {codepoint}, CID {}",
                hex::encode(&cid)
            );
        }
    }
}

/// Every (server ID length, nonce length) pair, keyed (single-pass or four-pass, odd and even
/// lengths) and plaintext, on random CIDs.
#[test]
fn every_length_pair_decodes_alike() {
    let netns = Netns::create("explain");
    let _inside = netns.enter();
    let mut rng = StdRng::seed_from_u64(0x1e9);
    let config_for = |params: ConfigParams, key: Option<Key>| RouterConfig {
        listeners: vec![Listener {
            address: VIP4.parse().unwrap(),
            port: QUIC_PORT,
            initial_routing: InitialRouting::Cid,
        }],
        cid_configs: vec![CidConfig {
            params,
            key,
            key_file: None,
        }],
        backends: vec![Backend {
            name: "only".into(),
            server_ids: Vec::new(),
            reach: Reach::Host {
                interface: "lo".into(),
                next_hop_mac: [2, 0, 0, 0, 0, 9],
                delivery: Delivery::L2,
            },
            weight: 1,
            state: BackendState::Active,
        }],
        encapsulation: Encapsulation::default(),
        limits: Limits::DEFAULT,
        health: None,
        announce: None,
    };
    let first = ConfigParams::new(4, 1, 4);
    let mut explainer = explaining_router(&config_for(first, None));
    let mut checked = 0;
    for server_id_len in 1u8..=15 {
        for nonce_len in 4u8..=(19 - server_id_len).min(18) {
            for keyed in [false, true] {
                let params = ConfigParams {
                    server_id_len,
                    nonce_len,
                    ..first
                };
                let key = keyed.then(|| Key::from_slice(&rng.random::<[u8; 16]>()).unwrap());
                let config = config_for(params, key);
                explainer
                    .install(&config)
                    .unwrap_or_else(|err| panic!("{err}"));
                for _ in 0..40 {
                    let mut cid: Vec<u8> = (0..params.cid_len()).map(|_| rng.random()).collect();
                    cid[0] = (4 << 5) | (cid[0] & 0x1f);
                    let expected = expected_server_id(&config.cid_configs[0], &cid);
                    let explanation = explainer.explain(&packet(&cid)).unwrap();
                    assert_eq!(
                        explanation.server_id.as_deref(),
                        Some(expected.as_str()),
                        "server ID {server_id_len}, nonce {nonce_len}, keyed {keyed}, CID {}",
                        hex::encode(&cid)
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 120 * 2 * 40);
}
