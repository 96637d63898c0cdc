//! The fallback (Maglev over the 4-tuple hash) at scale, in the kernel: 30,000 new
//! connections from random 4-tuples split evenly over the active backends, and by weight.

use std::net::IpAddr;

use integration_tests::{
    BACKENDS, ConfigFile, Router, VIP4, XDP_REDIRECT,
    packet::{Datagram, QUIC_V1, long_header, v1},
};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

const PACKETS: u32 = 30_000;

/// Sends `PACKETS` Initials with client-chosen DCIDs from random IPv4 4-tuples; returns the
/// share of each backend, from the per-backend counters.
fn shares(router: &mut Router) -> Vec<(String, f64)> {
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
            443,
            long_header(v1::INITIAL, QUIC_V1, &dcid, &[1; 8], 64),
        )
        .frame();
        let (action, _) = router.run(&packet);
        assert_eq!(action, XDP_REDIRECT);
    }
    let after = router.counters();
    router
        .tables
        .backend_names
        .iter()
        .map(|(index, name)| {
            let delivered = after.backends.get(index).map_or(0, |c| c.packets)
                - before.backends.get(index).map_or(0, |c| c.packets);
            (name.clone(), delivered as f64 / f64::from(PACKETS))
        })
        .collect()
}

#[test]
fn new_connections_split_evenly_and_by_weight() {
    let all_active: Vec<_> = BACKENDS
        .iter()
        .map(|b| (b.0, b.1, b.2, b.3, "active"))
        .collect();
    let file = ConfigFile::with_backends(&all_active);
    let mut router = Router::new(&file.load());
    for (name, share) in shares(&mut router) {
        // One backend's count has a standard deviation of 0.27% of the packets here.
        assert!((share - 1.0 / 3.0).abs() < 0.01, "{name}: {share:.4}");
    }

    let text = std::fs::read_to_string(&file.path).unwrap();
    let weighted = text.replacen("name = \"beta\"\n", "name = \"beta\"\nweight = 2\n", 1);
    std::fs::write(&file.path, weighted).unwrap();
    let mut router = Router::new(&file.load());
    for (name, share) in shares(&mut router) {
        let expected = if name == "beta" { 0.5 } else { 0.25 };
        assert!(
            (share - expected).abs() < 0.01,
            "{name}: {share:.4}, expected {expected}"
        );
    }
}
