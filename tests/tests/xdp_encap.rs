//! Delivery in GUE and IP-in-IP, in the kernel: the outer
//! headers field by field (addresses, the source varying with the flow's hash within the
//! configured prefix, DSCP/ECN, lengths, the IPv4 checksum, GUE's ports and header), the
//! inner packet untouched; and the decapsulator gives back what the router took in.

use std::net::IpAddr;

use integration_tests::{
    ConfigFile, TestRouter, XDP_PASS, XDP_REDIRECT,
    addresses::{QUIC_PORT, sender, vip},
    fixtures::mint,
    packet::{Datagram, checksum, short_header},
    run_repeated,
};
use router_common::flow_hash::flow_hash;
use router_user::{
    config::{Delivery, Encapsulation, Reach},
    decap::{DecapSettings, Decapsulator},
};

const GUE_PORT: u16 = 6080;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn flow_addr(addr: IpAddr) -> [u8; 16] {
    router_common::flow_hash::flow_addr(addr).1
}

/// The standard config with alpha behind GUE at `alpha_tunnel` and beta behind IP-in-IP at
/// `beta_tunnel`.
fn router(alpha_tunnel: &str, beta_tunnel: &str) -> TestRouter {
    let mut config = ConfigFile::standard().load();
    config.encapsulation = Encapsulation {
        source4: Some("198.18.100.0/28".parse().unwrap()),
        source6: Some("2001:db8:100::/64".parse().unwrap()),
        gue_port: Some(GUE_PORT),
    };
    for backend in &mut config.backends {
        let tunnel = match backend.name.as_str() {
            "alpha" => Delivery::Gue {
                tunnel: ip(alpha_tunnel),
            },
            "beta" => Delivery::Ipip {
                tunnel: ip(beta_tunnel),
            },
            _ => continue,
        };
        if let Reach::Host { delivery, .. } = &mut backend.reach {
            *delivery = tunnel;
        }
    }
    TestRouter::new(&config)
}

/// Checks `out`, the router's output for `inner`, as `gue` or IP-in-IP to `tunnel`; returns
/// the offset of the inner packet.
fn check_outer(what: &str, out: &[u8], inner: &Datagram, tunnel: IpAddr, gue: bool) -> usize {
    let hash = flow_hash(
        &flow_addr(inner.src),
        &flow_addr(inner.dst),
        inner.src_port.to_be(),
        inner.dst_port.to_be(),
    );
    let inner_packet = inner.ip_packet();
    let inner_v6 = inner.dst.is_ipv6();
    let (ip_len, outer_type) = if tunnel.is_ipv6() {
        (40, [0x86, 0xdd])
    } else {
        (20, [0x08, 0x00])
    };
    assert_eq!(out[12..14], outer_type, "{what}: EtherType");
    let ip_header = &out[14..14 + ip_len];
    let extra = if gue { 12 } else { 0 };
    let protocol = match (gue, inner_v6) {
        (true, _) => 17,
        (false, true) => 41,
        (false, false) => 4,
    };
    if tunnel.is_ipv6() {
        assert_eq!(ip_header[0] >> 4, 6, "{what}");
        assert_eq!(
            usize::from(u16::from_be_bytes([ip_header[4], ip_header[5]])),
            extra + inner_packet.len(),
            "{what}: payload length"
        );
        assert_eq!(ip_header[6], protocol, "{what}: next header");
        assert_eq!(ip_header[24..40], flow_addr(tunnel), "{what}: destination");
        // The source: the prefix's first 64 bits, the hash in the last 32 bits' host part.
        assert_eq!(
            ip_header[8..20],
            flow_addr(ip("2001:db8:100::"))[..12],
            "{what}: source prefix"
        );
        assert_eq!(
            ip_header[20..24],
            hash.to_be_bytes(),
            "{what}: source host from the hash"
        );
    } else {
        assert_eq!(ip_header[0], 0x45, "{what}");
        assert_eq!(
            usize::from(u16::from_be_bytes([ip_header[2], ip_header[3]])),
            20 + extra + inner_packet.len(),
            "{what}: total length"
        );
        assert_eq!(ip_header[6] & 0x40, 0x40, "{what}: don't fragment");
        assert_eq!(ip_header[9], protocol, "{what}: protocol");
        assert_eq!(checksum(&[ip_header]), 0, "{what}: header checksum");
        let host = (hash & 0x0f) as u8;
        assert_eq!(
            ip_header[12..16],
            [198, 18, 100, host],
            "{what}: source from the hash"
        );
        assert_eq!(
            ip_header[16..20],
            flow_addr(tunnel)[..4],
            "{what}: destination"
        );
    }
    let mut at = 14 + ip_len;
    if gue {
        let udp = &out[at..at + 12];
        let source_port = u16::from_be_bytes([udp[0], udp[1]]);
        assert_eq!(
            source_port,
            0xc000 | (hash as u16 & 0x3fff),
            "{what}: GUE source port"
        );
        assert_eq!(
            u16::from_be_bytes([udp[2], udp[3]]),
            GUE_PORT,
            "{what}: GUE port"
        );
        assert_eq!(
            usize::from(u16::from_be_bytes([udp[4], udp[5]])),
            12 + inner_packet.len(),
            "{what}: UDP length"
        );
        assert_eq!(
            udp[8..12],
            [0, if inner_v6 { 41 } else { 4 }, 0, 0],
            "{what}: GUE header"
        );
        at += 12;
    }
    assert_eq!(out[at..], inner_packet[..], "{what}: the inner packet");
    at
}

#[test]
fn gue_and_ipip_wrap_the_packet_untouched_and_the_decapsulator_unwraps_it() {
    for (alpha_tunnel, beta_tunnel) in [
        ("198.18.5.2", "2001:db8:5::3"),
        ("2001:db8:5::2", "198.18.5.3"),
    ] {
        let router = router(alpha_tunnel, beta_tunnel);
        let mut decapsulator = Decapsulator::load(&DecapSettings {
            addresses: vec![ip(alpha_tunnel), ip(beta_tunnel)],
            sources: vec![
                "198.18.100.0/28".parse().unwrap(),
                "2001:db8:100::/64".parse().unwrap(),
            ],
            gue_port: Some(GUE_PORT),
        })
        .unwrap();
        for v6 in [false, true] {
            for (backend, server_id, tunnel, gue) in [
                ("alpha", "0a01", alpha_tunnel, true),
                ("beta", "0a02", beta_tunnel, false),
            ] {
                let what = format!(
                    "{backend}, IPv{} inside, tunnel {tunnel}",
                    if v6 { 6 } else { 4 }
                );
                let mut inner = Datagram::new(
                    sender(v6),
                    vip(v6),
                    40_001,
                    QUIC_PORT,
                    short_header(&mint(0, server_id, 9)),
                );
                inner.checksums = true;
                let (action, out) = router.run(&inner.frame());
                assert_eq!(action, XDP_REDIRECT, "{what}");
                check_outer(&what, &out, &inner, ip(tunnel), gue);
                let (action, unwrapped, _) = run_repeated(decapsulator.program(), &out, 1);
                assert_eq!(action, XDP_PASS, "{what}: decapsulated");
                assert_eq!(
                    unwrapped[14..],
                    inner.ip_packet()[..],
                    "{what}: what the router took in"
                );
            }
        }
    }
}
