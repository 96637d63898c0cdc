//! Per-packet cost as production sees it, beside the warm single-packet figures of `kernel`:
//! packets one at a time (separate BPF_PROG_TEST_RUN calls with repeat=1, each timed by the
//! kernel), many connections cycled so that the CID cache and the CPU's caches miss, and the
//! traffic an attacker can send at will. Each round runs a block of XDP_PASS calls and then a
//! block of each scenario's; a scenario's figure is its cost above XDP_PASS in the same
//! round, the median over the rounds. IPv4 and IPv6; the router as built (CID cache on).
//! The delivery methods' costs (`delivery`) join these rows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::programs::Xdp;
use bench_ebpf::program_names;
use integration_tests::{
    ConfigFile, TestRouter,
    addresses::{QUIC_PORT, vip},
    fixtures::mint,
    load_bench_programs,
    packet::{Datagram, QUIC_V1, initial, short_header, v1},
    run_repeated, xdp_program,
};
use rand::{RngCore as _, SeedableRng as _, rngs::StdRng};

pub struct Settings {
    /// BPF_PROG_TEST_RUN calls (one packet each) per block.
    pub calls: usize,
    /// Interleaved rounds; the median is reported.
    pub rounds: usize,
    /// Distinct connections (4-tuples and CIDs) of the "many connections" scenarios: more
    /// than the CID cache holds.
    pub connections: usize,
    /// Distinct encrypted CIDs of the scenario whose CIDs all stay in the CID cache.
    pub cached_connections: usize,
}

pub struct Row {
    pub family: &'static str,
    /// A short stable identifier of the scenario.
    pub id: &'static str,
    pub scenario: String,
    /// Nanoseconds per packet above an XDP_PASS program's, same round.
    pub ns_above_pass: f64,
}

pub struct Results {
    /// XDP_PASS itself in this mode (median of its blocks).
    pub pass_ns: f64,
    pub rows: Vec<Row>,
}

/// Client `i` of many: an address in 198.18.0.0/15 (or 2001:db8:1::/64) and a port,
/// distinct for each `i` below 2^17 * 50,000.
fn client(i: usize, v6: bool) -> (IpAddr, u16) {
    let host = (i / 50_000) as u32;
    let addr = if v6 {
        let net = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0));
        IpAddr::V6(Ipv6Addr::from(net + u128::from(host)))
    } else {
        IpAddr::V4(Ipv4Addr::from(
            u32::from(Ipv4Addr::new(198, 18, 0, 0)) + host,
        ))
    };
    (addr, 10_000 + (i % 50_000) as u16)
}

fn frame(i: usize, v6: bool, payload: Vec<u8>) -> Vec<u8> {
    let (addr, port) = client(i, v6);
    Datagram::new(addr, vip(v6), port, QUIC_PORT, payload).frame()
}

/// `len` random octets under `codepoint`'s first-octet bits, from seed `i`.
fn random_cid(codepoint: u8, len: usize, i: usize) -> Vec<u8> {
    let mut cid = vec![0u8; len];
    StdRng::seed_from_u64(i as u64).fill_bytes(&mut cid);
    cid[0] = (codepoint << 5) | (cid[0] & 0x1f);
    cid
}

/// A count as operators write it: 1M, 30k.
fn count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Makes a scenario's packets.
type MakePackets = Box<dyn Fn() -> Vec<Vec<u8>>>;

/// A scenario: its id, its description and what makes its packets.
type Scenario = (&'static str, String, MakePackets);

/// The packets `0..n` that `packet` makes.
fn packets(n: usize, packet: impl Fn(usize) -> Vec<u8>) -> Vec<Vec<u8>> {
    (0..n).map(packet).collect()
}

/// An Initial's payload after its token: Initials are padded to 1,200 octets, but the program
/// reads no further than the token, and a short one keeps a million of them in memory.
const INITIAL_REST: usize = 64;

fn scenarios(
    settings: &Settings,
    v6: bool,
) -> impl Iterator<Item = (&'static str, String, Vec<Vec<u8>>)> {
    let many = settings.connections;
    let cached = settings.cached_connections;
    let (n, k) = (count(many), count(cached));
    let initial_of = |dcid: &[u8], token: &[u8]| {
        initial(v1::INITIAL, QUIC_V1, dcid, &[9; 8], token, INITIAL_REST)
    };
    // Made one scenario at a time, as the iterator is consumed.
    let frame = move |i, payload| frame(i, v6, payload);
    let makers: Vec<Scenario> = vec![
        (
            "plaintext_one",
            "short header, plaintext CID, one connection".into(),
            Box::new(move || packets(1, |_| frame(0, short_header(&mint(0, "0a01", 1))))),
        ),
        (
            "plaintext_many",
            format!("short header, plaintext CID, {n} connections cycled"),
            Box::new(move || packets(many, |i| frame(i, short_header(&mint(0, "0a01", i as u64))))),
        ),
        (
            "four_pass_hit_one",
            "short header, four-pass CID, one connection (cache hit)".into(),
            Box::new(move || packets(1, |_| frame(0, short_header(&mint(2, "31441a", 1))))),
        ),
        (
            "four_pass_hits",
            format!("short header, four-pass CID, {k} connections cycled (cache hits)"),
            Box::new(move || {
                packets(cached, |i| {
                    frame(i, short_header(&mint(2, "31441a", i as u64)))
                })
            }),
        ),
        (
            "four_pass_misses",
            format!("short header, four-pass CID, {n} connections cycled (cache misses: decoded)"),
            Box::new(move || {
                packets(many, |i| {
                    frame(i, short_header(&mint(2, "31441a", i as u64)))
                })
            }),
        ),
        (
            "initial_hash",
            format!("Initial, client-chosen DCID, {n} 4-tuples (fallback hash)"),
            Box::new(move || packets(many, |i| frame(i, initial_of(&random_cid(7, 8, i), &[])))),
        ),
        (
            "initial_new_token",
            format!("Initial, a new token naming a server each, {n} cycled (decoded)"),
            Box::new(move || {
                packets(many, |i| {
                    let token = [mint(2, "31441b", i as u64), vec![0x5a; 48]].concat();
                    frame(i, initial_of(&random_cid(7, 8, i), &token))
                })
            }),
        ),
        (
            // After the scenario above: token flows were made in this epoch, so that every
            // token-less Initial looks its attempt up among them, as in a fleet that routes
            // resumptions by token.
            "initial_hash_flows",
            format!(
                "Initial, client-chosen DCID, {n} 4-tuples, while token flows are made (fallback hash, flow lookup)"
            ),
            Box::new(move || packets(many, |i| frame(i, initial_of(&random_cid(7, 8, i), &[])))),
        ),
        (
            "attack_short",
            "attack: short headers, random DCIDs under the four-pass codepoint".into(),
            Box::new(move || packets(many, |i| frame(i, short_header(&random_cid(2, 8, i))))),
        ),
        (
            "attack_initial",
            "attack: Initials, random DCIDs under the four-pass codepoint".into(),
            Box::new(move || packets(many, |i| frame(i, initial_of(&random_cid(2, 8, i), &[])))),
        ),
    ];
    makers
        .into_iter()
        .map(|(id, name, make)| (id, name, make()))
}

/// Mean nanoseconds per call of `calls` calls, one packet each, going round `packets` from
/// `next` on.
pub fn block(program: &Xdp, packets: &[Vec<u8>], next: &mut usize, calls: usize) -> f64 {
    let mut total = 0u128;
    for _ in 0..calls {
        let packet = &packets[*next % packets.len()];
        *next += 1;
        total += run_repeated(program, packet, 1).2.as_nanos();
    }
    total as f64 / calls as f64
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The scenarios run one after the other, each with its packets made beforehand (so that
/// nothing but the calls runs between them) and its rounds interleaved with XDP_PASS blocks.
pub fn run(settings: &Settings) -> Results {
    let config = ConfigFile::standard().load();
    let mut floors = load_bench_programs();
    xdp_program(&mut floors, program_names::FLOOR_PASS)
        .load()
        .unwrap_or_else(|err| panic!("{}: {err}", program_names::FLOOR_PASS));
    let pass = xdp_program(&mut floors, program_names::FLOOR_PASS);
    let pass_packets = [frame(0, false, short_header(&mint(0, "0a01", 1)))];

    let mut pass_ns = Vec::new();
    let mut rows = Vec::new();
    for v6 in [false, true] {
        // A router of its own per family: the IPv4 scenarios' token flows would otherwise
        // put a flow lookup into the IPv6 Initials' figures.
        let router = TestRouter::new(&config);
        for (id, scenario, packets) in scenarios(settings, v6) {
            let (mut next, mut pass_next) = (0, 0);
            let mut above = Vec::new();
            for _ in 0..settings.rounds {
                let pass_block = block(pass, &pass_packets, &mut pass_next, settings.calls);
                let ns = block(router.program(), &packets, &mut next, settings.calls);
                pass_ns.push(pass_block);
                above.push(ns - pass_block);
            }
            rows.push(Row {
                family: if v6 { "IPv6" } else { "IPv4" },
                id,
                scenario,
                ns_above_pass: median(above),
            });
        }
    }
    rows.extend(crate::delivery::run(settings, pass, &mut pass_ns));
    Results {
        pass_ns: median(pass_ns),
        rows,
    }
}
