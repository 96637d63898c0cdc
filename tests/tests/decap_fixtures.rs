//! The decapsulator in the kernel (BPF_PROG_TEST_RUN), fixtures as data: each gives a frame,
//! the action, the bytes that come out (the inner packet behind the outer frame's Ethernet
//! addresses, or the frame untouched) and the one counter it adds to.

use std::net::IpAddr;

use integration_tests::{
    XDP_DROP, XDP_PASS,
    addresses::{QUIC_PORT, vip},
    fixtures::mint,
    packet::{Datagram, short_header},
    run_repeated,
};
use router_common::decap::DecapOutcome;
use router_user::decap::{DecapSettings, Decapsulator, Prefix};

const HOST4: &str = "198.18.5.2";
const HOST6: &str = "2001:db8:5::2";
const ROUTER4: &str = "198.18.100.1";
const ROUTER6: &str = "2001:db8:100::1";
const FOREIGN4: &str = "198.18.200.1";
const FOREIGN6: &str = "2001:db8:200::1";
const GUE_PORT: u16 = 6080;
const IPIP: u8 = 4;
const IPV6: u8 = 41;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn settings(gue_port: Option<u16>) -> DecapSettings {
    DecapSettings {
        addresses: vec![ip(HOST4), ip(HOST6)],
        sources: ["198.18.100.0/28", "2001:db8:100::/64"]
            .iter()
            .map(|text| text.parse().unwrap())
            .collect(),
        gue_port,
    }
}

/// A client's QUIC datagram to the VIP, as the backend's stack should get it.
fn inner(v6: bool) -> Datagram {
    let client: IpAddr = if v6 {
        ip("2001:db8:1::2")
    } else {
        ip("198.18.1.2")
    };
    Datagram::new(
        client,
        vip(v6),
        40_000,
        QUIC_PORT,
        short_header(&mint(0, "0a01", 7)),
    )
}

/// The inner packet in IP-in-IP from `src` to `dst` (the protocol from the inner family).
fn ipip(src: &str, dst: &str, inner: &Datagram) -> Datagram {
    let mut outer = Datagram::new(ip(src), ip(dst), 0, 0, Vec::new());
    outer.protocol = if inner.dst.is_ipv6() { IPV6 } else { IPIP };
    outer
}

/// GUE version 0: the header (no options unless `options`), then the inner packet.
fn gue(src: &str, dst: &str, inner: &Datagram, options: &[u8]) -> Datagram {
    let protocol = if inner.dst.is_ipv6() { IPV6 } else { IPIP };
    let mut payload = vec![(options.len() / 4) as u8, protocol, 0, 0];
    payload.extend_from_slice(options);
    payload.extend_from_slice(&inner.ip_packet());
    Datagram::new(ip(src), ip(dst), 50_123, GUE_PORT, payload)
}

/// Adds `by` to the big-endian length field at `offset`.
fn grow(packet: &mut [u8], offset: usize, by: u16) {
    let len = u16::from_be_bytes([packet[offset], packet[offset + 1]]) + by;
    packet[offset..offset + 2].copy_from_slice(&len.to_be_bytes());
}

struct Fixture {
    what: &'static str,
    frame: Vec<u8>,
    action: u32,
    /// None: the frame comes out untouched.
    output: Option<Vec<u8>>,
    outcome: DecapOutcome,
}

fn decapsulated(
    what: &'static str,
    frame: Vec<u8>,
    inner: &Datagram,
    outcome: DecapOutcome,
) -> Fixture {
    Fixture {
        what,
        frame,
        action: XDP_PASS,
        output: Some(inner.frame()),
        outcome,
    }
}

fn untouched(what: &'static str, frame: Vec<u8>, action: u32, outcome: DecapOutcome) -> Fixture {
    Fixture {
        what,
        frame,
        action,
        output: None,
        outcome,
    }
}

fn fixtures() -> Vec<Fixture> {
    use DecapOutcome::*;
    let (v4, v6) = (inner(false), inner(true));
    let ipip_frame =
        |src, dst, inner: &Datagram| ipip(src, dst, inner).frame_around(&inner.ip_packet());
    let gue_frame = |src, dst, inner: &Datagram| gue(src, dst, inner, &[]).frame();
    let with_gue_header = |head: [u8; 4], inner: &Datagram| {
        let mut payload = head.to_vec();
        payload.extend_from_slice(&inner.ip_packet());
        Datagram::new(ip(ROUTER4), ip(HOST4), 50_123, GUE_PORT, payload).frame()
    };
    let mut tagged_v4 = v4.clone();
    tagged_v4.vlan = Some(7);
    let mut tagged_outer = ipip(ROUTER4, HOST4, &v4);
    tagged_outer.vlan = Some(7);
    let mut fragment = ipip(ROUTER4, HOST4, &v4);
    fragment.ipv4_fragment = 0x2000;
    let mut hop_by_hop = ipip(ROUTER6, HOST6, &v6);
    hop_by_hop.ipv6_extension = Some((0, vec![IPV6, 0, 1, 4, 0, 0, 0, 0]));
    // The inner packet 8 octets longer than what the outer carries.
    let mut long_inner = v4.ip_packet();
    grow(&mut long_inner, 2, 8);
    let nested_ipip = ipip(ROUTER4, HOST4, &v4).frame_around(&v4.ip_packet());
    let inner_gue = gue(ROUTER4, HOST4, &v4, &[]);
    vec![
        decapsulated(
            "IPv4 in IPv4",
            ipip_frame(ROUTER4, HOST4, &v4),
            &v4,
            DecapsulatedIpip,
        ),
        decapsulated(
            "IPv6 in IPv6",
            ipip_frame(ROUTER6, HOST6, &v6),
            &v6,
            DecapsulatedIpip,
        ),
        decapsulated(
            "IPv6 in IPv4",
            ipip_frame(ROUTER4, HOST4, &v6),
            &v6,
            DecapsulatedIpip,
        ),
        decapsulated(
            "GUE over IPv4, IPv4 inside",
            gue_frame(ROUTER4, HOST4, &v4),
            &v4,
            DecapsulatedGue,
        ),
        decapsulated(
            "GUE over IPv6, IPv6 inside",
            gue_frame(ROUTER6, HOST6, &v6),
            &v6,
            DecapsulatedGue,
        ),
        decapsulated(
            "GUE over IPv4, IPv6 inside",
            gue_frame(ROUTER4, HOST4, &v6),
            &v6,
            DecapsulatedGue,
        ),
        decapsulated(
            "GUE with two words of options (skipped)",
            gue(ROUTER4, HOST4, &v4, &[0xaa; 8]).frame(),
            &v4,
            DecapsulatedGue,
        ),
        decapsulated(
            "GUE version 1 (the IP header right after UDP)",
            Datagram::new(ip(ROUTER4), ip(HOST4), 50_123, GUE_PORT, v4.ip_packet()).frame(),
            &v4,
            DecapsulatedGue,
        ),
        decapsulated(
            "802.1Q-tagged: the tag stays",
            tagged_outer.frame_around(&v4.ip_packet()),
            &tagged_v4,
            DecapsulatedIpip,
        ),
        untouched(
            "IPv4 in IPv4 from outside the router prefixes",
            ipip_frame(FOREIGN4, HOST4, &v4),
            XDP_DROP,
            ForeignSource,
        ),
        untouched(
            "IPv6 in IPv6 from outside the router prefixes",
            ipip_frame(FOREIGN6, HOST6, &v6),
            XDP_DROP,
            ForeignSource,
        ),
        untouched(
            "GUE from outside the router prefixes",
            gue_frame(FOREIGN4, HOST4, &v4),
            XDP_DROP,
            ForeignSource,
        ),
        untouched(
            "IP-in-IP for another address",
            ipip_frame(ROUTER4, "198.18.5.3", &v4),
            XDP_PASS,
            NotTunnel,
        ),
        untouched(
            "GUE for another address",
            gue_frame(ROUTER6, "2001:db8:5::3", &v6),
            XDP_PASS,
            NotTunnel,
        ),
        untouched("QUIC to the host itself", v4.frame(), XDP_PASS, NotTunnel),
        untouched(
            "UDP to the host from a router, another port",
            Datagram::new(ip(ROUTER4), ip(HOST4), 50_123, GUE_PORT + 1, v4.ip_packet()).frame(),
            XDP_PASS,
            NotTunnel,
        ),
        untouched(
            "TCP to the host",
            {
                let mut tcp = Datagram::new(ip(ROUTER4), ip(HOST4), 0, 0, Vec::new());
                tcp.protocol = 6;
                tcp.frame_around(&[0; 20])
            },
            XDP_PASS,
            NotTunnel,
        ),
        untouched(
            "ARP",
            {
                let mut arp = v4.frame()[..12].to_vec();
                arp.extend_from_slice(&[0x08, 0x06]);
                arp.extend_from_slice(&[0; 28]);
                arp
            },
            XDP_PASS,
            NotTunnel,
        ),
        untouched(
            "IPv6 with a hop-by-hop header before IP-in-IP",
            hop_by_hop.frame_around(&v6.ip_packet()),
            XDP_PASS,
            NotTunnel,
        ),
        untouched(
            "an outer fragment",
            fragment.frame_around(&v4.ip_packet()),
            XDP_PASS,
            OuterFragment,
        ),
        untouched(
            "GUE control message",
            with_gue_header([0x20, IPIP, 0, 0], &v4),
            XDP_DROP,
            Malformed,
        ),
        untouched(
            "GUE carrying UDP",
            with_gue_header([0, 17, 0, 0], &v4),
            XDP_DROP,
            Malformed,
        ),
        untouched(
            "GUE version 2",
            with_gue_header([0x80, IPIP, 0, 0], &v4),
            XDP_DROP,
            Malformed,
        ),
        untouched(
            "GUE options past the packet",
            with_gue_header([0x1f, IPIP, 0, 0], &v4),
            XDP_DROP,
            Malformed,
        ),
        untouched(
            "GUE shorter than its header",
            Datagram::new(ip(ROUTER4), ip(HOST4), 50_123, GUE_PORT, vec![0, IPIP]).frame(),
            XDP_DROP,
            Malformed,
        ),
        untouched(
            "IP-in-IP saying IPv4, carrying IPv6",
            ipip(ROUTER4, HOST4, &v4).frame_around(&v6.ip_packet()),
            XDP_DROP,
            Malformed,
        ),
        untouched(
            "an inner packet longer than the outer",
            ipip(ROUTER4, HOST4, &v4).frame_around(&long_inner),
            XDP_DROP,
            Malformed,
        ),
        untouched(
            "an outer length past the frame",
            {
                let mut frame = ipip_frame(ROUTER4, HOST4, &v4);
                grow(&mut frame, 16, 40);
                frame
            },
            XDP_DROP,
            Malformed,
        ),
        untouched(
            "IP-in-IP inside IP-in-IP",
            ipip(ROUTER4, HOST4, &v4).frame_around(&nested_ipip[14..]),
            XDP_DROP,
            NestedTunnel,
        ),
        untouched(
            "GUE inside IP-in-IP",
            ipip(ROUTER4, HOST4, &v4).frame_around(&inner_gue.ip_packet()),
            XDP_DROP,
            NestedTunnel,
        ),
        untouched(
            "IP-in-IP inside GUE",
            {
                let mut payload = vec![0, IPIP, 0, 0];
                payload.extend_from_slice(&nested_ipip[14..]);
                Datagram::new(ip(ROUTER4), ip(HOST4), 50_123, GUE_PORT, payload).frame()
            },
            XDP_DROP,
            NestedTunnel,
        ),
    ]
}

#[test]
fn every_fixture_gives_its_action_bytes_and_counter() {
    let mut decapsulator = Decapsulator::load(&settings(Some(GUE_PORT))).unwrap();
    for fixture in fixtures() {
        let before = decapsulator.counters().unwrap();
        let (action, output, _) = run_repeated(decapsulator.program(), &fixture.frame, 1);
        assert_eq!(action, fixture.action, "{}", fixture.what);
        let expected = fixture.output.as_ref().unwrap_or(&fixture.frame);
        assert_eq!(&output, expected, "{}: output", fixture.what);
        let after = decapsulator.counters().unwrap();
        for ((outcome, was), (_, now)) in before.iter().zip(&after) {
            let added = u64::from(*outcome == fixture.outcome);
            assert_eq!(
                now - was,
                added,
                "{}: counter {}",
                fixture.what,
                outcome.name()
            );
        }
    }
}

#[test]
fn without_a_gue_port_gue_is_plain_udp() {
    let mut decapsulator = Decapsulator::load(&settings(None)).unwrap();
    let v4 = inner(false);
    let frame = gue(ROUTER4, HOST4, &v4, &[]).frame();
    let (action, output, _) = run_repeated(decapsulator.program(), &frame, 1);
    assert_eq!((action, &output), (XDP_PASS, &frame));
    // IP-in-IP still goes.
    let frame = ipip(ROUTER4, HOST4, &v4).frame_around(&v4.ip_packet());
    let (action, output, _) = run_repeated(decapsulator.program(), &frame, 1);
    assert_eq!((action, output), (XDP_PASS, v4.frame()));
}

#[test]
fn a_router_prefix_admits_its_addresses_only() {
    let mut decapsulator = Decapsulator::load(&settings(None)).unwrap();
    let v4 = inner(false);
    // 198.18.100.0/28: .15 is in, .16 is not.
    for (router, action) in [("198.18.100.15", XDP_PASS), ("198.18.100.16", XDP_DROP)] {
        let frame = ipip(router, HOST4, &v4).frame_around(&v4.ip_packet());
        assert_eq!(
            run_repeated(decapsulator.program(), &frame, 1).0,
            action,
            "{router}"
        );
    }
}

#[test]
fn settings_are_checked_before_anything_loads() {
    let no_address = DecapSettings {
        addresses: vec![],
        ..settings(None)
    };
    assert!(Decapsulator::load(&no_address).is_err());
    let no_source = DecapSettings {
        sources: vec![],
        ..settings(None)
    };
    assert!(Decapsulator::load(&no_source).is_err());
    for bad in [
        "198.18.100.1/24",
        "198.18.0.0/33",
        "2001:db8::/129",
        "example",
        "198.18.0.0/",
    ] {
        assert!(bad.parse::<Prefix>().is_err(), "{bad}");
    }
    assert_eq!(
        "198.18.100.0/28".parse::<Prefix>().unwrap().to_string(),
        "198.18.100.0/28"
    );
    assert_eq!("2001:db8::1".parse::<Prefix>().unwrap().len, 128);
}
