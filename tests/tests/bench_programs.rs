//! The benchmark's own XDP programs (bench-ebpf), in the kernel: the parse-and-redirect floor
//! (and its C yardstick) picks its slot by source port and writes that slot's MACs; the sink counts what it
//! receives and what was meant for another backend, and drops it. Wrong here, the
//! benchmark's figures would be.

use aya::{
    Ebpf,
    maps::{Array, DevMap, PerCpuArray},
};
use bench_ebpf::{
    BENCH_MARKER_OFFSET, FLOOR_SLOTS, SinkCounter, c_floor, map_names, program_names,
};
use integration_tests::{
    XDP_DROP, XDP_PASS, XDP_REDIRECT,
    addresses::{QUIC_PORT, SENDER4, VIP4},
    fixtures::INTERFACES,
    load_bench_programs, load_c_floor,
    netns::Netns,
    packet::{Datagram, checksum, short_header},
    run_once, take_map, xdp_program,
};

fn datagram(src_port: u16, marker: u8) -> Vec<u8> {
    let mut payload = short_header(&[0x10; 9]);
    payload.resize(BENCH_MARKER_OFFSET + 8, 0);
    payload[BENCH_MARKER_OFFSET] = marker;
    Datagram::new(
        SENDER4.parse().unwrap(),
        VIP4.parse().unwrap(),
        src_port,
        QUIC_PORT,
        payload,
    )
    .frame()
}

/// Runs `packet` through the bench program `name`, loading it first if need be.
fn run(ebpf: &mut Ebpf, name: &str, packet: &[u8]) -> (u32, Vec<u8>) {
    let program = xdp_program(ebpf, name);
    if program.fd().is_err() {
        program.load().unwrap_or_else(|err| panic!("{name}: {err}"));
    }
    run_once(program, packet)
}

/// A floor, `redirect` with its maps `ports` and `macs`, picks its slot by source port,
/// writes that slot's MACs and changes nothing else; it passes what is not UDP. Run in a
/// namespace of its own that has the interface the devmap points at.
fn check_floor(mut ebpf: Ebpf, redirect: &str, ports: &str, macs: &str) {
    let netns = Netns::create("floor");
    netns.veth(INTERFACES[0].name, INTERFACES[0].mac);
    let _inside = netns.enter();
    let be0 = router_user::netif::lookup(INTERFACES[0].name).unwrap();
    let mut ports: DevMap<_> = take_map(&mut ebpf, ports);
    let mut macs: Array<_, [u8; 12]> = take_map(&mut ebpf, macs);
    for slot in 0..FLOOR_SLOTS {
        ports.set(slot, be0.ifindex, None, 0).unwrap();
        macs.set(slot, [slot as u8 + 1; 12], 0).unwrap();
    }
    for src_port in [40_000u16, 40_001, 40_002, 40_003, 40_006] {
        let packet = datagram(src_port, 0);
        let (action, out) = run(&mut ebpf, redirect, &packet);
        assert_eq!(action, XDP_REDIRECT, "{redirect}: source port {src_port}");
        let slot = u32::from(src_port) % FLOOR_SLOTS;
        assert_eq!(
            out[..12],
            [slot as u8 + 1; 12],
            "{redirect}: source port {src_port}"
        );
        assert_eq!(out[12..], packet[12..], "{redirect}: only the MACs change");
    }
    let not_udp = {
        let mut datagram = Datagram::new(
            SENDER4.parse().unwrap(),
            VIP4.parse().unwrap(),
            1,
            2,
            vec![0; 20],
        );
        datagram.protocol = 6;
        datagram.frame()
    };
    assert_eq!(run(&mut ebpf, redirect, &not_udp).0, XDP_PASS, "{redirect}");
}

#[test]
fn floor_redirects_by_source_port_and_writes_the_slots_macs() {
    check_floor(
        load_bench_programs(),
        program_names::FLOOR_REDIRECT,
        map_names::FLOOR_PORTS,
        map_names::FLOOR_MACS,
    );
}

/// The encapsulating floor writes what the router's GUE over IPv4 writes, minus what
/// routing decides: the slot's MACs, an outer IPv4 header with its checksum, UDP to port 6080
/// from the inner source port, GUE version 0 with the inner protocol, the packet unchanged.
#[test]
fn the_encapsulating_floor_wraps_in_gue_over_ipv4() {
    let mut ebpf = load_bench_programs();
    let netns = Netns::create("floor");
    netns.veth(INTERFACES[0].name, INTERFACES[0].mac);
    let _inside = netns.enter();
    let be0 = router_user::netif::lookup(INTERFACES[0].name).unwrap();
    let mut ports: DevMap<_> = take_map(&mut ebpf, map_names::FLOOR_PORTS);
    let mut macs: Array<_, [u8; 12]> = take_map(&mut ebpf, map_names::FLOOR_MACS);
    for slot in 0..FLOOR_SLOTS {
        ports.set(slot, be0.ifindex, None, 0).unwrap();
        macs.set(slot, [slot as u8 + 1; 12], 0).unwrap();
    }
    let packet = datagram(40_001, 0);
    let (action, out) = run(&mut ebpf, program_names::FLOOR_ENCAP, &packet);
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(out[..12], [2; 12], "slot 1's MACs");
    assert_eq!(out[12..14], [0x08, 0x00]);
    let ip = &out[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        out.len() - 14
    );
    assert_eq!((ip[6], ip[9]), (0x40, 17), "don't fragment, UDP");
    assert_eq!(checksum(&[ip]), 0, "header checksum");
    let udp = &out[34..46];
    assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), 40_001);
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 6080);
    assert_eq!(
        usize::from(u16::from_be_bytes([udp[4], udp[5]])),
        out.len() - 34
    );
    assert_eq!(udp[8..], [0, 4, 0, 0], "GUE: IPv4 inside");
    assert_eq!(out[46..], packet[14..], "the inner packet");
}

/// The C yardstick does the same work, so that the benchmark compares like with like.
#[test]
fn the_c_floor_does_what_the_rust_floor_does() {
    check_floor(
        load_c_floor(),
        c_floor::REDIRECT,
        c_floor::PORTS,
        c_floor::MACS,
    );
    let mut ebpf = load_c_floor();
    assert_eq!(run(&mut ebpf, c_floor::PASS, &datagram(1, 0)).0, XDP_PASS);
}

#[test]
fn sink_counts_deliveries_and_misroutes_and_drops() {
    let mut ebpf = load_bench_programs();
    let mut backend: Array<_, u32> = take_map(&mut ebpf, map_names::SINK_BACKEND);
    backend.set(0, 2, 0).unwrap();
    let counts: PerCpuArray<_, u64> = take_map(&mut ebpf, map_names::SINK_COUNTS);
    for marker in [2, 2, 1, 2, 0] {
        assert_eq!(
            run(&mut ebpf, program_names::SINK, &datagram(40_000, marker)).0,
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
