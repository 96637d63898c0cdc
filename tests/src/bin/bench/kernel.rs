//! Per-packet cost in the kernel: each path through the router's XDP program, as
//! BPF_PROG_TEST_RUN reports it, beside two floors measured in the same run (a program that
//! only passes packets; one that parses Ethernet/IP/UDP and redirects through a devmap), both
//! also written in C and built with clang, as a yardstick for the Rust ones.

use std::time::Duration;

use object::{Object as _, ObjectSymbol as _};

use aya::{maps::DevMap, programs::Xdp};
use bench_ebpf::{FLOOR_SLOTS, c_floor, map_names, program_names};
use integration_tests::{
    ConfigFile, TestRouter,
    addresses::{QUIC_PORT, sender, vip},
    fixtures::{BACKENDS, INTERFACES, LOCAL_WORKERS, mint},
    load_bench_programs, load_c_floor, options_for,
    packet::{Datagram, QUIC_V1, dns_query, initial, short_header, v1},
    run_repeated, standard_config_text, take_map, worker_text, xdp_program,
};
use router_user::router::{CidCacheMode, LoadOptions};

pub struct Settings {
    /// BPF_PROG_TEST_RUN's repeat count.
    pub repeat: u32,
    /// Runs per figure; the median is reported.
    pub runs: usize,
}

/// Which program variant a figure is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// A floor program.
    Floor,
    /// The router as shipped; for encrypted CIDs, every packet after the first is a hit in
    /// the CID cache.
    Router,
    /// The router loaded with the CID cache off: every packet decodes its CID.
    Decoding,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::Router => "router",
            Self::Decoding => "router, CID cache off",
        }
    }
}

/// One figure: nanoseconds per packet of `path` under `variant`.
pub struct Row {
    pub family: &'static str,
    /// A short stable identifier of the path.
    pub id: &'static str,
    pub path: &'static str,
    pub variant: Variant,
    pub ns: f64,
    /// The floors of the same family, same run.
    pub pass_ns: f64,
    pub redirect_ns: f64,
}

/// The paths: (id, description, whether the CID is encrypted, frame).
fn paths(v6: bool) -> Vec<(&'static str, &'static str, bool, Vec<u8>)> {
    let (client, vip) = (sender(v6), vip(v6));
    let udp = |payload: Vec<u8>| Datagram::new(client, vip, 40_001, QUIC_PORT, payload).frame();
    vec![
        (
            "plaintext",
            "short header, plaintext",
            false,
            udp(short_header(&mint(0, "0a01", 1))),
        ),
        (
            "single_pass",
            "short header, single-pass AES",
            true,
            udp(short_header(&mint(1, "000000a1", 2))),
        ),
        (
            "four_pass_3",
            "short header, four-pass (3 passes)",
            true,
            udp(short_header(&mint(2, "31441a", 3))),
        ),
        (
            "four_pass_4",
            "short header, four-pass (4 passes)",
            true,
            udp(short_header(&mint(3, "a1a1a1a1a1a1a1a1", 4))),
        ),
        (
            "initial_hash",
            "Initial, client-chosen DCID (fallback hash)",
            false,
            udp(initial(
                v1::INITIAL,
                QUIC_V1,
                &[0xe3, 1, 2, 3, 4, 5, 6, 7],
                &[9; 8],
                &[],
                1200,
            )),
        ),
        (
            "initial_routable",
            "Initial, routable DCID (four-pass, 3 passes)",
            true,
            udp(initial(
                v1::INITIAL,
                QUIC_V1,
                &mint(2, "31441b", 5),
                &[9; 8],
                &[],
                1200,
            )),
        ),
        (
            "initial_token",
            "Initial, client-chosen DCID, token naming a server (four-pass, 3 passes)",
            true,
            udp(initial(
                v1::INITIAL,
                QUIC_V1,
                &[0xe3, 1, 2, 3, 4, 5, 6, 7],
                &[9; 8],
                &[mint(2, "31441b", 8), vec![0x5a; 48]].concat(),
                1200,
            )),
        ),
        // Its second octet selects the single-pass codepoint: decoded every time (an unknown
        // server ID is not cached), then hashed.
        (
            "non_quic",
            "non-QUIC UDP to a listener (a DNS query)",
            false,
            udp(dns_query()),
        ),
        (
            "local_worker",
            "short header, plaintext, for a local worker (to the stack)",
            false,
            udp(short_header(&mint(0, LOCAL_WORKERS[0].server_ids[0], 7))),
        ),
        // Early exits and detours, for where the time goes (report's stage table).
        (
            "empty",
            "UDP to a listener, empty (dropped: parse, listener, QUIC header)",
            false,
            udp(Vec::new()),
        ),
        (
            "unroutable",
            "short header, codepoint without a config (fallback hash)",
            false,
            udp(short_header(&[0xe0; 9])),
        ),
        (
            "no_listener",
            "UDP for no listener",
            false,
            Datagram::new(client, vip, 40_001, 8443, short_header(&mint(0, "0a01", 6))).frame(),
        ),
    ]
}

/// The median over `runs` runs of `repeat` repetitions, in nanoseconds per packet.
fn cost(program: &Xdp, packet: &[u8], settings: &Settings) -> f64 {
    let mut samples: Vec<Duration> = (0..settings.runs)
        .map(|_| run_repeated(program, packet, settings.repeat).2)
        .collect();
    samples.sort();
    samples[samples.len() / 2].as_nanos() as f64
}

/// The size of a loaded program, as the kernel reports it.
pub struct ProgramSize {
    pub program: &'static str,
    /// Instructions after verification (dead code removed, helpers inlined).
    pub xlated: u32,
    /// Octets of machine code.
    pub jited: u32,
    /// Instructions the verifier went through (all paths).
    pub verified: u32,
}

impl ProgramSize {
    fn of(program: &'static str, xdp: &Xdp) -> Self {
        let info = xdp
            .info()
            .unwrap_or_else(|err| panic!("{program}: BPF_OBJ_GET_INFO_BY_FD: {err}"));
        Self {
            program,
            xlated: info.size_translated().unwrap_or(0) / 8,
            jited: info.size_jitted(),
            verified: info.verified_instruction_count().unwrap_or(0),
        }
    }
}

/// The instructions of each function in the router's object (before the verifier): where the
/// program's size is, by subprogram (functions inlined into another count there).
pub fn function_sizes(elf: &[u8]) -> Vec<(String, u64)> {
    let file = object::File::parse(elf).expect("the router's object");
    let mut sizes: Vec<(String, u64)> = file
        .symbols()
        .filter(|symbol| symbol.kind() == object::SymbolKind::Text && symbol.size() > 0)
        .filter_map(|symbol| {
            let name = symbol.name().ok()?;
            Some((readable(name), symbol.size() / 8))
        })
        .collect();
    sizes.sort_by_key(|&(_, size)| std::cmp::Reverse(size));
    sizes
}

/// A symbol as a reader wants it: a Rust function's last two path segments
/// (`cid::server_id_route`), without hash or generic arguments, and which program type it is
/// for when it is generic over it; other names as they are.
fn readable(symbol: &str) -> String {
    let full = format!("{:#}", rustc_demangle::demangle(symbol));
    // A trait method, `<Type as Trait>::method`: the type's name and the method.
    let full = match full
        .strip_prefix('<')
        .and_then(|rest| rest.split_once(" as "))
    {
        Some((implementor, rest)) => {
            let method = rest.rsplit("::").next().unwrap_or(rest);
            let implementor = implementor.rsplit("::").next().unwrap_or(implementor);
            format!("{implementor}::{method}")
        }
        None => full,
    };
    let (path, generics) = full.split_once("::<").unwrap_or((full.as_str(), ""));
    let segments: Vec<&str> = path.split("::").collect();
    let name = segments[segments.len().saturating_sub(2)..].join("::");
    if generics.contains("SkReuseportContext") {
        format!("{name} (SO_REUSEPORT)")
    } else {
        name
    }
}

/// The figures of [`run`].
pub struct Results {
    pub rows: Vec<Row>,
    /// The floors and the router, as loaded.
    pub programs: Vec<ProgramSize>,
    /// The router's functions, largest first.
    pub functions: Vec<(String, u64)>,
}

pub fn run(settings: &Settings) -> Results {
    let config_file = ConfigFile::with_text(|dir| {
        standard_config_text(dir, &BACKENDS).backend(&worker_text(&LOCAL_WORKERS[0]))
    });
    let config = config_file.load();
    let router = TestRouter::new(&config);

    // The floors, in the router's namespace.
    let mut floors = load_bench_programs();
    for name in [program_names::FLOOR_PASS, program_names::FLOOR_REDIRECT] {
        xdp_program(&mut floors, name)
            .load()
            .unwrap_or_else(|err| panic!("{name}: {err}"));
    }
    // The same floor written in C, as a yardstick.
    let mut c_floors = load_c_floor();
    for name in [c_floor::PASS, c_floor::REDIRECT] {
        xdp_program(&mut c_floors, name)
            .load()
            .unwrap_or_else(|err| panic!("{name}: {err}"));
    }
    let be0 = router_user::netif::lookup(INTERFACES[0].name).unwrap_or_else(|err| panic!("{err}"));
    for (ebpf, name) in [
        (&mut floors, map_names::FLOOR_PORTS),
        (&mut c_floors, c_floor::PORTS),
    ] {
        let mut ports: DevMap<_> = take_map(ebpf, name);
        for slot in 0..FLOOR_SLOTS {
            ports.set(slot, be0.ifindex, None, 0).expect(name);
        }
    }
    // The same config in a second instance (in a namespace of its own, left before the
    // first's) that decodes every packet.
    let decoding = TestRouter::with_options(
        &config,
        LoadOptions {
            cid_cache: CidCacheMode::Off,
            ..options_for(&config)
        },
    );

    let programs = vec![
        ProgramSize::of(
            "floor: parse + redirect (Rust)",
            xdp_program(&mut floors, program_names::FLOOR_REDIRECT),
        ),
        ProgramSize::of(
            "floor: parse + redirect (C)",
            xdp_program(&mut c_floors, c_floor::REDIRECT),
        ),
        ProgramSize::of("quic-router", router.program()),
    ];
    let functions = function_sizes(router_user::router::object());

    let mut rows = Vec::new();
    for v6 in [false, true] {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let paths = paths(v6);
        let floor_packet = &paths[0].3;
        let pass_ns = cost(
            xdp_program(&mut floors, program_names::FLOOR_PASS),
            floor_packet,
            settings,
        );
        let redirect_ns = cost(
            xdp_program(&mut floors, program_names::FLOOR_REDIRECT),
            floor_packet,
            settings,
        );
        let row = |id, path, variant, ns| Row {
            family,
            id,
            path,
            variant,
            ns,
            pass_ns,
            redirect_ns,
        };
        rows.push(row(
            "floor_pass",
            "floor: XDP_PASS program",
            Variant::Floor,
            pass_ns,
        ));
        rows.push(row(
            "floor_redirect",
            "floor: parse Eth/IP/UDP + devmap redirect",
            Variant::Floor,
            redirect_ns,
        ));
        for (id, path, name) in [
            (
                "c_floor_pass",
                "floor in C (clang -O2): XDP_PASS program",
                c_floor::PASS,
            ),
            (
                "c_floor_redirect",
                "floor in C (clang -O2): parse Eth/IP/UDP + devmap redirect",
                c_floor::REDIRECT,
            ),
        ] {
            let ns = cost(xdp_program(&mut c_floors, name), floor_packet, settings);
            rows.push(row(id, path, Variant::Floor, ns));
        }
        for (id, path, encrypted, packet) in &paths {
            let ns = cost(router.program(), packet, settings);
            rows.push(row(id, path, Variant::Router, ns));
            if *encrypted {
                let ns = cost(decoding.program(), packet, settings);
                rows.push(row(id, path, Variant::Decoding, ns));
            }
        }
    }
    Results {
        rows,
        programs,
        functions,
    }
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn symbols_read_as_module_or_type_and_function() {
        let cases = [
            (
                "_RNvNtCsfUZ8n7AyIDo_11router_ebpf3cid15server_id_route",
                "cid::server_id_route",
            ),
            (
                "_RINvNtCsfUZ8n7AyIDo_11router_ebpf3cid15server_id_routeNtNtNtCsbXCHIAeIPAu_8aya_ebpf8programs12sk_reuseport18SkReuseportContextEB4_",
                "cid::server_id_route (SO_REUSEPORT)",
            ),
            (
                "_RNvXs1_NtNtCsavILejnzSvX_13router_common7quic_lb9table_aesNtB5_12AesRoundKeysNtNtB7_6cipher11BlockCipher13encrypt_block",
                "AesRoundKeys::encrypt_block",
            ),
            ("memset", "memset"),
        ];
        for (symbol, expected) in cases {
            assert_eq!(readable(symbol), expected, "{symbol}");
        }
    }
}
