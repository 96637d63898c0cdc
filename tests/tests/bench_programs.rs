//! The benchmark's own XDP programs, in the kernel: the parse-and-redirect floor picks its
//! slot by source port and writes that slot's MACs; the sink counts what it receives and what
//! was meant for another backend, and drops it. Wrong here, the benchmark's figures would be.

use aya::maps::{Array, DevMap, PerCpuArray};
use integration_tests::{
    ConfigFile, Router, XDP_DROP, XDP_PASS, XDP_REDIRECT,
    packet::{Datagram, short_header},
    run_once, take_map, xdp_program,
};
use router_common::maps::{BENCH_MARKER_OFFSET, FLOOR_SLOTS, SinkCounter};

fn datagram(src_port: u16, marker: u8) -> Vec<u8> {
    let mut payload = short_header(&[0x10; 9]);
    payload.resize(BENCH_MARKER_OFFSET + 8, 0);
    payload[BENCH_MARKER_OFFSET] = marker;
    Datagram::new(
        "198.18.1.7".parse().unwrap(),
        "198.18.0.10".parse().unwrap(),
        src_port,
        443,
        payload,
    )
    .frame()
}

/// Runs `packet` through the bench program `name`, loading it first if need be.
fn run(router: &mut Router, name: &str, packet: &[u8]) -> (u32, Vec<u8>) {
    let program = xdp_program(&mut router.ebpf, name);
    if program.fd().is_err() {
        program.load().unwrap_or_else(|err| panic!("{name}: {err}"));
    }
    run_once(program, packet)
}

#[test]
fn floor_redirects_by_source_port_and_writes_the_slots_macs() {
    let mut router = Router::new(&ConfigFile::standard().load());
    let be0 = router_user::netif::lookup("be0").unwrap();
    let mut ports: DevMap<_> = take_map(&mut router.ebpf, "FLOOR_PORTS");
    let mut macs: Array<_, [u8; 12]> = take_map(&mut router.ebpf, "FLOOR_MACS");
    for slot in 0..FLOOR_SLOTS {
        ports.set(slot, be0.ifindex, None, 0).unwrap();
        macs.set(slot, [slot as u8 + 1; 12], 0).unwrap();
    }
    for src_port in [40_000u16, 40_001, 40_002, 40_003, 40_006] {
        let packet = datagram(src_port, 0);
        let (action, out) = run(&mut router, "floor_redirect", &packet);
        assert_eq!(action, XDP_REDIRECT, "source port {src_port}");
        let slot = u32::from(src_port) % FLOOR_SLOTS;
        assert_eq!(out[..12], [slot as u8 + 1; 12], "source port {src_port}");
        assert_eq!(out[12..], packet[12..], "only the MACs change");
    }
    let not_udp = {
        let mut datagram = Datagram::new(
            "198.18.1.7".parse().unwrap(),
            "198.18.0.10".parse().unwrap(),
            1,
            2,
            vec![0; 20],
        );
        datagram.protocol = 6;
        datagram.frame()
    };
    assert_eq!(run(&mut router, "floor_redirect", &not_udp).0, XDP_PASS);
}

#[test]
fn sink_counts_deliveries_and_misroutes_and_drops() {
    let mut router = Router::new(&ConfigFile::standard().load());
    let mut backend: Array<_, u32> = take_map(&mut router.ebpf, "SINK_BACKEND");
    backend.set(0, 2, 0).unwrap();
    let counts: PerCpuArray<_, u64> = take_map(&mut router.ebpf, "SINK_COUNTS");
    for marker in [2, 2, 1, 2, 0] {
        assert_eq!(
            run(&mut router, "bench_sink", &datagram(40_000, marker)).0,
            XDP_DROP
        );
    }
    let read = |counter: SinkCounter| -> u64 {
        counts
            .get(&(counter as u32), 0)
            .unwrap()
            .iter()
            .sum::<u64>()
    };
    assert_eq!(read(SinkCounter::Delivered), 5);
    assert_eq!(read(SinkCounter::Misrouted), 2);
}
