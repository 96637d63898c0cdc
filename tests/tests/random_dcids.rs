//! How often a client's random DCID names a server by chance, under the end-to-end fleet's
//! config (codepoint 0, four-pass, 2-octet server IDs and 6-octet nonces, three servers): why
//! a token that names a server goes before the DCID. quinn's clients choose 20 random
//! octets; aioquic's choose 8, a length that cannot hold this config's 9.

use integration_tests::fleet::{KEY0, SERVER_IDS_0, key, params, server_id};
use rand::{RngCore as _, SeedableRng as _, rngs::StdRng};
use router_common::quic_lb::{Config, Decoder};

const SAMPLES: u32 = 1 << 22;

/// Random DCIDs of `len` octets out of [`SAMPLES`] that name one of the fleet's servers.
fn named(len: usize) -> u32 {
    let mut decoder = Decoder::new();
    decoder.insert(Config::new(params(0), Some(key(KEY0).aes128())).unwrap());
    let servers: Vec<Vec<u8>> = SERVER_IDS_0.iter().map(|id| server_id(id)).collect();
    let mut rng = StdRng::seed_from_u64(0xdc1d + len as u64);
    let mut dcid = vec![0u8; len];
    (0..SAMPLES)
        .filter(|_| {
            rng.fill_bytes(&mut dcid);
            decoder
                .server_id(&dcid)
                .is_ok_and(|(_, id)| servers.iter().any(|s| s.as_slice() == id.as_slice()))
        })
        .count() as u32
}

#[test]
fn a_random_dcid_names_one_of_three_servers_about_once_in_175_000() {
    // One first octet in 8 selects codepoint 0; then the decoded server ID is uniform.
    let expected = f64::from(SAMPLES) / 8.0 * SERVER_IDS_0.len() as f64 / 65_536.0;
    for len in [9, 20] {
        let named = named(len);
        println!(
            "{named} of {SAMPLES} random {len}-octet DCIDs name a server (1 in {:.0}); expected {expected:.1} (1 in {:.0})",
            f64::from(SAMPLES) / f64::from(named.max(1)),
            f64::from(SAMPLES) / expected
        );
        // About 24: a Poisson count, outside these bounds only if decoding is wrong.
        assert!(
            (5..=60).contains(&named),
            "{named} hits, {expected:.1} expected"
        );
    }
    // Shorter than the config's CID length: never decoded, never a server.
    assert_eq!(named(8), 0);
}
