//! Delivery in GUE and IP-in-IP, in the kernel: the outer
//! headers field by field (addresses, the source varying with the flow's hash within the
//! configured prefix, DSCP/ECN, lengths, the IPv4 checksum, GUE's ports and header), the
//! inner packet untouched; and the decapsulator gives back what the router took in. A packet
//! too big for the egress MTU once wrapped is answered with ICMP from the VIP; a backend
//! without a configured next hop follows the kernel's routes and neighbours.

use std::net::IpAddr;

use integration_tests::{
    ConfigFile, TestRouter, XDP_DROP, XDP_PASS, XDP_REDIRECT,
    addresses::{ENCAP_SOURCE4, ENCAP_SOURCE6, GUE_PORT, QUIC_PORT, sender, vip},
    deliver_to,
    fixtures::mint,
    packet::{Datagram, checksum, short_header},
    run_repeated,
};
use router_common::{counters::Outcome, flow_hash::flow_hash};
use router_user::{
    config::{Delivery, Reach, RouterConfig},
    decap::{DecapSettings, Decapsulator},
};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn flow_addr(addr: IpAddr) -> [u8; 16] {
    router_common::flow_hash::flow_addr(addr).1
}

/// The standard config with alpha behind GUE at `alpha_tunnel` and beta behind IP-in-IP at
/// `beta_tunnel`.
fn router(alpha_tunnel: &str, beta_tunnel: &str) -> TestRouter {
    TestRouter::new(&tunnel_config(alpha_tunnel, beta_tunnel, false))
}

/// The standard config with alpha behind GUE and beta behind IP-in-IP, at the configured
/// next hops or (`routed`) at the kernel's.
fn tunnel_config(alpha_tunnel: &str, beta_tunnel: &str, routed: bool) -> RouterConfig {
    let mut config = ConfigFile::standard().load();
    let alpha = Delivery::Gue {
        tunnel: ip(alpha_tunnel),
    };
    deliver_to(&mut config, "alpha", alpha, routed);
    let beta = Delivery::Ipip {
        tunnel: ip(beta_tunnel),
    };
    deliver_to(&mut config, "beta", beta, routed);
    config
}

/// alpha (GUE) and beta (IP-in-IP) at these tunnels: (name, server ID, tunnel, GUE or not).
fn tunnelled<'a>(
    alpha_tunnel: &'a str,
    beta_tunnel: &'a str,
) -> [(&'static str, &'static str, &'a str, bool); 2] {
    [
        ("alpha", "0a01", alpha_tunnel, true),
        ("beta", "0a02", beta_tunnel, false),
    ]
}

/// A case's name in assertion messages.
fn describe(backend: &str, v6: bool, tunnel: &str) -> String {
    format!(
        "{backend}, IPv{} inside, tunnel {tunnel}",
        if v6 { 6 } else { 4 }
    )
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
                ENCAP_SOURCE4.parse().unwrap(),
                ENCAP_SOURCE6.parse().unwrap(),
            ],
            gue_port: Some(GUE_PORT),
        })
        .unwrap();
        for v6 in [false, true] {
            for (backend, server_id, tunnel, gue) in tunnelled(alpha_tunnel, beta_tunnel) {
                let what = describe(backend, v6, tunnel);
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

/// A 1-RTT packet for `server_id` from the client to the VIP whose IP packet is `ip_len`
/// octets long.
fn sized(v6: bool, server_id: &str, ip_len: usize) -> Datagram {
    let headers = if v6 { 48 } else { 28 };
    let mut payload = short_header(&mint(0, server_id, 9));
    payload.resize(ip_len - headers, 0x5a);
    let mut datagram = Datagram::new(sender(v6), vip(v6), 40_001, QUIC_PORT, payload);
    datagram.checksums = true;
    datagram
}

/// The octets of the client's packet an answer quotes.
const QUOTE_LEN: usize = 504;

/// Checks `out` as the answer to `inner` that the path inside the tunnel takes `mtu`:
/// Ethernet addresses swapped, from the VIP to the client, checksums, type, MTU, the quote.
fn check_too_big(what: &str, out: &[u8], inner: &Datagram, mtu: u32) {
    let frame = inner.frame();
    assert_eq!(out[..6], frame[6..12], "{what}: back to the sender's MAC");
    assert_eq!(out[6..12], frame[..6], "{what}: from the router's MAC");
    assert_eq!(out[12..14], frame[12..14], "{what}: EtherType");
    let quote = &inner.ip_packet()[..QUOTE_LEN];
    if inner.dst.is_ipv6() {
        let ip = &out[14..54];
        assert_eq!(ip[0] >> 4, 6, "{what}");
        assert_eq!(
            u16::from_be_bytes([ip[4], ip[5]]),
            512,
            "{what}: payload length"
        );
        assert_eq!(ip[6], 58, "{what}: ICMPv6");
        assert_eq!(ip[8..24], flow_addr(inner.dst), "{what}: from the VIP");
        assert_eq!(ip[24..40], flow_addr(inner.src), "{what}: to the client");
        let icmp = &out[54..];
        assert_eq!(icmp.len(), 512, "{what}: message length");
        assert_eq!(icmp[..2], [2, 0], "{what}: packet too big");
        assert_eq!(icmp[4..8], mtu.to_be_bytes(), "{what}: MTU");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[8..40]);
        pseudo.extend_from_slice(&512u32.to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(checksum(&[&pseudo, icmp]), 0, "{what}: ICMPv6 checksum");
        assert_eq!(icmp[8..], quote[..], "{what}: the quote");
    } else {
        let ip = &out[14..34];
        assert_eq!(ip[0], 0x45, "{what}");
        assert_eq!(
            u16::from_be_bytes([ip[2], ip[3]]),
            532,
            "{what}: total length"
        );
        assert_eq!(ip[9], 1, "{what}: ICMP");
        assert_eq!(checksum(&[ip]), 0, "{what}: header checksum");
        assert_eq!(
            ip[12..16],
            flow_addr(inner.dst)[..4],
            "{what}: from the VIP"
        );
        assert_eq!(
            ip[16..20],
            flow_addr(inner.src)[..4],
            "{what}: to the client"
        );
        let icmp = &out[34..];
        assert_eq!(icmp.len(), 512, "{what}: message length");
        assert_eq!(icmp[..2], [3, 4], "{what}: fragmentation needed");
        assert_eq!(
            u32::from(u16::from_be_bytes([icmp[6], icmp[7]])),
            mtu,
            "{what}: next-hop MTU"
        );
        assert_eq!(checksum(&[icmp]), 0, "{what}: ICMP checksum");
        assert_eq!(icmp[8..], quote[..], "{what}: the quote");
    }
}

/// The octets each method and outer family adds.
fn overhead(tunnel: &str, gue: bool) -> usize {
    let ip = if ip(tunnel).is_ipv6() { 40 } else { 20 };
    ip + if gue { 12 } else { 0 }
}

#[test]
fn a_packet_too_big_once_wrapped_is_answered_from_the_vip_with_the_mtu_left_in_the_tunnel() {
    for (alpha_tunnel, beta_tunnel) in [
        ("198.18.5.2", "2001:db8:5::3"),
        ("2001:db8:5::2", "198.18.5.3"),
    ] {
        let router = router(alpha_tunnel, beta_tunnel);
        let egress_mtu = 1400;
        for interface in ["be0", "be1"] {
            router
                .netns
                .ip(&["link", "set", interface, "mtu", &egress_mtu.to_string()]);
        }
        let (mut fits, mut too_big) = (0, 0);
        for v6 in [false, true] {
            for (backend, server_id, tunnel, gue) in tunnelled(alpha_tunnel, beta_tunnel) {
                let what = describe(backend, v6, tunnel);
                let largest = egress_mtu - overhead(tunnel, gue);
                let (action, out) = router.run(&sized(v6, server_id, largest).frame());
                assert_eq!(action, XDP_REDIRECT, "{what}: {largest} octets fit");
                assert_eq!(out.len(), 14 + egress_mtu, "{what}");
                fits += 1;
                let inner = sized(v6, server_id, largest + 1);
                let (action, out) = router.run(&inner.frame());
                assert_eq!(
                    action,
                    XDP_REDIRECT,
                    "{what}: {} octets are too big",
                    largest + 1
                );
                check_too_big(&what, &out, &inner, largest as u32);
                too_big += 1;
                // No answer to an address that is no host's: dropped, counted.
                let mut spoofed = inner.clone();
                spoofed.src = ip(if v6 { "ff02::1" } else { "224.0.0.1" });
                assert_eq!(
                    router.run(&spoofed.frame()).0,
                    XDP_DROP,
                    "{what}: multicast source"
                );
                too_big += 1;
            }
        }
        let counters = router.counters();
        assert_eq!(counters.outcome(Outcome::RoutedByServerId), fits);
        assert_eq!(counters.outcome(Outcome::TooBig), too_big);
        let delivered: u64 = counters.backends.values().map(|b| b.packets).sum();
        assert_eq!(delivered, fits, "too-big packets reach no backend");
    }
}

#[test]
fn an_icmp_error_too_big_once_wrapped_is_dropped_unanswered() {
    // Every host behind a tunnel, so that whichever backend the error hashes to wraps it.
    let mut config = tunnel_config("2001:db8:5::2", "2001:db8:5::3", false);
    for backend in &mut config.backends {
        if let Reach::Host { delivery, .. } = &mut backend.reach
            && *delivery == Delivery::L2
        {
            *delivery = Delivery::Gue {
                tunnel: ip("2001:db8:5::4"),
            };
        }
    }
    let router = TestRouter::new(&config);
    for interface in ["be0", "be1"] {
        router.netns.ip(&["link", "set", interface, "mtu", "1400"]);
    }
    // A packet too big from the path about a large datagram the VIP sent: 1400 octets,
    // 1452 wrapped.
    let sent = Datagram::new(vip(true), sender(true), QUIC_PORT, 40_001, vec![0; 1400]);
    let mut icmp = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
    icmp.extend_from_slice(&sent.ip_packet()[..1400 - 48]);
    let mut error = Datagram::new(ip("2001:db8:1::fe"), vip(true), 0, 0, Vec::new());
    error.protocol = 58;
    let (action, _) = router.run(&error.frame_around(&icmp));
    assert_eq!(action, XDP_DROP, "no ICMP error about an ICMP error");
    let counters = router.counters();
    assert_eq!(counters.outcome(Outcome::TooBig), 1);
    assert_eq!(counters.outcome(Outcome::IcmpToBackend), 0);
}

#[test]
fn routed_backends_follow_the_kernels_routes_and_neighbours() {
    let router = TestRouter::new(&tunnel_config("198.18.9.2", "2001:db8:9::3", true));
    let netns = &router.netns;
    for sysctl in [
        "net.ipv4.conf.all.forwarding=1",
        "net.ipv6.conf.all.forwarding=1",
    ] {
        netns.exec("sysctl", &["-qw", sysctl]);
    }
    netns.ip(&["addr", "add", "198.18.5.1/24", "dev", "be0"]);
    netns.ip(&["addr", "add", "2001:db8:5::1/64", "dev", "be0", "nodad"]);
    let be0_mac = mac_octets(&netns.mac("be0"));
    let routes = [
        ("198.18.9.0/24", "198.18.5.254"),
        ("2001:db8:9::/64", "2001:db8:5::fe"),
    ];
    let gateway_mac = [0x02, 0, 0, 0, 0x05, 0xfe];
    let cases = tunnelled("198.18.9.2", "2001:db8:9::3");
    let run_all = |expected: u32, what: &str| {
        for v6 in [false, true] {
            for (backend, server_id, tunnel, gue) in cases {
                let what = format!("{what}: {}", describe(backend, v6, tunnel));
                let inner = sized(v6, server_id, 1000);
                let (action, out) = router.run(&inner.frame());
                assert_eq!(action, expected, "{what}");
                check_outer(&what, &out, &inner, ip(tunnel), gue);
                if expected == XDP_REDIRECT {
                    assert_eq!(out[..6], gateway_mac, "{what}: to the gateway's MAC");
                    assert_eq!(out[6..12], be0_mac, "{what}: from the egress interface's");
                } else {
                    // To the stack as the frame came: for this host's MAC.
                    assert_eq!(out[..12], inner.frame()[..12], "{what}: the frame's MACs");
                }
            }
        }
    };
    // No route: wrapped, passed to the stack, counted.
    run_all(XDP_PASS, "no route");
    for (prefix, gateway) in routes {
        netns.ip(&["route", "add", prefix, "via", gateway]);
    }
    // A route whose gateway has no neighbour entry yet: the same.
    run_all(XDP_PASS, "no neighbour");
    assert_eq!(router.counters().outcome(Outcome::NextHopUnresolved), 8);
    let mac_text = gateway_mac.map(|o| format!("{o:02x}")).join(":");
    for (_, gateway) in routes {
        netns.ip(&[
            "neigh",
            "replace",
            gateway,
            "lladdr",
            &mac_text,
            "nud",
            "permanent",
            "dev",
            "be0",
        ]);
    }
    run_all(XDP_REDIRECT, "resolved");
    let counters = router.counters();
    assert_eq!(counters.outcome(Outcome::RoutedByServerId), 4);
    assert_eq!(counters.outcome(Outcome::NextHopUnresolved), 8);
    // A route's MTU is the path's: too big against it is answered with what is left.
    for (prefix, gateway) in routes {
        netns.ip(&[
            "route", "replace", prefix, "via", gateway, "mtu", "lock", "1300",
        ]);
    }
    for (backend, server_id, tunnel, gue) in cases {
        let largest = 1300 - overhead(tunnel, gue);
        let inner = sized(false, server_id, largest + 1);
        let (action, out) = router.run(&inner.frame());
        assert_eq!(action, XDP_REDIRECT, "{backend}: over the route's MTU");
        check_too_big(backend, &out, &inner, largest as u32);
        let (action, _) = router.run(&sized(false, server_id, largest).frame());
        assert_eq!(action, XDP_REDIRECT, "{backend}: within the route's MTU");
    }
    assert_eq!(router.counters().outcome(Outcome::TooBig), 2);
}

/// `aa:bb:cc:dd:ee:ff` as octets.
fn mac_octets(text: &str) -> [u8; 6] {
    router_user::config::parse_mac(text).expect("a MAC")
}
