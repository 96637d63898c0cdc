//! Table-driven fixtures through BPF_PROG_TEST_RUN, Katran-style: for each packet, the action,
//! the bytes that leave and every counter. CIDs are minted with router-common's encoder on
//! RustCrypto AES, so the kernel's decoding is checked against an independent cipher.

use std::net::IpAddr;

use aya::maps::{Array, HashMap, Map, MapData};
use integration_tests::{
    ConfigFile, TestRouter, XDP_DROP, XDP_PASS, XDP_REDIRECT,
    addresses::{NOT_A_VIP4, NOT_A_VIP6, QUIC_PORT, SENDER4, sender, vip},
    backend_text,
    fixtures::{self, BACKENDS, BackendFixture, interface, mint},
    packet::{
        Datagram, QUIC_V1, QUIC_V2, dns_query, initial, long_header, short_header, v1, v2, varint,
    },
    pin_to_cpu, standard_listeners, standard_quic_lb,
};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use router_common::quic_lb::{Config, ConfigParams, Encoder, Key};
use router_common::{
    counters::Outcome,
    flow_hash::{flow_addr, flow_hash},
    maps::{
        CidCacheSet, CidCacheWay, FALLBACK_TABLE_SIZE, Limits, MapSpec, TokenFlow, TokenFlowKey,
        cid_cache_slot, specs,
    },
};
use router_user::{
    config::{CidConfig, parse_mac},
    router::cpu_slots,
};

/// What a fixture expects.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Passed to the stack untouched.
    Pass(Outcome),
    /// Dropped.
    Drop(Outcome),
    /// Redirected to the named backend because its DCID names it.
    Routed(&'static str),
    /// Redirected to the named backend because its token names it.
    RoutedByToken(&'static str),
    /// Redirected to whatever backend the fallback table gives the 4-tuple.
    Hashed(Outcome),
}

struct Fixture {
    name: String,
    datagram: Datagram,
    /// The frame, when it is not the datagram's own (not UDP, truncated...).
    frame: Option<Vec<u8>>,
    expect: Expect,
}

fn udp(v6: bool, payload: Vec<u8>) -> Datagram {
    Datagram::new(sender(v6), vip(v6), 40_001, QUIC_PORT, payload)
}

fn fixture(name: impl Into<String>, datagram: Datagram, expect: Expect) -> Fixture {
    Fixture {
        name: name.into(),
        datagram,
        frame: None,
        expect,
    }
}

/// A routable token: a block minted as a CID of `server_id` under `config_rotation`, then
/// `opaque_len` octets of the server's own.
fn token(config_rotation: u8, server_id: &str, seed: u64, opaque_len: usize) -> Vec<u8> {
    let mut token = mint(config_rotation, server_id, seed);
    token.extend(std::iter::repeat_n(0x5a, opaque_len));
    token
}

/// A QUIC v1 Initial of 1,200 octets past its token.
fn v1_initial(dcid: &[u8], token: &[u8]) -> Vec<u8> {
    initial(v1::INITIAL, QUIC_V1, dcid, &SCID, token, 1200)
}

/// An Initial whose Token Length field is `length` (any encoding) followed by `rest` octets.
fn initial_with_token_length(dcid: &[u8], length: &[u8], rest: usize) -> Vec<u8> {
    let mut packet = long_header(v1::INITIAL, QUIC_V1, dcid, &SCID, 0);
    packet.extend_from_slice(length);
    packet.extend(std::iter::repeat_n(0xcd, rest));
    packet
}

/// Another client-chosen DCID, one per fixture whose Initial is routed by its token: such an
/// Initial starts a token flow that later packets with the same address, port and DCID follow.
fn client_dcid(seed: u8) -> [u8; 8] {
    [0xe0, seed, 0x11, 0x42, 0x07, 0x5c, 0xd0, seed]
}

/// A client-chosen DCID: random octets with codepoint 0b111 (never routable).
const CLIENT_DCID: [u8; 8] = [0xe3, 0x9a, 0x11, 0x42, 0x07, 0x5c, 0xd0, 0x8e];
const SCID: [u8; 8] = [0x11; 8];

fn fixtures() -> Vec<Fixture> {
    let mut all = Vec::new();
    for v6 in [false, true] {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let f = |name: &str| format!("{family}: {name}");
        // Short headers, every mode.
        all.push(fixture(
            f("short header, plaintext"),
            udp(v6, short_header(&mint(0, "0a01", 1))),
            Expect::Routed("alpha"),
        ));
        all.push(fixture(
            f("short header, single-pass"),
            udp(v6, short_header(&mint(1, "000000b1", 2))),
            Expect::Routed("beta"),
        ));
        all.push(fixture(
            f("short header, four-pass in 3 passes"),
            udp(v6, short_header(&mint(2, "31441a", 3))),
            Expect::Routed("alpha"),
        ));
        all.push(fixture(
            f("short header, four-pass in 4 passes, server-use octets"),
            udp(v6, short_header(&mint(3, "b1b1b1b1b1b1b1b1", 4))),
            Expect::Routed("beta"),
        ));
        all.push(fixture(
            f("short header naming a draining backend"),
            udp(v6, short_header(&mint(2, "31441c", 5))),
            Expect::Routed("gamma"),
        ));
        all.push(fixture(
            f("short header, unknown server ID"),
            udp(v6, short_header(&mint(1, "0000ffff", 6))),
            Expect::Hashed(Outcome::UnknownServerId),
        ));
        all.push(fixture(
            f("short header, codepoint 0b111"),
            udp(v6, short_header(&[0xe7, 1, 2, 3, 4, 5, 6, 7])),
            Expect::Hashed(Outcome::UnroutableCodepoint),
        ));
        all.push(fixture(
            f("short header, inactive codepoint 5"),
            udp(v6, short_header(&[0xa7, 1, 2, 3, 4, 5, 6, 7])),
            Expect::Hashed(Outcome::UnroutableCodepoint),
        ));
        let mut too_short = vec![0x41];
        too_short.extend_from_slice(&mint(1, "000000a1", 7)[..10]);
        all.push(fixture(
            f("short header shorter than its config's CID"),
            udp(v6, too_short),
            Expect::Hashed(Outcome::UnroutableLength),
        ));

        // QUIC v1 long headers.
        all.push(fixture(
            f("v1 Initial, client-chosen DCID"),
            udp(v6, v1_initial(&CLIENT_DCID, &[])),
            Expect::Hashed(Outcome::InitialHashed),
        ));
        all.push(fixture(
            f("v1 Initial resuming with a server-issued DCID"),
            udp(v6, v1_initial(&mint(2, "31441b", 8), &[])),
            Expect::Routed("beta"),
        ));
        // Initials with tokens: a token that names a server comes first.
        let beta_token = token(1, "000000b1", 50, 40);
        all.push(fixture(
            f("v1 Initial, token naming beta, client-chosen DCID"),
            udp(v6, v1_initial(&client_dcid(1), &beta_token)),
            Expect::RoutedByToken("beta"),
        ));
        all.push(fixture(
            f("v1 Initial, token naming beta (four-pass), DCID naming alpha"),
            udp(
                v6,
                v1_initial(&mint(0, "0a01", 51), &token(2, "31441b", 52, 30)),
            ),
            Expect::RoutedByToken("beta"),
        ));
        all.push(fixture(
            f("v1 Initial, plaintext token of exactly the CID length"),
            udp(v6, v1_initial(&client_dcid(2), &token(0, "0a01", 53, 0))),
            Expect::RoutedByToken("alpha"),
        ));
        all.push(fixture(
            f("v2 Initial, token naming alpha (server-use octets)"),
            udp(
                v6,
                initial(
                    v2::INITIAL,
                    QUIC_V2,
                    &client_dcid(3),
                    &SCID,
                    &token(3, "a1a1a1a1a1a1a1a1", 54, 60),
                    1200,
                ),
            ),
            Expect::RoutedByToken("alpha"),
        ));
        all.push(fixture(
            f("v1 Initial, 2-octet token length (a 100-octet token)"),
            udp(
                v6,
                v1_initial(&client_dcid(4), &token(1, "000000b1", 55, 83)),
            ),
            Expect::RoutedByToken("beta"),
        ));
        let mut eight_octet_length = initial_with_token_length(
            &client_dcid(5),
            &(0xc000_0000_0000_0000u64 | beta_token.len() as u64).to_be_bytes(),
            0,
        );
        eight_octet_length.extend_from_slice(&beta_token);
        eight_octet_length.extend(std::iter::repeat_n(0xcd, 1200));
        all.push(fixture(
            f("v1 Initial, token length in 8 octets (not the shortest form)"),
            udp(v6, eight_octet_length),
            Expect::RoutedByToken("beta"),
        ));
        all.push(fixture(
            f("v1 Initial, empty token, DCID naming alpha"),
            udp(v6, v1_initial(&mint(2, "31441a", 56), &[])),
            Expect::Routed("alpha"),
        ));
        let short_token = &beta_token[..mint(1, "000000b1", 50).len() - 1];
        all.push(fixture(
            f("v1 Initial, token shorter than its config's CID length, DCID naming alpha"),
            udp(v6, v1_initial(&mint(2, "31441a", 57), short_token)),
            Expect::Routed("alpha"),
        ));
        all.push(fixture(
            f("v1 Initial, token shorter than its config's CID length, client-chosen DCID"),
            udp(v6, v1_initial(&CLIENT_DCID, short_token)),
            Expect::Hashed(Outcome::InitialHashed),
        ));
        all.push(fixture(
            f("v1 Initial, token with an unknown server ID"),
            udp(v6, v1_initial(&CLIENT_DCID, &token(1, "0000ffff", 58, 20))),
            Expect::Hashed(Outcome::InitialHashed),
        ));
        all.push(fixture(
            f("v1 Initial, token with an unknown server ID, DCID naming alpha"),
            udp(
                v6,
                v1_initial(&mint(2, "31441a", 61), &token(1, "0000ffff", 62, 20)),
            ),
            Expect::Routed("alpha"),
        ));
        // A draining backend takes no new connection: its token is as if absent.
        all.push(fixture(
            f("v1 Initial, token naming draining gamma, client-chosen DCID"),
            udp(v6, v1_initial(&CLIENT_DCID, &token(2, "31441c", 63, 20))),
            Expect::Hashed(Outcome::InitialHashed),
        ));
        all.push(fixture(
            f("v1 Initial, token naming draining gamma, DCID naming alpha"),
            udp(
                v6,
                v1_initial(&mint(2, "31441a", 64), &token(2, "31441c", 65, 20)),
            ),
            Expect::Routed("alpha"),
        ));
        let mut inactive = token(1, "000000b1", 59, 20);
        inactive[0] = 0xa0 | (inactive[0] & 0x1f);
        all.push(fixture(
            f("v1 Initial, token under inactive codepoint 5"),
            udp(v6, v1_initial(&CLIENT_DCID, &inactive)),
            Expect::Hashed(Outcome::InitialHashed),
        ));
        all.push(fixture(
            f("v1 Initial, token with codepoint 0b111"),
            udp(v6, v1_initial(&CLIENT_DCID, &[0xe3; 30])),
            Expect::Hashed(Outcome::InitialHashed),
        ));
        all.push(fixture(
            f("v1 Initial, token length past the packet end"),
            udp(
                v6,
                initial_with_token_length(&CLIENT_DCID, &varint(1300), 1200),
            ),
            Expect::Drop(Outcome::MalformedQuic),
        ));
        all.push(fixture(
            f("v1 Initial, token length field cut by the packet end"),
            udp(
                v6,
                initial_with_token_length(&CLIENT_DCID, &[0x80, 0x00], 0),
            ),
            Expect::Drop(Outcome::MalformedQuic),
        ));
        all.push(fixture(
            f("v1 Initial ending before its token length"),
            udp(
                v6,
                long_header(v1::INITIAL, QUIC_V1, &CLIENT_DCID, &SCID, 0),
            ),
            Expect::Drop(Outcome::MalformedQuic),
        ));
        let mut zero_rtt = initial_with_token_length(&mint(1, "000000b1", 60), &varint(1300), 100);
        zero_rtt[0] = v1::ZERO_RTT;
        all.push(fixture(
            f("v1 0-RTT: no token field, the octets after the SCID are its length"),
            udp(v6, zero_rtt),
            Expect::Routed("beta"),
        ));
        all.push(fixture(
            f("v1 Initial, DCID with an unknown server ID"),
            udp(v6, v1_initial(&mint(0, "7777", 9), &[])),
            Expect::Hashed(Outcome::InitialHashed),
        ));
        all.push(fixture(
            f("v1 0-RTT, server-issued DCID"),
            udp(
                v6,
                long_header(v1::ZERO_RTT, QUIC_V1, &mint(1, "000000a1", 10), &SCID, 200),
            ),
            Expect::Routed("alpha"),
        ));
        all.push(fixture(
            f("v1 0-RTT, client-chosen DCID"),
            udp(
                v6,
                long_header(v1::ZERO_RTT, QUIC_V1, &CLIENT_DCID, &SCID, 200),
            ),
            Expect::Hashed(Outcome::InitialHashed),
        ));
        all.push(fixture(
            f("v1 Handshake"),
            udp(
                v6,
                long_header(
                    v1::HANDSHAKE,
                    QUIC_V1,
                    &mint(3, "a1a1a1a1a1a1a1a1", 11),
                    &SCID,
                    100,
                ),
            ),
            Expect::Routed("alpha"),
        ));
        all.push(fixture(
            f("v1 Handshake, unknown server ID"),
            udp(
                v6,
                long_header(v1::HANDSHAKE, QUIC_V1, &mint(2, "000001", 12), &SCID, 100),
            ),
            Expect::Hashed(Outcome::UnknownServerId),
        ));
        all.push(fixture(
            f("v1 Retry"),
            udp(v6, long_header(v1::RETRY, QUIC_V1, &CLIENT_DCID, &SCID, 40)),
            Expect::Hashed(Outcome::UnroutableCodepoint),
        ));
        all.push(fixture(
            f("v1 Handshake, DCID too short for its config"),
            udp(
                v6,
                long_header(
                    v1::HANDSHAKE,
                    QUIC_V1,
                    &mint(1, "000000a1", 13)[..12],
                    &SCID,
                    100,
                ),
            ),
            Expect::Hashed(Outcome::UnroutableLength),
        ));

        // QUIC v2 (RFC 9369): other packet type codes.
        all.push(fixture(
            f("v2 Initial resuming"),
            udp(
                v6,
                initial(v2::INITIAL, QUIC_V2, &mint(0, "0a02", 14), &SCID, &[], 1200),
            ),
            Expect::Routed("beta"),
        ));
        all.push(fixture(
            f("v2 Initial, client-chosen DCID"),
            udp(
                v6,
                initial(v2::INITIAL, QUIC_V2, &CLIENT_DCID, &SCID, &[], 1200),
            ),
            Expect::Hashed(Outcome::InitialHashed),
        ));
        all.push(fixture(
            f("v2 0-RTT, client-chosen DCID"),
            udp(
                v6,
                long_header(v2::ZERO_RTT, QUIC_V2, &CLIENT_DCID, &SCID, 200),
            ),
            Expect::Hashed(Outcome::InitialHashed),
        ));
        all.push(fixture(
            f("v2 Handshake"),
            udp(
                v6,
                long_header(v2::HANDSHAKE, QUIC_V2, &mint(1, "000000b1", 15), &SCID, 100),
            ),
            Expect::Routed("beta"),
        ));
        all.push(fixture(
            f("v2 Retry is not an Initial"),
            udp(v6, long_header(v2::RETRY, QUIC_V2, &CLIENT_DCID, &SCID, 40)),
            Expect::Hashed(Outcome::UnroutableCodepoint),
        ));

        // Version invariance (draft-21 §8): unknown versions are routed by DCID, never dropped.
        all.push(fixture(
            f("Version Negotiation with a server-issued DCID"),
            udp(v6, long_header(0x80, 0, &mint(2, "31441a", 16), &SCID, 8)),
            Expect::Routed("alpha"),
        ));
        all.push(fixture(
            f("unknown version, fixed bit clear, server-issued DCID"),
            udp(
                v6,
                long_header(0x80, 0x1a2a_3a4a, &mint(0, "0a01", 17), &SCID, 50),
            ),
            Expect::Routed("alpha"),
        ));
        all.push(fixture(
            f("unknown version, 32-octet DCID"),
            udp(v6, long_header(0xc0, 0x1a2a_3a4a, &[0x07; 32], &SCID, 50)),
            Expect::Hashed(Outcome::UnroutableLength),
        ));

        // RFC 9287 lets a peer grease the fixed bit, in a resumed connection's Initial too.
        all.push(fixture(
            f("v1 Initial with a greased (clear) fixed bit"),
            udp(
                v6,
                initial(0x80, QUIC_V1, &mint(0, "0a01", 18), &SCID, &[], 1200),
            ),
            Expect::Routed("alpha"),
        ));

        // Malformed QUIC to a listener: dropped.
        all.push(fixture(
            f("v1 long header with a 21-octet DCID"),
            udp(v6, v1_initial(&[0x07; 21], &[])),
            Expect::Drop(Outcome::MalformedQuic),
        ));
        all.push(fixture(
            f("long header cut inside the version"),
            udp(v6, vec![0xc0, 0, 0]),
            Expect::Drop(Outcome::MalformedQuic),
        ));
        all.push(fixture(
            f("long header whose SCID runs past the datagram"),
            udp(
                v6,
                long_header(v1::HANDSHAKE, QUIC_V1, &mint(0, "0a01", 19), &[0x22; 20], 0)[..30]
                    .to_vec(),
            ),
            Expect::Drop(Outcome::MalformedQuic),
        ));
        all.push(fixture(
            f("empty UDP payload"),
            udp(v6, Vec::new()),
            Expect::Drop(Outcome::MalformedQuic),
        ));
        let mut lying = udp(v6, short_header(&mint(0, "0a01", 20)));
        lying.udp_len = Some(500);
        all.push(fixture(
            f("UDP length beyond the IP payload"),
            lying,
            Expect::Drop(Outcome::MalformedQuic),
        ));
        // Not QUIC, but to a listener: taken as a short header, whose DCID names no server.
        all.push(fixture(
            f("DNS query to the listener"),
            udp(v6, dns_query()),
            Expect::Hashed(Outcome::UnknownServerId),
        ));

        // Not for a listener: passed untouched.
        let mut other_port = udp(v6, short_header(&mint(0, "0a01", 21)));
        other_port.dst_port = 8443;
        all.push(fixture(
            f("UDP to another port"),
            other_port,
            Expect::Pass(Outcome::NotListener),
        ));
        let mut other_address = udp(v6, short_header(&mint(0, "0a01", 22)));
        other_address.dst = if v6 {
            NOT_A_VIP6.parse().unwrap()
        } else {
            NOT_A_VIP4.parse().unwrap()
        };
        all.push(fixture(
            f("UDP to another address"),
            other_address,
            Expect::Pass(Outcome::NotListener),
        ));
        let mut tcp = udp(v6, vec![0; 20]);
        tcp.protocol = 6;
        all.push(fixture(
            f("TCP to the VIP"),
            tcp,
            Expect::Pass(Outcome::NotListener),
        ));

        // VLAN.
        let mut tagged = udp(v6, short_header(&mint(3, "a1a1a1a1a1a1a1a1", 23)));
        tagged.vlan = Some(100);
        all.push(fixture(
            f("802.1Q-tagged short header"),
            tagged,
            Expect::Routed("alpha"),
        ));
        let mut tagged_initial = udp(v6, v1_initial(&CLIENT_DCID, &[]));
        tagged_initial.vlan = Some(4000);
        all.push(fixture(
            f("802.1Q-tagged Initial"),
            tagged_initial,
            Expect::Hashed(Outcome::InitialHashed),
        ));
    }

    // IPv4 only: options and fragments.
    let mut options = udp(false, short_header(&mint(1, "000000a1", 24)));
    options.ipv4_options = vec![0x94, 0x04, 0x00, 0x00]; // router alert
    all.push(fixture(
        "IPv4 with options",
        options,
        Expect::Routed("alpha"),
    ));
    let mut first_fragment = udp(false, v1_initial(&CLIENT_DCID, &[]));
    first_fragment.ipv4_fragment = 0x2000;
    all.push(fixture(
        "IPv4 first fragment",
        first_fragment,
        Expect::Pass(Outcome::Fragment),
    ));
    let mut later_fragment = udp(false, vec![0xcd; 100]);
    later_fragment.ipv4_fragment = 0x00b9;
    all.push(fixture(
        "IPv4 later fragment",
        later_fragment,
        Expect::Pass(Outcome::Fragment),
    ));

    // IPv6 only: extension headers.
    let mut hop_by_hop = udp(true, short_header(&mint(0, "0a01", 25)));
    hop_by_hop.ipv6_extension = Some((0, vec![17, 0, 1, 4, 0, 0, 0, 0]));
    all.push(fixture(
        "IPv6 hop-by-hop options before UDP",
        hop_by_hop,
        Expect::Pass(Outcome::Ipv6Extension),
    ));
    let mut fragment = udp(true, short_header(&mint(0, "0a01", 26)));
    fragment.ipv6_extension = Some((44, vec![17, 0, 0, 1, 0, 0, 0, 9]));
    all.push(fixture(
        "IPv6 fragment header",
        fragment,
        Expect::Pass(Outcome::Fragment),
    ));

    // ICMP errors about datagrams the VIPs sent: to the backend the client's 4-tuple hashes
    // to; other ICMP to the stack.
    for v6 in [false, true] {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let client = udp(v6, Vec::new());
        let sent = Datagram::new(
            vip(v6),
            sender(v6),
            QUIC_PORT,
            40_001,
            short_header(&mint(0, "0a01", 28)),
        );
        let too_big = if v6 { [2, 0] } else { [3, 4] };
        let unreachable = if v6 { [1, 4] } else { [3, 3] };
        for (name, kind, quote_len) in [
            ("too big", too_big, 1200),
            ("port unreachable", unreachable, 1200),
            (
                "too big, quoting the headers only",
                too_big,
                if v6 { 48 } else { 28 },
            ),
        ] {
            all.push(Fixture {
                name: format!("{family}: ICMP {name} about a datagram from the VIP"),
                datagram: client.clone(),
                frame: Some(icmp_error(v6, kind, &sent, quote_len)),
                expect: Expect::Hashed(Outcome::IcmpToBackend),
            });
        }
        let mut other_port = sent.clone();
        other_port.src_port = QUIC_PORT + 1;
        let mut tcp = sent.clone();
        tcp.protocol = 6;
        let echo = if v6 { [128, 0] } else { [8, 0] };
        for (name, frame) in [
            (
                "too big about another port",
                icmp_error(v6, too_big, &other_port, 1200),
            ),
            ("too big about TCP", icmp_error(v6, too_big, &tcp, 1200)),
            (
                "too big quoting too little for the ports",
                icmp_error(v6, too_big, &sent, if v6 { 42 } else { 22 }),
            ),
            ("echo request to the VIP", icmp_error(v6, echo, &sent, 64)),
        ] {
            all.push(Fixture {
                name: format!("{family}: ICMP {name}"),
                datagram: client.clone(),
                frame: Some(frame),
                expect: Expect::Pass(Outcome::NotListener),
            });
        }
    }

    // Frames that are not IP, or not as the parser expects.
    let base = udp(false, short_header(&mint(0, "0a01", 27)));
    let mut arp = base.frame()[..42].to_vec();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    all.push(Fixture {
        name: "ARP".into(),
        datagram: base.clone(),
        frame: Some(arp),
        expect: Expect::Pass(Outcome::NotListener),
    });
    let mut qinq = base.frame();
    qinq.splice(12..12, [0x88, 0xa8, 0x00, 0x64]);
    all.push(Fixture {
        name: "802.1ad (QinQ) outer tag".into(),
        datagram: base.clone(),
        frame: Some(qinq),
        expect: Expect::Pass(Outcome::NotListener),
    });
    let mut padded = base.frame();
    padded.extend_from_slice(&[0; 30]);
    all.push(Fixture {
        name: "Ethernet padding after the IP packet".into(),
        datagram: base.clone(),
        frame: Some(padded),
        expect: Expect::Routed("alpha"),
    });
    all
}

/// An ICMP message of `kind` (type, code) to the VIP from a router on the path, quoting the
/// first `quote_len` octets of `quoted` (a datagram as the VIP sent it).
fn icmp_error(v6: bool, kind: [u8; 2], quoted: &Datagram, quote_len: usize) -> Vec<u8> {
    let on_path: IpAddr = if v6 { "2001:db8:1::fe" } else { "198.18.1.254" }
        .parse()
        .unwrap();
    let mut outer = Datagram::new(on_path, vip(v6), 0, 0, Vec::new());
    outer.protocol = if v6 { 58 } else { 1 };
    // Checksum left zero (the router does not look); a next-hop MTU of 1280.
    let mut icmp = vec![kind[0], kind[1], 0, 0, 0, 0, 0x05, 0x00];
    let packet = quoted.ip_packet();
    icmp.extend_from_slice(&packet[..quote_len.min(packet.len())]);
    outer.frame_around(&icmp)
}

/// The backend the fallback table gives `datagram`'s 4-tuple.
fn hashed_backend(router: &TestRouter, datagram: &Datagram) -> String {
    let addr = |ip: IpAddr| flow_addr(ip).1;
    let hash = flow_hash(
        &addr(datagram.src),
        &addr(datagram.dst),
        datagram.src_port.to_be(),
        datagram.dst_port.to_be(),
    );
    let tables = router.active_tables().expect("tables installed");
    let index = tables.fallback[(hash % FALLBACK_TABLE_SIZE) as usize];
    tables.backend_names[&index].clone()
}

/// Runs `frame` and checks the action, the bytes out and every counter.
fn check(
    router: &TestRouter,
    name: &str,
    frame: &[u8],
    action: u32,
    outcome: Outcome,
    backend: Option<&str>,
) {
    let before = router.counters();
    let (got_action, out) = router.run(frame);
    let after = router.counters();
    assert_eq!(got_action, action, "{name}: action");

    let mut expected = frame.to_vec();
    if let Some(name) = backend {
        let backend = fixtures::backend(name);
        let next_hop = parse_mac(backend.next_hop_mac).expect("a backend's MAC");
        expected[..6].copy_from_slice(&next_hop);
        expected[6..12].copy_from_slice(&interface(backend.interface).mac);
    }
    assert_eq!(
        hex::encode(&out),
        hex::encode(&expected),
        "{name}: bytes out"
    );

    for &candidate in Outcome::ALL {
        let delta = after.outcome(candidate) - before.outcome(candidate);
        assert_eq!(
            delta,
            u64::from(candidate == outcome),
            "{name}: counter {}",
            candidate.name()
        );
    }
    for (backend_name, &index) in router.backend_indices() {
        let old = before.backend(index);
        let new = after.backend(index);
        let hit = backend == Some(backend_name.as_str());
        assert_eq!(
            new.packets - old.packets,
            u64::from(hit),
            "{name}: packets of {backend_name}"
        );
        let bytes = if hit { frame.len() as u64 } else { 0 };
        assert_eq!(
            new.bytes - old.bytes,
            bytes,
            "{name}: bytes of {backend_name}"
        );
    }
}

#[test]
fn every_fixture_gives_its_action_bytes_and_counters() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 40, "only {} fixtures", fixtures.len());
    let config = ConfigFile::standard().load();
    let router = TestRouter::new(&config);
    for fixture in &fixtures {
        let frame = fixture
            .frame
            .clone()
            .unwrap_or_else(|| fixture.datagram.frame());
        match fixture.expect {
            Expect::Pass(outcome) => check(&router, &fixture.name, &frame, XDP_PASS, outcome, None),
            Expect::Drop(outcome) => check(&router, &fixture.name, &frame, XDP_DROP, outcome, None),
            Expect::Routed(backend) => check(
                &router,
                &fixture.name,
                &frame,
                XDP_REDIRECT,
                Outcome::RoutedByServerId,
                Some(backend),
            ),
            Expect::RoutedByToken(backend) => check(
                &router,
                &fixture.name,
                &frame,
                XDP_REDIRECT,
                Outcome::RoutedByToken,
                Some(backend),
            ),
            Expect::Hashed(outcome) => {
                let backend = hashed_backend(&router, &fixture.datagram);
                assert_ne!(
                    backend, "gamma",
                    "{}: a draining backend took fallback traffic",
                    fixture.name
                );
                check(
                    &router,
                    &fixture.name,
                    &frame,
                    XDP_REDIRECT,
                    outcome,
                    Some(&backend),
                );
            }
        }
    }
}

/// A valid packet cut at every octet: before the UDP header is whole the program cannot tell
/// it is for a listener and passes it; after, the IP and UDP lengths give the cut away.
#[test]
fn truncated_packets_are_passed_or_dropped_never_routed() {
    let config = ConfigFile::standard().load();
    let router = TestRouter::new(&config);
    for (v6, vlan) in [(false, None), (true, None), (false, Some(7))] {
        let mut datagram = udp(
            v6,
            initial(v1::INITIAL, QUIC_V1, &mint(2, "31441a", 30), &SCID, &[], 40),
        );
        datagram.vlan = vlan;
        let frame = datagram.frame();
        let headers = 14 + if vlan.is_some() { 4 } else { 0 } + if v6 { 40 } else { 20 } + 8;
        check(
            &router,
            "whole packet",
            &frame,
            XDP_REDIRECT,
            Outcome::RoutedByServerId,
            Some("alpha"),
        );
        for len in 14..frame.len() {
            let name = format!("{} cut to {len} octets", if v6 { "IPv6" } else { "IPv4" });
            if len < headers {
                check(
                    &router,
                    &name,
                    &frame[..len],
                    XDP_PASS,
                    Outcome::NotListener,
                    None,
                );
            } else {
                check(
                    &router,
                    &name,
                    &frame[..len],
                    XDP_DROP,
                    Outcome::MalformedQuic,
                    None,
                );
            }
        }
    }
}

#[test]
fn without_active_backends_fallback_traffic_is_dropped() {
    let draining = BACKENDS.map(|b| BackendFixture {
        state: "draining",
        ..b
    });
    let config = ConfigFile::with_backends(&draining).load();
    let router = TestRouter::new(&config);
    let initial = udp(false, v1_initial(&CLIENT_DCID, &[])).frame();
    check(
        &router,
        "Initial, all draining",
        &initial,
        XDP_DROP,
        Outcome::NoBackend,
        None,
    );
    // Traffic that names a draining backend still reaches it.
    let short = udp(false, short_header(&mint(0, "0a02", 31))).frame();
    check(
        &router,
        "short header to draining beta",
        &short,
        XDP_REDIRECT,
        Outcome::RoutedByServerId,
        Some("beta"),
    );
}

/// A unicast frame for another MAC on the interface the controller guards passes to the
/// stack: a switch's flood is not routed by every router on the segment.
#[test]
fn frames_for_another_mac_on_the_guarded_interface_are_passed() {
    let config = ConfigFile::standard().load();
    let mut router = TestRouter::new(&config);
    let to_beta = udp(false, short_header(&mint(0, "0a02", 31))).frame();
    check(
        &router,
        "nothing guarded yet",
        &to_beta,
        XDP_REDIRECT,
        Outcome::RoutedByServerId,
        Some("beta"),
    );
    // A test run's frames arrive on the namespace's loopback (index 1, MAC zero).
    let ingress = router.guard_ingress("lo").unwrap();
    assert_eq!(ingress.ifindex, 1);
    check(
        &router,
        "for another MAC",
        &to_beta,
        XDP_PASS,
        Outcome::OtherHost,
        None,
    );
    for (name, destination) in [("for lo's MAC", ingress.mac), ("broadcast", [0xff; 6])] {
        let mut frame = to_beta.clone();
        frame[..6].copy_from_slice(&destination);
        check(
            &router,
            name,
            &frame,
            XDP_REDIRECT,
            Outcome::RoutedByServerId,
            Some("beta"),
        );
    }
    // Guarding another interface leaves frames that arrive elsewhere alone.
    router.guard_ingress("be1").unwrap();
    check(
        &router,
        "arrived on another interface",
        &to_beta,
        XDP_REDIRECT,
        Outcome::RoutedByServerId,
        Some("beta"),
    );
}

#[test]
fn a_vanished_interface_counts_as_redirect_failure() {
    let config = ConfigFile::standard().load();
    let router = TestRouter::new(&config);
    // The kernel takes a device out of every devmap when it goes away.
    router.netns.ip(&["link", "del", "be1"]);
    let frame = udp(false, short_header(&mint(1, "000000b1", 32))).frame();
    let before = router.counters();
    let (action, _) = router.run(&frame);
    let after = router.counters();
    assert_eq!(action, XDP_DROP);
    assert_eq!(
        after.outcome(Outcome::RedirectFailed) - before.outcome(Outcome::RedirectFailed),
        1
    );
    assert_eq!(
        after.outcome(Outcome::RoutedByServerId),
        before.outcome(Outcome::RoutedByServerId)
    );
}

/// A listener told to hash Initials routes a resumed connection's Initial by its 4-tuple, not
/// by the DCID that names a server; other packets still go by their DCID.
#[test]
fn a_listener_can_hash_initials_by_4_tuple_only() {
    let file = ConfigFile::with_text(|dir| {
        BACKENDS.iter().fold(
            standard_quic_lb(standard_listeners(Some("hash")), dir),
            |text, backend| text.backend(&backend_text(backend)),
        )
    });
    let router = TestRouter::new(&file.load());
    for v6 in [false, true] {
        let resumed = udp(v6, v1_initial(&mint(2, "31441b", 40), &[]));
        let backend = hashed_backend(&router, &resumed);
        check(
            &router,
            "resumed Initial",
            &resumed.frame(),
            XDP_REDIRECT,
            Outcome::InitialHashed,
            Some(&backend),
        );
        let zero_rtt = udp(
            v6,
            long_header(v2::ZERO_RTT, QUIC_V2, &mint(1, "000000b1", 41), &SCID, 200),
        );
        let backend = hashed_backend(&router, &zero_rtt);
        check(
            &router,
            "v2 0-RTT",
            &zero_rtt.frame(),
            XDP_REDIRECT,
            Outcome::InitialHashed,
            Some(&backend),
        );
        let handshake = udp(
            v6,
            long_header(v1::HANDSHAKE, QUIC_V1, &mint(2, "31441b", 42), &SCID, 100),
        );
        check(
            &router,
            "Handshake",
            &handshake.frame(),
            XDP_REDIRECT,
            Outcome::RoutedByServerId,
            Some("beta"),
        );
        let short = udp(v6, short_header(&mint(2, "31441b", 43)));
        check(
            &router,
            "short header",
            &short.frame(),
            XDP_REDIRECT,
            Outcome::RoutedByServerId,
            Some("beta"),
        );
    }
}

/// One of the router's LRU hash maps, found through the program's map IDs.
fn lru_map<K: aya::Pod, V: aya::Pod>(router: &TestRouter, spec: MapSpec) -> HashMap<MapData, K, V> {
    let ids = router.program().info().unwrap().map_ids().unwrap().unwrap();
    let map = ids
        .into_iter()
        .map(|id| MapData::from_id(id).unwrap())
        .find(|map| map.info().unwrap().name() == spec.name.as_bytes())
        .unwrap_or_else(|| panic!("the program uses {}", spec.name));
    HashMap::try_from(Map::LruHashMap(map)).unwrap()
}

fn token_flows(router: &TestRouter) -> HashMap<MapData, TokenFlowKey, TokenFlow> {
    lru_map(router, specs::TOKEN_FLOWS)
}

/// The backend the CID cache holds for `cid` under the router's epoch, in any CPU's region
/// (the test runs may have run on either), with the default limits.
fn cached(router: &TestRouter, cid: &[u8]) -> Option<u32> {
    cached_in(router, Limits::DEFAULT.cid_cache_sets(), cid)
}

/// [`cached`] in a cache of `sets` sets per CPU.
fn cached_in(router: &TestRouter, sets: u32, cid: &[u8]) -> Option<u32> {
    let ids = router.program().info().unwrap().map_ids().unwrap().unwrap();
    let map = ids
        .into_iter()
        .map(|id| MapData::from_id(id).unwrap())
        .find(|map| map.info().unwrap().name() == specs::CID_CACHE.name.as_bytes())
        .expect("the program uses CID_CACHE");
    let cache: Array<MapData, CidCacheSet> = Array::try_from(Map::Array(map)).unwrap();
    let probe = CidCacheWay::new(cid, router.epoch(), 0);
    (0..cpu_slots().unwrap()).find_map(|cpu| {
        let slot = cid_cache_slot(cpu, sets, probe.set(sets));
        cache.get(&slot, 0).unwrap().find(&probe)
    })
}

/// The CID cache's sets hold two CIDs each, a region of sets per CPU: a third CID in a set
/// takes the place of the older of the two, which is decoded (and cached) again when it
/// comes back; every packet goes to its server all along.
#[test]
fn a_third_cid_in_a_cache_set_takes_the_older_ones_place() {
    // Every run on one CPU, so that all three CIDs meet in its region.
    pin_to_cpu(0, 0);
    let mut config = ConfigFile::standard().load();
    config.limits.cid_cache_entries = 1024;
    let sets = config.limits.cid_cache_sets();
    let router = TestRouter::new(&config);
    // Three four-pass CIDs naming beta that fall into one set.
    let mut by_set: std::collections::HashMap<u32, Vec<Vec<u8>>> = Default::default();
    let cids = (0..)
        .find_map(|seed| {
            let cid = mint(2, "31441b", seed);
            let set = by_set
                .entry(CidCacheWay::new(&cid, 0, 0).set(sets))
                .or_default();
            set.push(cid);
            (set.len() == 3).then(|| set.clone())
        })
        .unwrap();
    let beta = router.backend("beta");
    let send = |name: &str, cid: &[u8]| {
        check(
            &router,
            name,
            &udp(false, short_header(cid)).frame(),
            XDP_REDIRECT,
            Outcome::RoutedByServerId,
            Some("beta"),
        );
    };
    for (i, cid) in cids.iter().enumerate() {
        send(&format!("CID {i}"), cid);
    }
    let held = |router: &TestRouter| {
        cids.iter()
            .map(|cid| cached_in(router, sets, cid))
            .collect::<Vec<_>>()
    };
    assert_eq!(held(&router), [None, Some(beta), Some(beta)]);
    send("the first CID again", &cids[0]);
    assert_eq!(held(&router), [Some(beta), None, Some(beta)]);
}

/// A 0-RTT packet carries no token: it follows the Initial of its attempt (same address,
/// port and DCID) that was routed by its token, under the same epoch, while the flow lasts.
#[test]
fn packets_of_an_attempt_routed_by_its_token_follow_it() {
    let config = ConfigFile::standard().load();
    let mut router = TestRouter::new(&config);
    for v6 in [false, true] {
        let dcid = client_dcid(100 + u8::from(v6));
        let initial_of = |token: &[u8]| udp(v6, v1_initial(&dcid, token));
        let zero_rtt = udp(v6, long_header(v1::ZERO_RTT, QUIC_V1, &dcid, &SCID, 200));
        let hashed_0rtt = hashed_backend(&router, &zero_rtt);
        // The token names a server the 4-tuple does not hash to.
        let (named, server_id) = [("beta", "31441b"), ("alpha", "31441a")]
            .into_iter()
            .find(|(name, _)| *name != hashed_0rtt)
            .unwrap();
        check(
            &router,
            "0-RTT before any Initial",
            &zero_rtt.frame(),
            XDP_REDIRECT,
            Outcome::InitialHashed,
            Some(&hashed_0rtt),
        );
        check(
            &router,
            "Initial with a token naming another server",
            &initial_of(&token(2, server_id, 101, 30)).frame(),
            XDP_REDIRECT,
            Outcome::RoutedByToken,
            Some(named),
        );
        check(
            &router,
            "its 0-RTT",
            &zero_rtt.frame(),
            XDP_REDIRECT,
            Outcome::RoutedByTokenFlow,
            Some(named),
        );
        check(
            &router,
            "its next Initial, without a token",
            &initial_of(&[]).frame(),
            XDP_REDIRECT,
            Outcome::RoutedByTokenFlow,
            Some(named),
        );
        let mut other_port = zero_rtt.clone();
        other_port.src_port += 1;
        check(
            &router,
            "0-RTT from another port",
            &other_port.frame(),
            XDP_REDIRECT,
            Outcome::InitialHashed,
            Some(&hashed_backend(&router, &other_port)),
        );
        let other_dcid = udp(
            v6,
            long_header(v1::ZERO_RTT, QUIC_V1, &client_dcid(110), &SCID, 200),
        );
        check(
            &router,
            "0-RTT with another DCID",
            &other_dcid.frame(),
            XDP_REDIRECT,
            Outcome::InitialHashed,
            Some(&hashed_backend(&router, &other_dcid)),
        );
    }

    // A flow is kept under the epoch it was found in: a change applied since leaves it unused.
    let dcid = client_dcid(120);
    let zero_rtt = udp(false, long_header(v1::ZERO_RTT, QUIC_V1, &dcid, &SCID, 200));
    check(
        &router,
        "Initial with a token naming alpha",
        &udp(false, v1_initial(&dcid, &token(0, "0a01", 121, 8))).frame(),
        XDP_REDIRECT,
        Outcome::RoutedByToken,
        Some("alpha"),
    );
    let mut changed = config.clone();
    changed.backends[0].weight += 1;
    let epoch = router.epoch();
    assert_ne!(router.install(&changed), epoch);
    check(
        &router,
        "its 0-RTT after a change",
        &zero_rtt.frame(),
        XDP_REDIRECT,
        Outcome::InitialHashed,
        Some(&hashed_backend(&router, &zero_rtt)),
    );

    // An expired flow is not followed; one that has not expired is, to where it says. (An
    // Initial routed by its token first: until one is, in this epoch, there is no flow to
    // look up.)
    check(
        &router,
        "another attempt's Initial with a token, in the new epoch",
        &udp(
            false,
            v1_initial(&client_dcid(122), &token(0, "0a01", 123, 8)),
        )
        .frame(),
        XDP_REDIRECT,
        Outcome::RoutedByToken,
        Some("alpha"),
    );
    let mut flows = token_flows(&router);
    let mut key = TokenFlowKey {
        port_be: zero_rtt.src_port.to_be(),
        family: 4,
        dcid_len: dcid.len() as u8,
        ..TokenFlowKey::default()
    };
    key.addr[..4].copy_from_slice(&SENDER4.parse::<std::net::Ipv4Addr>().unwrap().octets());
    key.dcid[..dcid.len()].copy_from_slice(&dcid);
    let flow = |expires_ns| TokenFlow {
        backend: router.backend("gamma"),
        epoch: router.epoch(),
        expires_ns,
    };
    flows.insert(key, flow(1), 0).unwrap();
    check(
        &router,
        "0-RTT of an expired flow",
        &zero_rtt.frame(),
        XDP_REDIRECT,
        Outcome::InitialHashed,
        Some(&hashed_backend(&router, &zero_rtt)),
    );
    flows.insert(key, flow(u64::MAX), 0).unwrap();
    check(
        &router,
        "0-RTT of a live flow",
        &zero_rtt.frame(),
        XDP_REDIRECT,
        Outcome::RoutedByTokenFlow,
        Some("gamma"),
    );
}

/// A token's block goes through the CID cache as a CID does: found again under the same
/// epoch, and decoded afresh under a new one, where its server ID may name another backend.
#[test]
fn token_blocks_follow_the_cid_cache_rules() {
    let config = ConfigFile::standard().load();
    let mut router = TestRouter::new(&config);
    let block = mint(2, "31441b", 130);
    let beta_token = [block.clone(), vec![0x5a; 20]].concat();
    let initial_from = |seed: u8, token: &[u8]| udp(false, v1_initial(&client_dcid(seed), token));
    assert_eq!(cached(&router, &block), None);
    for (seed, name) in [(131, "decoded"), (132, "cached")] {
        check(
            &router,
            name,
            &initial_from(seed, &beta_token).frame(),
            XDP_REDIRECT,
            Outcome::RoutedByToken,
            Some("beta"),
        );
        assert_eq!(
            cached(&router, &block),
            Some(router.backend("beta")),
            "{name}"
        );
    }
    // A block that names no server is not cached.
    let unknown = mint(2, "777777", 134);
    let unknown_initial = initial_from(135, &[unknown.clone(), vec![0x5a; 20]].concat());
    check(
        &router,
        "unknown server ID",
        &unknown_initial.frame(),
        XDP_REDIRECT,
        Outcome::InitialHashed,
        Some(&hashed_backend(&router, &unknown_initial)),
    );
    assert_eq!(cached(&router, &unknown), None);
    // Server ID 31441b moves from beta to alpha.
    let mut moved = config.clone();
    let id = hex::decode("31441b").unwrap();
    for backend in &mut moved.backends {
        backend.server_ids.retain(|(_, server_id)| *server_id != id);
    }
    moved
        .backends
        .iter_mut()
        .find(|backend| backend.name == "alpha")
        .unwrap()
        .server_ids
        .push((2, id));
    router.install(&moved);
    check(
        &router,
        "after the move",
        &initial_from(133, &beta_token).frame(),
        XDP_REDIRECT,
        Outcome::RoutedByToken,
        Some("alpha"),
    );
}

/// A port with several listeners of one family is matched through `LISTENERS` (a port with
/// one, by its `LISTENER_PORTS` entry alone): each listener keeps its own flags, and another
/// address on the port is no listener's.
#[test]
fn several_listeners_of_a_family_on_one_port_keep_their_own_flags() {
    const SECOND_VIP4: &str = "198.18.0.11";
    const SECOND_VIP6: &str = "2001:db8::11";
    let file = ConfigFile::with_text(|dir| {
        let listeners = standard_listeners(Some("hash"))
            .listener(SECOND_VIP4, QUIC_PORT, None)
            .listener(SECOND_VIP6, QUIC_PORT, None);
        BACKENDS
            .iter()
            .fold(standard_quic_lb(listeners, dir), |text, backend| {
                text.backend(&backend_text(backend))
            })
    });
    let router = TestRouter::new(&file.load());
    for v6 in [false, true] {
        let second: IpAddr = if v6 { SECOND_VIP6 } else { SECOND_VIP4 }.parse().unwrap();
        let not_a_vip: IpAddr = if v6 { NOT_A_VIP6 } else { NOT_A_VIP4 }.parse().unwrap();
        let to = |dst: IpAddr, payload: Vec<u8>| {
            Datagram::new(sender(v6), dst, 40_001, QUIC_PORT, payload)
        };
        let resumed = || v1_initial(&mint(2, "31441b", 50), &[]);

        let hashed = to(vip(v6), resumed());
        let backend = hashed_backend(&router, &hashed);
        check(
            &router,
            "Initial to the VIP that hashes Initials",
            &hashed.frame(),
            XDP_REDIRECT,
            Outcome::InitialHashed,
            Some(&backend),
        );
        check(
            &router,
            "Initial to the second VIP",
            &to(second, resumed()).frame(),
            XDP_REDIRECT,
            Outcome::RoutedByServerId,
            Some("beta"),
        );
        check(
            &router,
            "short header to the second VIP",
            &to(second, short_header(&mint(0, "0a02", 51))).frame(),
            XDP_REDIRECT,
            Outcome::RoutedByServerId,
            Some("beta"),
        );
        let other = to(not_a_vip, short_header(&mint(0, "0a02", 52))).frame();
        check(
            &router,
            "another address on the port",
            &other,
            XDP_PASS,
            Outcome::NotListener,
            None,
        );
    }
}

/// Server IDs of at most two octets are found by index (`SHORT_SERVER_IDS`), one octet or
/// two, plaintext or encrypted: each routes to its backend, an unknown one is hashed, and
/// one that a reload removes routes no more in either generation, until a config has it
/// again.
#[test]
fn short_server_ids_route_by_index_and_follow_reloads() {
    let mut with = ConfigFile::standard().load();
    let params = ConfigParams::new(4, 1, 6);
    let key = || Key::from_slice(&[0x42; 16]).unwrap();
    with.cid_configs.push(CidConfig {
        params,
        key: Some(key()),
        key_file: None,
    });
    with.backends[0].server_ids.push((4, vec![0x07]));
    with.backends[1].server_ids.push((4, vec![0x08]));
    let mut without = with.clone();
    without.backends[0]
        .server_ids
        .retain(|(rotation, _)| *rotation != 4 && *rotation != 0);

    let encoder = Encoder::new(Config::new(params, Some(key().aes128())).unwrap());
    let one_octet = |server_id: u8, seed: u64| {
        let mut rng = StdRng::seed_from_u64(seed);
        let nonce: [u8; 6] = rng.random();
        let cid = encoder.encode(&[server_id], &nonce, &mut rng).unwrap();
        udp(false, short_header(cid.as_slice()))
    };
    let plaintext = udp(false, short_header(&mint(0, BACKENDS[0].server_ids[0], 60)));
    let routed = |router: &TestRouter, name: &str, datagram: &Datagram, backend| {
        check(
            router,
            name,
            &datagram.frame(),
            XDP_REDIRECT,
            Outcome::RoutedByServerId,
            Some(backend),
        );
    };
    let unknown = |router: &TestRouter, name: &str, datagram: &Datagram| {
        let backend = hashed_backend(router, datagram);
        check(
            router,
            name,
            &datagram.frame(),
            XDP_REDIRECT,
            Outcome::UnknownServerId,
            Some(&backend),
        );
    };

    let mut router = TestRouter::new(&with);
    routed(&router, "one octet, 07", &one_octet(0x07, 1), "alpha");
    routed(
        &router,
        "one octet, 07, cached",
        &one_octet(0x07, 1),
        "alpha",
    );
    routed(&router, "one octet, 08", &one_octet(0x08, 2), "beta");
    routed(&router, "two octets, plaintext", &plaintext, "alpha");
    unknown(&router, "one octet, 09: nobody's", &one_octet(0x09, 3));
    // Both generations in turn.
    for _ in 0..2 {
        router.install(&without);
        unknown(&router, "07 after its removal", &one_octet(0x07, 1));
        unknown(&router, "plaintext after its removal", &plaintext);
        routed(&router, "08 stays", &one_octet(0x08, 2), "beta");
    }
    router.install(&with);
    routed(&router, "07 back", &one_octet(0x07, 1), "alpha");
    routed(&router, "plaintext back", &plaintext, "alpha");
}
