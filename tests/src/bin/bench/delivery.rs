//! Per-packet cost of each delivery method, one packet per call as `production` measures:
//! the router with the backend on its segment (L2), behind GUE and behind IP-in-IP (outer
//! IPv4 and IPv6, next hop configured), and two floors beside them: parse and redirect,
//! and parse, encapsulate in GUE over IPv4 and redirect. Rows join `production`'s table.

use std::net::IpAddr;

use aya::{maps::DevMap, programs::Xdp};
use bench_ebpf::{FLOOR_SLOTS, map_names, program_names};
use integration_tests::{
    ConfigFile, TestRouter,
    addresses::{QUIC_PORT, sender, vip},
    deliver_to,
    fixtures::{INTERFACES, mint},
    load_bench_programs,
    packet::{Datagram, short_header},
    take_map, xdp_program,
};
use router_user::config::Delivery;

use crate::production::{Row, Settings, block, median};

/// A 1-RTT packet for alpha (plaintext CID) from the client.
fn packet(v6: bool) -> Vec<u8> {
    Datagram::new(
        sender(v6),
        vip(v6),
        40_001,
        QUIC_PORT,
        short_header(&mint(0, "0a01", 1)),
    )
    .frame()
}

/// The cost above XDP_PASS of `program` on one family's packet, rounds interleaved with
/// XDP_PASS blocks (whose figures go to `pass_ns`). A quarter of `production`'s calls per
/// block: one packet, warm, varies less than its scenarios of a million.
fn above_pass(
    program: &Xdp,
    pass: &Xdp,
    v6: bool,
    settings: &Settings,
    pass_ns: &mut Vec<f64>,
) -> f64 {
    let packets = [packet(v6)];
    let (mut next, mut pass_next) = (0, 0);
    let calls = settings.calls / 4;
    let mut above = Vec::new();
    for _ in 0..settings.rounds {
        let pass_block = block(pass, &packets, &mut pass_next, calls);
        let ns = block(program, &packets, &mut next, calls);
        pass_ns.push(pass_block);
        above.push(ns - pass_block);
    }
    median(above)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

pub fn run(settings: &Settings, pass: &Xdp, pass_ns: &mut Vec<f64>) -> Vec<Row> {
    let methods: [(&str, &str, Delivery); 5] = [
        (
            "delivery_l2",
            "delivery: L2 (the router, MAC rewrite)",
            Delivery::L2,
        ),
        (
            "delivery_gue4",
            "delivery: GUE over IPv4 (the router)",
            Delivery::Gue {
                tunnel: ip("198.18.5.2"),
            },
        ),
        (
            "delivery_gue6",
            "delivery: GUE over IPv6 (the router)",
            Delivery::Gue {
                tunnel: ip("2001:db8:5::2"),
            },
        ),
        (
            "delivery_ipip4",
            "delivery: IP-in-IP over IPv4 (the router)",
            Delivery::Ipip {
                tunnel: ip("198.18.5.2"),
            },
        ),
        (
            "delivery_ipip6",
            "delivery: IP-in-IP over IPv6 (the router)",
            Delivery::Ipip {
                tunnel: ip("2001:db8:5::2"),
            },
        ),
    ];
    let mut rows = Vec::new();
    let mut push = |id, scenario: &str, v6: bool, ns| {
        rows.push(Row {
            family: if v6 { "IPv6" } else { "IPv4" },
            id,
            scenario: scenario.to_owned(),
            ns_above_pass: ns,
        })
    };
    for (id, scenario, delivery) in methods {
        let mut config = ConfigFile::standard().load();
        deliver_to(&mut config, "alpha", delivery, false);
        // One router at a time: each enters a namespace of its own and leaves it on drop.
        let router = TestRouter::new(&config);
        for v6 in [false, true] {
            let ns = above_pass(router.program(), pass, v6, settings, pass_ns);
            push(id, scenario, v6, ns);
        }
        if delivery == Delivery::L2 {
            // The floors, redirecting to the router namespace's be0.
            let mut floors = load_bench_programs();
            let be0 = router_user::netif::lookup(INTERFACES[0].name)
                .unwrap_or_else(|err| panic!("{err}"));
            for name in [program_names::FLOOR_REDIRECT, program_names::FLOOR_ENCAP] {
                xdp_program(&mut floors, name)
                    .load()
                    .unwrap_or_else(|err| panic!("{name}: {err}"));
            }
            let mut ports: DevMap<_> = take_map(&mut floors, map_names::FLOOR_PORTS);
            for slot in 0..FLOOR_SLOTS {
                ports.set(slot, be0.ifindex, None, 0).expect("floor ports");
            }
            for (id, scenario, name) in [
                (
                    "delivery_floor_l2",
                    "delivery floor: parse Eth/IP/UDP + devmap redirect",
                    program_names::FLOOR_REDIRECT,
                ),
                (
                    "delivery_floor_gue4",
                    "delivery floor: parse + GUE over IPv4 + devmap redirect",
                    program_names::FLOOR_ENCAP,
                ),
            ] {
                for v6 in [false, true] {
                    let program = xdp_program(&mut floors, name);
                    let ns = above_pass(program, pass, v6, settings, pass_ns);
                    push(id, scenario, v6, ns);
                }
            }
        }
    }
    rows
}
