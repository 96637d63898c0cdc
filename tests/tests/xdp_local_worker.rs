//! In the kernel: a packet whose DCID names a local worker passes to the stack untouched
//! (the SO_REUSEPORT program takes it from there), counted as routed and as the worker's.

use integration_tests::{
    ConfigFile, TestRouter, XDP_PASS,
    addresses::{QUIC_PORT, SENDER4, VIP4},
    fixtures::{BACKENDS, LOCAL_WORKERS, mint},
    packet::{Datagram, short_header},
    standard_config_text, worker_text,
};
use router_common::counters::Outcome;

#[test]
fn a_local_workers_packet_passes_to_the_stack_and_is_counted() {
    let worker = LOCAL_WORKERS[0];
    let config_file = ConfigFile::with_text(|dir| {
        standard_config_text(dir, &BACKENDS).backend(&worker_text(&worker))
    });
    let router = TestRouter::new(&config_file.load());
    let datagram = |cid: Vec<u8>| {
        Datagram::new(
            SENDER4.parse().unwrap(),
            VIP4.parse().unwrap(),
            40_001,
            QUIC_PORT,
            short_header(&cid),
        )
        .frame()
    };
    let packet = datagram(mint(0, worker.server_ids[0], 7));
    let (action, out) = router.run(&packet);
    assert_eq!(action, XDP_PASS);
    assert_eq!(out, packet, "nothing is rewritten for the stack");
    let counters = router.counters();
    assert_eq!(counters.outcome(Outcome::RoutedByServerId), 1);
    assert_eq!(counters.backend(router.backend(worker.name)).packets, 1);

    // A packet for a host is still redirected.
    let host = datagram(mint(0, BACKENDS[0].server_ids[0], 8));
    assert_ne!(router.run(&host).0, XDP_PASS);
}
