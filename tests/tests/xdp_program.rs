//! The XDP program loads into this kernel and passes what is not for a listener.

use integration_tests::{ConfigFile, Router, XDP_PASS, packet::Datagram};

#[test]
fn program_loads_and_passes_traffic_for_no_listener() {
    let config = ConfigFile::standard().load();
    let mut router = Router::new(&config);
    let packet = Datagram::new(
        "198.18.0.1".parse().unwrap(),
        "198.18.0.99".parse().unwrap(),
        12345,
        443,
        vec![0x40; 30],
    )
    .frame();
    let (action, out) = router.run(&packet);
    assert_eq!(action, XDP_PASS);
    assert_eq!(out, packet);
}
