//! The generation scheme: while user space swaps configs back and forth, every packet sees
//! either the old tables or the new ones, never a mix.

use std::{
    collections::BTreeSet,
    sync::atomic::{AtomicBool, Ordering},
    thread,
};

use integration_tests::{
    BACKENDS, ConfigFile, INTERFACES, Router, XDP_REDIRECT, mint,
    packet::{Datagram, short_header},
    run_once,
};
use router_user::{netif, tables::RoutingTables};

const SWAPS: usize = 200;

#[test]
fn packets_never_see_half_of_a_swap() {
    // A: server 0a01 is alpha's, alpha on be0, beta on be1.
    let config_a = ConfigFile::standard();
    // B: servers 0a01 (codepoint 0, plaintext) and 31441a (codepoint 2, four-pass: the CID
    // cache's path) are beta's, and alpha and beta trade interfaces and next hops. A packet
    // that read B's server IDs with A's backends (or the reverse), or a cached backend from
    // the other config, would leave with a pair of MACs that neither A nor B gives.
    let (alpha, beta) = (BACKENDS[0], BACKENDS[1]);
    let swapped = [
        (
            alpha.0,
            beta.1,
            "02:00:00:00:0a:99",
            ["0a09", "000000a9", "31441f", "a9a9a9a9a9a9a9a9"],
            "active",
        ),
        (
            beta.0,
            alpha.1,
            "02:00:00:00:0b:99",
            ["0a01", "000000b1", "31441a", "b1b1b1b1b1b1b1b1"],
            "active",
        ),
        BACKENDS[2],
    ];
    let config_b = ConfigFile::with_backends(&swapped);
    let mut router = Router::new(&config_a.load());
    let tables_a = router.tables.clone();
    let tables_b =
        RoutingTables::build(&config_b.load(), &mut router.indices, netif::lookup).unwrap();

    for cid in [mint(0, "0a01", 1), mint(2, "31441a", 2)] {
        router.dataplane.apply(tables_a.clone()).unwrap();
        let packet = Datagram::new(
            "198.18.1.7".parse().unwrap(),
            "198.18.0.10".parse().unwrap(),
            40_001,
            443,
            short_header(&cid),
        )
        .frame();
        let macs = |out: &[u8]| hex::encode(&out[..12]);
        let (action_a, out_a) = router.run(&packet);
        router.dataplane.apply(tables_b.clone()).unwrap();
        let (action_b, out_b) = router.run(&packet);
        assert_eq!((action_a, action_b), (XDP_REDIRECT, XDP_REDIRECT));
        // A sends it to alpha (next hop 0a:01) through be0; B to beta (next hop 0b:99),
        // which B puts on be0.
        let be0 = hex::encode(INTERFACES[0].1);
        let expected_a = format!("020000000a01{be0}");
        let expected_b = format!("020000000b99{be0}");
        assert_eq!(macs(&out_a), expected_a, "config A");
        assert_eq!(macs(&out_b), expected_b, "config B right after the swap");
        let allowed = BTreeSet::from([expected_a, expected_b]);

        let done = AtomicBool::new(false);
        let Router {
            ebpf, dataplane, ..
        } = &mut router;
        let seen = thread::scope(|scope| {
            let runner = scope.spawn(|| {
                let program = router_user::ebpf::xdp_program(ebpf).unwrap();
                let mut seen = BTreeSet::new();
                let mut runs = 0u64;
                while !done.load(Ordering::Relaxed) || runs == 0 {
                    let (action, out) = run_once(program, &packet);
                    seen.insert((action, macs(&out)));
                    runs += 1;
                }
                (seen, runs)
            });
            for i in 0..SWAPS {
                let tables = if i % 2 == 0 {
                    tables_a.clone()
                } else {
                    tables_b.clone()
                };
                dataplane.apply(tables).unwrap();
            }
            done.store(true, Ordering::Relaxed);
            runner.join().unwrap()
        });
        let (seen, runs) = seen;
        assert!(
            runs > SWAPS as u64,
            "only {runs} packets ran during {SWAPS} swaps"
        );
        for (action, macs) in &seen {
            assert_eq!(
                *action, XDP_REDIRECT,
                "a packet was not redirected during a swap"
            );
            assert!(
                allowed.contains(macs),
                "a packet saw half of a swap: {macs}"
            );
        }
    }
}
