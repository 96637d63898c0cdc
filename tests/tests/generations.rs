//! The generation scheme: while user space swaps configs back and forth, every packet sees
//! either the old tables or the new ones, never a mix.

use std::{
    collections::BTreeSet,
    sync::atomic::{AtomicBool, Ordering},
    thread,
};

use aya::programs::Xdp;
use aya_obj::programs::XdpAttachType;
use integration_tests::{
    ConfigFile, TestRouter, XDP_REDIRECT,
    addresses::{QUIC_PORT, SENDER4, VIP4},
    fixtures::{BACKENDS, BackendFixture, INTERFACES, interface, mint},
    load_router,
    mounts::PrivateMounts,
    netns::Netns,
    options_for,
    packet::{Datagram, short_header},
    run_once,
};
use router_common::counters::Outcome;
use router_user::router::LoadOptions;

const SWAPS: usize = 200;

#[test]
fn packets_never_see_half_of_a_swap() {
    // A: server 0a01 is alpha's, alpha on be0, beta on be1.
    let config_a = ConfigFile::standard().load();
    // B: servers 0a01 (codepoint 0, plaintext) and 31441a (codepoint 2, four-pass: the CID
    // cache's path) are beta's, and alpha and beta trade interfaces and next hops. A packet
    // that read B's server IDs with A's backends (or the reverse), or a cached backend from
    // the other config, would leave with a pair of MACs that neither A nor B gives.
    let [alpha, beta, gamma] = BACKENDS;
    let swapped = [
        BackendFixture {
            interface: beta.interface,
            next_hop_mac: "02:00:00:00:0a:99",
            server_ids: ["0a09", "000000a9", "31441f", "a9a9a9a9a9a9a9a9"],
            ..alpha
        },
        BackendFixture {
            interface: alpha.interface,
            next_hop_mac: "02:00:00:00:0b:99",
            server_ids: ["0a01", "000000b1", "31441a", "b1b1b1b1b1b1b1b1"],
            ..beta
        },
        gamma,
    ];
    let config_b = ConfigFile::with_backends(&swapped).load();
    let mut router = TestRouter::new(&config_a);
    // A second handle on the same program, for a thread that runs packets while this one
    // installs: through a pin in a bpffs of the test's own.
    let _mounts = PrivateMounts::enter();
    let pin = "/sys/fs/bpf/quic_router";
    router.program_mut().pin(pin).expect("pin the program");
    let program = Xdp::from_pin(pin, XdpAttachType::Interface).expect("the pinned program");

    for cid in [mint(0, "0a01", 1), mint(2, "31441a", 2)] {
        router.install(&config_a);
        let packet = Datagram::new(
            SENDER4.parse().unwrap(),
            VIP4.parse().unwrap(),
            40_001,
            QUIC_PORT,
            short_header(&cid),
        )
        .frame();
        let macs = |out: &[u8]| hex::encode(&out[..12]);
        let (action_a, out_a) = router.run(&packet);
        router.install(&config_b);
        let (action_b, out_b) = router.run(&packet);
        assert_eq!((action_a, action_b), (XDP_REDIRECT, XDP_REDIRECT));
        // A sends it to alpha (next hop 0a:01) through be0; B to beta (next hop 0b:99),
        // which B puts on be0.
        let be0 = hex::encode(interface(alpha.interface).mac);
        let expected_a = format!("020000000a01{be0}");
        let expected_b = format!("020000000b99{be0}");
        assert_eq!(macs(&out_a), expected_a, "config A");
        assert_eq!(macs(&out_b), expected_b, "config B right after the swap");
        let allowed = BTreeSet::from([expected_a, expected_b]);

        let done = AtomicBool::new(false);
        let seen = thread::scope(|scope| {
            let runner = scope.spawn(|| {
                let mut seen = BTreeSet::new();
                let mut runs = 0u64;
                while !done.load(Ordering::Relaxed) || runs == 0 {
                    let (action, out) = run_once(&program, &packet);
                    seen.insert((action, macs(&out)));
                    runs += 1;
                }
                (seen, runs)
            });
            for i in 0..SWAPS {
                router.install(if i % 2 == 0 { &config_a } else { &config_b });
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

/// Two writers on one router's pinned maps (a lock keeps controllers from this; the data
/// plane must not trust its memory all the same): one that last wrote long ago installs a
/// config, and the maps then hold that config, not what the other wrote since.
#[test]
fn a_writer_takes_the_active_generation_from_the_kernel_not_from_memory() {
    let [alpha, beta, gamma] = BACKENDS;
    let config_a = ConfigFile::standard().load();
    // A': beta's plaintext server ID is another; B: alpha and beta trade next hops.
    let config_a2 = ConfigFile::with_backends(&[
        alpha,
        BackendFixture {
            server_ids: ["0a0b", "000000b1", "31441b", "b1b1b1b1b1b1b1b1"],
            ..beta
        },
        gamma,
    ])
    .load();
    let config_b = ConfigFile::with_backends(&[
        BackendFixture {
            next_hop_mac: beta.next_hop_mac,
            ..alpha
        },
        BackendFixture {
            next_hop_mac: alpha.next_hop_mac,
            ..beta
        },
        gamma,
    ])
    .load();

    let netns = Netns::create("router");
    for interface in INTERFACES {
        netns.veth(interface.name, interface.mac);
    }
    let _inside = netns.enter();
    let _mounts = PrivateMounts::enter();
    let pin_dir = std::path::Path::new("/sys/fs/bpf/two-writers");
    std::fs::create_dir(pin_dir).unwrap();
    let options = LoadOptions {
        pin_dir: Some(pin_dir),
        ..options_for(&config_a)
    };
    let mut old = load_router(&config_a, &options);
    let mut new = load_router(&config_b, &options);
    new.install(&config_a2).unwrap();
    assert_eq!(new.epoch(), 3);

    // A packet whose DCID names 0a02: beta's in A, nobody's in A'.
    let packet = Datagram::new(
        SENDER4.parse().unwrap(),
        VIP4.parse().unwrap(),
        40_001,
        QUIC_PORT,
        short_header(&mint(0, beta.server_ids[0], 7)),
    )
    .frame();
    assert_eq!(old.counters().unwrap().outcome(Outcome::UnknownServerId), 0);
    old.run(&packet).unwrap();
    assert_eq!(
        old.counters().unwrap().outcome(Outcome::UnknownServerId),
        1,
        "A' is active"
    );

    // The old writer installs A again: it must not take A for installed from its memory.
    let epoch = old.install(&config_a).unwrap();
    assert_eq!(
        epoch, 4,
        "the old writer flipped on from the kernel's epoch"
    );
    let (action, out) = old.run(&packet).unwrap();
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        hex::encode(&out[..6]),
        beta.next_hop_mac.replace(':', ""),
        "A routes 0a02 to beta"
    );
    assert_eq!(old.counters().unwrap().outcome(Outcome::UnknownServerId), 1);
}
