//! The XDP program loads into this kernel and passes what is not for a listener.

use integration_tests::{
    ConfigFile, TestRouter, XDP_PASS,
    addresses::{NOT_A_VIP4, QUIC_PORT, SENDER4},
    packet::Datagram,
};

#[test]
fn program_loads_and_passes_traffic_for_no_listener() {
    let config = ConfigFile::standard().load();
    let router = TestRouter::new(&config);
    let packet = Datagram::new(
        SENDER4.parse().unwrap(),
        NOT_A_VIP4.parse().unwrap(),
        12345,
        QUIC_PORT,
        vec![0x40; 30],
    )
    .frame();
    let (action, out) = router.run(&packet);
    assert_eq!(action, XDP_PASS);
    assert_eq!(out, packet);
}
