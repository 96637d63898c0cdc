//! Property tests: encode then decode, for every valid (server ID length, nonce length) pair,
//! with and without a key (so plaintext, single-pass and four-pass), random contents.

use std::{cell::Cell, rc::Rc};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use rand::{SeedableRng, rngs::StdRng};
use router_common::quic_lb::{
    BLOCK_LEN, BlockCipher, Config, ConfigParams, Decoder, Encoder, Key, MAX_CID_LEN, Mode,
};

/// Every (server ID length, nonce length) that draft-21 allows: 120 pairs.
fn valid_pairs() -> Vec<(u8, u8)> {
    (1u8..=15)
        .flat_map(|sid| (4u8..=18).map(move |nonce| (sid, nonce)))
        .filter(|&(sid, nonce)| sid + nonce <= 19)
        .collect()
}

/// Counts block operations, to see how many passes a decode took.
#[derive(Clone)]
struct Counting {
    inner: aes::Aes128,
    encryptions: Rc<Cell<u32>>,
}

impl BlockCipher for Counting {
    fn encrypt_block(&self, block: &mut [u8; BLOCK_LEN]) {
        self.encryptions.set(self.encryptions.get() + 1);
        self.inner.encrypt_block(block);
    }
    fn decrypt_block(&self, block: &mut [u8; BLOCK_LEN]) {
        self.inner.decrypt_block(block);
    }
}

#[derive(Debug, Clone)]
struct Case {
    config_rotation: u8,
    server_id: Vec<u8>,
    nonce: Vec<u8>,
    key: Option<[u8; 16]>,
    length_self_description: bool,
    server_use_len: u8,
    seed: u64,
}

fn case_strategy(sid_len: u8, nonce_len: u8, keyed: bool) -> impl Strategy<Value = Case> {
    let max_server_use = (MAX_CID_LEN - 1) as u8 - sid_len - nonce_len;
    (
        0u8..=6,
        proptest::collection::vec(any::<u8>(), sid_len as usize),
        proptest::collection::vec(any::<u8>(), nonce_len as usize),
        any::<[u8; 16]>(),
        any::<bool>(),
        0..=max_server_use,
        any::<u64>(),
    )
        .prop_map(
            move |(cr, server_id, nonce, key, lsd, server_use_len, seed)| Case {
                config_rotation: cr,
                server_id,
                nonce,
                key: keyed.then_some(key),
                length_self_description: lsd,
                server_use_len,
                seed,
            },
        )
}

fn check_round_trip(case: &Case) -> Result<(), TestCaseError> {
    let params = ConfigParams {
        config_rotation: case.config_rotation,
        server_id_len: case.server_id.len() as u8,
        nonce_len: case.nonce.len() as u8,
        length_self_description: case.length_self_description,
        server_use_len: case.server_use_len,
    };
    let cipher = |key: &[u8; 16]| Counting {
        inner: Key::from_slice(key).unwrap().aes128(),
        encryptions: Rc::default(),
    };
    let config = Config::new(params, case.key.as_ref().map(cipher)).unwrap();
    let mode = config.mode();
    let plaintext_len = params.plaintext_len();
    match (case.key, plaintext_len) {
        (None, _) => prop_assert_eq!(mode, Mode::Plaintext),
        (Some(_), BLOCK_LEN) => prop_assert_eq!(mode, Mode::SinglePass),
        (Some(_), _) => prop_assert_eq!(mode, Mode::FourPass),
    }

    let mut rng = StdRng::seed_from_u64(case.seed);
    let cid = Encoder::new(config.clone())
        .encode(&case.server_id, &case.nonce, &mut rng)
        .unwrap();
    prop_assert_eq!(cid.len(), params.cid_len());
    prop_assert_eq!(cid.as_slice()[0] >> 5, case.config_rotation);
    if case.length_self_description {
        prop_assert_eq!((cid.as_slice()[0] & 0x1f) as usize, cid.len() - 1);
    }
    let plaintext: Vec<u8> = [case.server_id.as_slice(), &case.nonce].concat();
    if mode == Mode::Plaintext {
        prop_assert_eq!(&cid.as_slice()[1..=plaintext_len], plaintext.as_slice());
    }

    let mut decoder = Decoder::new();
    decoder.insert(config);
    let decoded = decoder.decode(cid.as_slice()).unwrap();
    prop_assert_eq!(decoded.config_rotation, case.config_rotation);
    prop_assert_eq!(decoded.server_id.as_slice(), case.server_id.as_slice());
    prop_assert_eq!(decoded.nonce.as_slice(), case.nonce.as_slice());
    prop_assert_eq!(decoded.mode, mode);

    let (config_rotation, server_id) = decoder.server_id(cid.as_slice()).unwrap();
    prop_assert_eq!(config_rotation, case.config_rotation);
    prop_assert_eq!(server_id.as_slice(), case.server_id.as_slice());
    Ok(())
}

fn run_every_pair(keyed: bool) {
    for (sid_len, nonce_len) in valid_pairs() {
        let mut runner = TestRunner::new(RunnerConfig {
            cases: 48,
            failure_persistence: None,
            ..RunnerConfig::default()
        });
        runner
            .run(&case_strategy(sid_len, nonce_len, keyed), |case| {
                check_round_trip(&case)
            })
            .unwrap_or_else(|err| panic!("server ID {sid_len}, nonce {nonce_len}: {err}"));
    }
}

#[test]
fn there_are_120_valid_length_pairs() {
    assert_eq!(valid_pairs().len(), 120);
}

#[test]
fn plaintext_round_trips_for_every_length_pair() {
    run_every_pair(false);
}

#[test]
fn encrypted_round_trips_for_every_length_pair() {
    run_every_pair(true);
}

/// Three passes suffice when the server ID fits in left_0 (at most half the plaintext,
/// rounded down); otherwise four. A full decode (with the nonce) always takes four.
#[test]
fn server_id_decode_stops_after_three_passes_where_allowed() {
    let key = Key::from_slice(&[7; 16]).unwrap();
    for (sid_len, nonce_len) in valid_pairs() {
        let plaintext_len = (sid_len + nonce_len) as usize;
        if plaintext_len == BLOCK_LEN {
            continue; // single-pass: one block decryption, no passes to count
        }
        let params = ConfigParams::new(0, sid_len, nonce_len);
        let encryptions = Rc::new(Cell::new(0));
        let cipher = Counting {
            inner: key.aes128(),
            encryptions: encryptions.clone(),
        };
        let config = Config::new(params, Some(cipher)).unwrap();
        let server_id = vec![0xab; sid_len as usize];
        let nonce = vec![1; nonce_len as usize];
        let cid = Encoder::new(config.clone())
            .encode(&server_id, &nonce, &mut StdRng::seed_from_u64(0))
            .unwrap();
        let mut decoder = Decoder::new();
        decoder.insert(config);

        encryptions.set(0);
        let (_, decoded) = decoder.server_id(cid.as_slice()).unwrap();
        assert_eq!(decoded.as_slice(), server_id.as_slice());
        let expected = if sid_len as usize <= plaintext_len / 2 {
            3
        } else {
            4
        };
        assert_eq!(
            encryptions.get(),
            expected,
            "server ID {sid_len}, nonce {nonce_len}"
        );

        encryptions.set(0);
        decoder.decode(cid.as_slice()).unwrap();
        assert_eq!(
            encryptions.get(),
            4,
            "full decode, server ID {sid_len}, nonce {nonce_len}"
        );
    }
}
