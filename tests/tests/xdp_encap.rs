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
    router::LoadOptions,
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
    // The EtherType, and the 802.1Q tag before it if there was one.
    let l2 = if inner.vlan.is_some() { 18 } else { 14 };
    assert_eq!(out[12..l2], frame[12..l2], "{what}: tag and EtherType");
    let out = &out[l2 - 14..];
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

/// The router with every host behind GUE over IPv6 on 1400-octet interfaces, so that
/// whichever backend the fallback hash gives a packet wraps it.
fn every_host_tunnelled() -> TestRouter {
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
    router
}

/// The frame of an ICMP error from the path (IPv6 if `v6`) about a datagram of `sent_len`
/// octets that the VIP sent, quoting `quote_len` octets of it.
fn icmp_error_about(v6: bool, sent_len: usize, quote_len: usize) -> Vec<u8> {
    let sent = Datagram::new(vip(v6), sender(v6), QUIC_PORT, 40_001, vec![0; sent_len]);
    let (kind, protocol, path) = if v6 {
        ([2, 0], 58, "2001:db8:1::fe")
    } else {
        ([3, 4], 1, "198.18.1.254")
    };
    let mut icmp = vec![kind[0], kind[1], 0, 0, 0, 0, 0x05, 0x00];
    icmp.extend_from_slice(&sent.ip_packet()[..quote_len]);
    let error = Datagram {
        protocol,
        ..Datagram::new(ip(path), vip(v6), 0, 0, Vec::new())
    };
    error.frame_around(&icmp)
}

#[test]
fn an_icmp_error_too_big_once_wrapped_is_dropped_unanswered() {
    let router = every_host_tunnelled();
    for v6 in [false, true] {
        // 1400 octets, 1452 wrapped.
        let header = if v6 { 48 } else { 28 };
        let (action, _) = router.run(&icmp_error_about(v6, 1400, 1400 - header));
        assert_eq!(
            action, XDP_DROP,
            "no ICMP error about an ICMP error (IPv6: {v6})"
        );
    }
    let counters = router.counters();
    assert_eq!(counters.outcome(Outcome::TooBig), 2);
    assert_eq!(counters.outcome(Outcome::IcmpToBackend), 0);
}

#[test]
fn an_icmp_error_whose_length_the_frame_does_not_hold_is_not_wrapped() {
    let router = every_host_tunnelled();
    let mut frame = icmp_error_about(false, 100, 128);
    // The outer IPv4 header's total length.
    frame[16..18].copy_from_slice(&65_000u16.to_be_bytes());
    let (action, _) = router.run(&frame);
    assert_ne!(action, XDP_REDIRECT, "a length the frame does not hold");
    assert_eq!(router.counters().outcome(Outcome::IcmpToBackend), 0);
}

#[test]
fn routed_backends_follow_the_kernels_routes_and_neighbours() {
    let router = routed_router();
    let netns = &router.netns;
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
        let inner = sized(false, server_id, largest);
        let (action, out) = router.run(&inner.frame());
        assert_eq!(action, XDP_REDIRECT, "{backend}: within the route's MTU");
        check_outer(backend, &out, &inner, ip(tunnel), gue);
    }
    assert_eq!(router.counters().outcome(Outcome::TooBig), 2);
}

/// The router with alpha (GUE to 198.18.9.2) and beta (IP-in-IP to 2001:db8:9::3) at the
/// kernel's next hops, in a namespace that forwards and has `be0` on 198.18.5.0/24 and
/// 2001:db8:5::/64; no routes to the tunnels yet.
fn routed_router() -> TestRouter {
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
    router
}

#[test]
fn routed_backends_spread_flows_over_the_routes_ecmp_next_hops() {
    let router = routed_router();
    let netns = &router.netns;
    let gateways = [
        (
            "198.18.5.253",
            "2001:db8:5::fd",
            [0x02, 0, 0, 0, 0x05, 0xfd],
        ),
        (
            "198.18.5.254",
            "2001:db8:5::fe",
            [0x02, 0, 0, 0, 0x05, 0xfe],
        ),
    ];
    for (v4, v6, mac) in gateways {
        let mac = mac.map(|o| format!("{o:02x}")).join(":");
        for gateway in [v4, v6] {
            netns.ip(&[
                "neigh",
                "replace",
                gateway,
                "lladdr",
                &mac,
                "nud",
                "permanent",
                "dev",
                "be0",
            ]);
        }
    }
    // A fixed multipath hash seed (random otherwise): the same flows take the same paths in
    // every run.
    netns.exec("sysctl", &["-qw", "net.ipv4.fib_multipath_hash_seed=1"]);
    let (first, second) = (gateways[0], gateways[1]);
    netns.ip(&[
        "route",
        "add",
        "198.18.9.0/24",
        "nexthop",
        "via",
        first.0,
        "nexthop",
        "via",
        second.0,
    ]);
    netns.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:9::/64",
        "nexthop",
        "via",
        first.1,
        "nexthop",
        "via",
        second.1,
    ]);
    for (backend, server_id, tunnel, _) in tunnelled("198.18.9.2", "2001:db8:9::3") {
        let mut seen = Vec::new();
        for port in 40_000..40_064u16 {
            let mut inner = sized(false, server_id, 200);
            inner.src_port = port;
            let (action, out) = router.run(&inner.frame());
            assert_eq!(action, XDP_REDIRECT, "{backend} from port {port}");
            // A flow keeps its next hop.
            assert_eq!(
                router.run(&inner.frame()).1[..6],
                out[..6],
                "{backend}: {port}"
            );
            seen.push(out[..6].to_vec());
        }
        for (_, _, mac) in gateways {
            let flows = seen.iter().filter(|m| m[..] == mac).count();
            assert!(
                flows >= 8,
                "{backend} (tunnel {tunnel}): {flows} of 64 flows by {mac:02x?}"
            );
        }
    }
}

/// `aa:bb:cc:dd:ee:ff` as octets.
fn mac_octets(text: &str) -> [u8; 6] {
    router_user::config::parse_mac(text).expect("a MAC")
}

/// The standard router with alpha behind GUE over IPv4 and beta behind IP-in-IP over IPv6,
/// configured next hops on interfaces of 1400 octets.
fn small_mtu_router() -> TestRouter {
    let router = router("198.18.5.2", "2001:db8:5::3");
    for interface in ["be0", "be1"] {
        router.netns.ip(&["link", "set", interface, "mtu", "1400"]);
    }
    router
}

/// A packet for alpha one octet too big for GUE over IPv4 on a 1400-octet way out.
fn too_big_for_alpha(v6: bool) -> Datagram {
    sized(v6, "0a01", 1400 - 32 + 1)
}

#[test]
fn answers_go_to_hosts_only() {
    let router = small_mtu_router();
    let mut refused = 0;
    for source in [
        "0.1.2.3",
        "127.0.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::198.18.1.7",
        "::ffff:198.18.1.7",
        "ff02::1",
    ] {
        let mut packet = too_big_for_alpha(ip(source).is_ipv6());
        packet.src = ip(source);
        assert_eq!(router.run(&packet.frame()).0, XDP_DROP, "from {source}");
        refused += 1;
    }
    // A frame sent to a group MAC (broadcast here), or from one.
    for at in [0, 6] {
        let mut frame = too_big_for_alpha(false).frame();
        frame[at..at + 6].copy_from_slice(&[0xff; 6]);
        assert_eq!(router.run(&frame).0, XDP_DROP, "group MAC at {at}");
        refused += 1;
    }
    assert_eq!(router.counters().outcome(Outcome::TooBig), refused);
    // A host from the same subnets is answered.
    assert_eq!(
        router.run(&too_big_for_alpha(false).frame()).0,
        XDP_REDIRECT
    );
    assert_eq!(router.run(&too_big_for_alpha(true).frame()).0, XDP_REDIRECT);
}

#[test]
fn answers_keep_the_vlan_tag_and_take_ipv4_options_into_the_quote() {
    let router = small_mtu_router();
    for v6 in [false, true] {
        let mut tagged = too_big_for_alpha(v6);
        tagged.vlan = Some(7);
        let (action, out) = router.run(&tagged.frame());
        assert_eq!(action, XDP_REDIRECT, "tagged, IPv6: {v6}");
        check_too_big(&format!("tagged, IPv6: {v6}"), &out, &tagged, 1368);
    }
    let mut options = too_big_for_alpha(false);
    options.ipv4_options = vec![1, 1, 1, 1];
    let (action, out) = router.run(&options.frame());
    assert_eq!(action, XDP_REDIRECT, "IPv4 options");
    check_too_big("IPv4 options", &out, &options, 1368);
}

#[test]
fn answers_are_rate_limited_per_cpu() {
    let router = small_mtu_router();
    // One CPU's budget.
    integration_tests::pin_to_cpu(0, 0);
    let frame = too_big_for_alpha(false).frame();
    let started = std::time::Instant::now();
    let answered = (0..200)
        .filter(|_| router.run(&frame).0 == XDP_REDIRECT)
        .count() as u64;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    // A burst of 50, then one a millisecond.
    assert!(
        (50..=50 + elapsed_ms + 1).contains(&answered),
        "{answered} of 200 answered in {elapsed_ms} ms"
    );
    assert_eq!(router.counters().outcome(Outcome::TooBig), 200);
}

#[test]
fn what_a_tunnel_cannot_carry_is_not_wrapped() {
    let router = router("198.18.5.2", "2001:db8:5::3");
    // Octets after the IP packet (Ethernet padding) stay out of the tunnel.
    let inner = sized(false, "0a01", 200);
    let mut padded = inner.frame();
    padded.extend_from_slice(&[0xee; 20]);
    let (action, out) = router.run(&padded);
    assert_eq!(action, XDP_REDIRECT);
    check_outer("padded", &out, &inner, ip("198.18.5.2"), true);
    // A configured interface that is gone.
    router.netns.ip(&["link", "del", "be0"]);
    let (action, _) = router.run(&inner.frame());
    assert_eq!(action, XDP_DROP, "be0 gone");
    assert_eq!(router.counters().outcome(Outcome::RedirectFailed), 1);
}

#[test]
fn an_unresolved_next_hop_for_a_tagged_frame_is_dropped() {
    let router = routed_router();
    let mut tagged = sized(false, "0a01", 200);
    tagged.vlan = Some(7);
    let (action, _) = router.run(&tagged.frame());
    assert_eq!(action, XDP_DROP);
    assert_eq!(router.counters().outcome(Outcome::NextHopUnresolved), 1);
}

#[test]
fn explain_shows_the_tunnel_of_what_left_and_none_for_an_answer() {
    let config = tunnel_config("198.18.5.2", "2001:db8:5::3", false);
    let mut router = TestRouter::with_options(
        &config,
        LoadOptions {
            trace_verdicts: true,
            ..integration_tests::options_for(&config)
        },
    );
    router.netns.ip(&["link", "set", "be0", "mtu", "1400"]);
    let fits = sized(false, "0a01", 1000);
    let explanation = router.explain(&fits.frame()).unwrap();
    assert_eq!(explanation.delivery, Some("gue"));
    let outer = explanation.outer.expect("outer addresses");
    assert_eq!(outer.destination, ip("198.18.5.2"));
    let too_big = too_big_for_alpha(false);
    let explanation = router.explain(&too_big.frame()).unwrap();
    assert_eq!(explanation.reason, "too_big");
    assert_eq!((explanation.delivery, explanation.outer), (None, None));
}
