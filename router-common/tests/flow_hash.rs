//! The fallback hash of a 4-tuple: every field counts, slots are evenly used however
//! regular the clients' addresses and ports are, and its values are fixed (every router of a
//! fleet must send a new connection to the same backend).

use std::net::IpAddr;

use router_common::{
    flow_hash::{FlowAddr, flow_addr, flow_hash},
    maps::FALLBACK_TABLE_SIZE,
};

fn addr(text: &str) -> FlowAddr {
    flow_addr(text.parse::<IpAddr>().unwrap()).1
}

fn hash(src: &str, dst: &str, src_port: u16, dst_port: u16) -> u32 {
    flow_hash(&addr(src), &addr(dst), src_port.to_be(), dst_port.to_be())
}

#[test]
fn values_are_fixed_across_versions() {
    // A changed hash moves new connections between backends while a fleet runs two
    // versions: change these only on purpose, and say so in the release notes.
    assert_eq!(hash("198.18.0.1", "198.19.0.10", 50_000, 443), 0xf443_27ad);
    assert_eq!(
        hash("2001:db8::1", "2001:db8:1::10", 50_000, 443),
        0x2ee8_1c02
    );
}

#[test]
fn every_field_changes_the_hash() {
    let base = hash("198.18.0.1", "198.19.0.10", 50_000, 443);
    assert_ne!(hash("198.18.0.2", "198.19.0.10", 50_000, 443), base);
    assert_ne!(hash("198.18.0.1", "198.19.0.11", 50_000, 443), base);
    assert_ne!(hash("198.18.0.1", "198.19.0.10", 50_001, 443), base);
    assert_ne!(hash("198.18.0.1", "198.19.0.10", 50_000, 444), base);
    // Direction counts: the reverse 4-tuple is another flow.
    assert_ne!(hash("198.19.0.10", "198.18.0.1", 443, 50_000), base);
    let base6 = hash("2001:db8::1", "2001:db8:1::10", 50_000, 443);
    // Each half of an IPv6 address.
    assert_ne!(hash("2001:db9::1", "2001:db8:1::10", 50_000, 443), base6);
    assert_ne!(hash("2001:db8::2", "2001:db8:1::10", 50_000, 443), base6);
    assert_ne!(hash("2001:db8::1", "2001:db8:2::10", 50_000, 443), base6);
    assert_ne!(hash("2001:db8::1", "2001:db8:1::11", 50_000, 443), base6);
}

/// The fullest and the emptiest of `groups` groups of fallback slots, over regular 4-tuples:
/// 64 client addresses in a row, each with 4,096 ports in a row, to one VIP.
fn spread(client: impl Fn(u32) -> String, vip: &str, groups: usize) -> (usize, usize) {
    let mut counts = vec![0usize; groups];
    for host in 0..64 {
        let src = client(host);
        for port in 0..4096u16 {
            let slot = hash(&src, vip, 20_000 + port, 443) % FALLBACK_TABLE_SIZE;
            counts[slot as usize * groups / FALLBACK_TABLE_SIZE as usize] += 1;
        }
    }
    let max = *counts.iter().max().unwrap();
    let min = *counts.iter().min().unwrap();
    (min, max)
}

#[test]
fn regular_clients_spread_evenly_over_the_table() {
    // 262,144 tuples into 256 groups: 1,024 each on average, a standard deviation of 32;
    // +-15 % is more than 4.5 of them, which a uniform hash passes and a biased one does not.
    for (family, client, vip) in [
        (
            "IPv4",
            &(|host| format!("198.18.1.{host}")) as &dyn Fn(u32) -> String,
            "198.19.0.10",
        ),
        (
            "IPv6",
            &(|host| format!("2001:db8:5::{host:x}")) as &dyn Fn(u32) -> String,
            "2001:db8:1::10",
        ),
    ] {
        let (min, max) = spread(client, vip, 256);
        assert!(
            min >= 870 && max <= 1178,
            "{family}: groups of slots hold {min}..{max} tuples, expected 1,024 +- 15 %"
        );
    }
}
