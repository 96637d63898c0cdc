//! In the kernel: a packet whose DCID names a local worker passes to the stack untouched
//! (the SO_REUSEPORT program takes it from there), counted as routed and as the worker's.

use integration_tests::{
    ConfigFile, LOCAL_WORKERS, Router, VIP4, XDP_PASS, mint,
    packet::{Datagram, short_header},
};
use router_common::maps::Outcome;

#[test]
fn a_local_workers_packet_passes_to_the_stack_and_is_counted() {
    let config_file = ConfigFile::standard();
    let (name, server_ids) = LOCAL_WORKERS[0];
    config_file.add_local_worker(name, server_ids);
    let mut router = Router::new(&config_file.load());
    let packet = Datagram::new(
        "198.18.1.7".parse().unwrap(),
        VIP4.parse().unwrap(),
        40_001,
        443,
        short_header(&mint(0, server_ids[0], 7)),
    )
    .frame();
    let (action, out) = router.run(&packet);
    assert_eq!(action, XDP_PASS);
    assert_eq!(out, packet, "nothing is rewritten for the stack");
    let counters = router.counters();
    assert_eq!(counters.outcome(Outcome::RoutedByServerId), 1);
    let worker = router.backend(name);
    assert_eq!(counters.backends[&worker].packets, 1);

    // A packet for a host is still redirected.
    let host = Datagram::new(
        "198.18.1.7".parse().unwrap(),
        VIP4.parse().unwrap(),
        40_001,
        443,
        short_header(&mint(0, "0a01", 8)),
    )
    .frame();
    assert_ne!(router.run(&host).0, XDP_PASS);
}
