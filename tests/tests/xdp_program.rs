//! The XDP program loads into this kernel and runs under BPF_PROG_TEST_RUN.

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use integration_tests::load_router;

const XDP_PASS: u32 = 2;

/// Ethernet + IPv4 + UDP to port 443 with a short-header QUIC payload.
fn udp_packet() -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
    packet.extend_from_slice(&[
        0x45, 0, 0, 37, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 1, 1,
    ]);
    packet.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb, 0, 17, 0, 0]);
    packet.extend_from_slice(&[0x40, 0x07, 0xc4, 0x60, 0x5e, 0x45, 0x04, 0xcc, 0x4f]);
    packet
}

#[test]
fn placeholder_program_passes_packets_unchanged() {
    let (mut ebpf, name) = load_router();
    let program: &mut Xdp = ebpf.program_mut(name).unwrap().try_into().unwrap();
    let packet = udp_packet();
    let mut out = vec![0u8; packet.len() + 256];
    let result = program
        .test_run(TestRunOptions {
            data_in: Some(&packet),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(result.return_value, XDP_PASS);
    assert_eq!(&out[..result.data_size_out as usize], &packet[..]);
}
