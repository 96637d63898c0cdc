//! The fallback (Maglev over the 4-tuple hash) at scale, in the kernel: 30,000 new
//! connections from random 4-tuples split evenly over the active backends, and by weight.

use std::net::IpAddr;

use integration_tests::{
    ConfigFile, TestRouter, XDP_REDIRECT,
    addresses::{QUIC_PORT, VIP4},
    backend_text,
    fixtures::{BACKENDS, BackendFixture},
    packet::{Datagram, QUIC_V1, initial, v1},
    standard_config_text,
};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

const PACKETS: u32 = 30_000;

/// Sends `PACKETS` Initials with client-chosen DCIDs from random IPv4 4-tuples; returns the
/// share of each backend, from the per-backend counters.
fn shares(router: &TestRouter) -> Vec<(String, f64)> {
    let mut rng = StdRng::seed_from_u64(0xfa11);
    let before = router.counters();
    for _ in 0..PACKETS {
        let client = IpAddr::from([198, 18, rng.random_range(1..=255), rng.random()]);
        let dcid: [u8; 8] = rng.random();
        let mut dcid = dcid.to_vec();
        dcid[0] |= 0xe0; // codepoint 0b111: never routable
        let packet = Datagram::new(
            client,
            VIP4.parse().unwrap(),
            rng.random_range(1024..=65535),
            QUIC_PORT,
            initial(v1::INITIAL, QUIC_V1, &dcid, &[1; 8], &[], 64),
        )
        .frame();
        let (action, _) = router.run(&packet);
        assert_eq!(action, XDP_REDIRECT);
    }
    let after = router.counters();
    router
        .backend_indices()
        .iter()
        .map(|(name, &index)| {
            let delivered = after.backend(index).packets - before.backend(index).packets;
            (name.clone(), delivered as f64 / f64::from(PACKETS))
        })
        .collect()
}

#[test]
fn new_connections_split_evenly_and_by_weight() {
    let all_active = BACKENDS.map(|b| BackendFixture {
        state: "active",
        ..b
    });
    let router = TestRouter::new(&ConfigFile::with_backends(&all_active).load());
    for (name, share) in shares(&router) {
        // One backend's count has a standard deviation of 0.27% of the packets here.
        assert!((share - 1.0 / 3.0).abs() < 0.01, "{name}: {share:.4}");
    }

    let weighted = ConfigFile::with_text(|dir| {
        all_active
            .iter()
            .fold(standard_config_text(dir, &[]), |text, b| {
                let mut backend = backend_text(b);
                if b.name == "beta" {
                    backend.weight = Some(2);
                }
                text.backend(&backend)
            })
    });
    let router = TestRouter::new(&weighted.load());
    for (name, share) in shares(&router) {
        let expected = if name == "beta" { 0.5 } else { 0.25 };
        assert!(
            (share - expected).abs() < 0.01,
            "{name}: {share:.4}, expected {expected}"
        );
    }
}
