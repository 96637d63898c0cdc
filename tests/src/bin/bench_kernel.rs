//! Per-packet cost of each path through the XDP program, as BPF_PROG_TEST_RUN reports it,
//! next to two floors measured in the same run: a program that only passes packets, and one
//! that parses Ethernet/IP/UDP and redirects through a devmap. Prints a Markdown table and,
//! with `--json PATH`, writes the figures as JSON.
//!
//! Usage: bench_kernel [--repeat N] [--runs N] [--json PATH]

use std::{net::IpAddr, time::Duration};

use aya::{
    EbpfLoader,
    maps::DevMap,
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use integration_tests::{
    ConfigFile, Router, VIP4, VIP6, mint,
    packet::{Datagram, QUIC_V1, long_header, short_header, v1},
};

struct Options {
    repeat: u32,
    runs: usize,
    json: Option<String>,
}

fn options() -> Options {
    let mut options = Options {
        repeat: 1_000_000,
        runs: 5,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--repeat" => {
                options.repeat = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--repeat takes a number"))
            }
            "--runs" => {
                options.runs = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--runs takes a number"))
            }
            "--json" => options.json = Some(value()),
            other => fail(&format!("unknown argument {other}")),
        }
    }
    options
}

fn fail(message: &str) -> ! {
    eprintln!("bench_kernel: {message}");
    std::process::exit(2);
}

/// The median over `runs` runs of `repeat` repetitions, in nanoseconds per packet.
fn cost(program: &mut Xdp, packet: &[u8], options: &Options) -> f64 {
    let mut samples: Vec<Duration> = (0..options.runs)
        .map(|_| {
            let mut out = vec![0u8; packet.len() + 512];
            program
                .test_run(TestRunOptions {
                    data_in: Some(packet),
                    data_out: Some(&mut out),
                    repeat: options.repeat,
                    ..TestRunOptions::default()
                })
                .unwrap_or_else(|err| fail(&format!("BPF_PROG_TEST_RUN: {err}")))
                .duration
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2].as_nanos() as f64
}

fn main() {
    let options = options();
    let config = ConfigFile::standard().load();
    let mut router = Router::new(&config);

    // The floors, from the same object, in the same namespace.
    let mut floors = EbpfLoader::new()
        .load(router_user::ebpf::program_bytes())
        .unwrap_or_else(|err| fail(&format!("load (needs root): {err}")));
    for name in ["floor_pass", "floor_redirect"] {
        let program: &mut Xdp = floors.program_mut(name).unwrap().try_into().unwrap();
        program
            .load()
            .unwrap_or_else(|err| fail(&format!("{name}: {err}")));
    }
    let mut ports: DevMap<_> = floors.take_map("FLOOR_PORTS").unwrap().try_into().unwrap();
    let be0 = router_user::netif::lookup("be0").unwrap();
    ports.set(0, be0.ifindex, None, 0).unwrap();

    let mut rows = Vec::new();
    for v6 in [false, true] {
        let family = if v6 { "IPv6" } else { "IPv4" };
        let (client, vip): (IpAddr, IpAddr) = if v6 {
            ("2001:db8:1::7".parse().unwrap(), VIP6.parse().unwrap())
        } else {
            ("198.18.1.7".parse().unwrap(), VIP4.parse().unwrap())
        };
        let udp = |payload: Vec<u8>| Datagram::new(client, vip, 40_001, 443, payload).frame();
        let paths: Vec<(&str, Vec<u8>)> = vec![
            (
                "short header, plaintext",
                udp(short_header(&mint(0, "0a01", 1))),
            ),
            (
                "short header, single-pass",
                udp(short_header(&mint(1, "000000a1", 2))),
            ),
            (
                "short header, four-pass (3 passes)",
                udp(short_header(&mint(2, "31441a", 3))),
            ),
            (
                "short header, four-pass (4 passes)",
                udp(short_header(&mint(3, "a1a1a1a1a1a1a1a1", 4))),
            ),
            (
                "Initial, client-chosen DCID (fallback hash)",
                udp(long_header(
                    v1::INITIAL,
                    QUIC_V1,
                    &[0xe3, 1, 2, 3, 4, 5, 6, 7],
                    &[9; 8],
                    1200,
                )),
            ),
            (
                "Initial, routable DCID (four-pass)",
                udp(long_header(
                    v1::INITIAL,
                    QUIC_V1,
                    &mint(2, "31441b", 5),
                    &[9; 8],
                    1200,
                )),
            ),
            ("non-QUIC UDP to a listener", udp(hex_dns())),
            (
                "UDP for no listener",
                Datagram::new(client, vip, 40_001, 8443, short_header(&mint(0, "0a01", 6))).frame(),
            ),
        ];
        let floor = udp(short_header(&mint(0, "0a01", 1)));
        let pass_ns = cost(
            floors
                .program_mut("floor_pass")
                .unwrap()
                .try_into()
                .unwrap(),
            &floor,
            &options,
        );
        let redirect_ns = cost(
            floors
                .program_mut("floor_redirect")
                .unwrap()
                .try_into()
                .unwrap(),
            &floor,
            &options,
        );
        rows.push((
            family,
            "floor: XDP_PASS program".to_owned(),
            pass_ns,
            pass_ns,
            redirect_ns,
        ));
        rows.push((
            family,
            "floor: parse Eth/IP/UDP + devmap redirect".to_owned(),
            redirect_ns,
            pass_ns,
            redirect_ns,
        ));
        for (name, packet) in paths {
            let program = router_user::ebpf::xdp_program(&mut router.ebpf).unwrap();
            let ns = cost(program, &packet, &options);
            rows.push((family, name.to_owned(), ns, pass_ns, redirect_ns));
        }
    }

    println!("| family | path | ns/packet | x XDP_PASS | x parse+redirect |");
    println!("|---|---|---:|---:|---:|");
    for (family, name, ns, pass, redirect) in &rows {
        println!(
            "| {family} | {name} | {ns:.1} | {:.2} | {:.2} |",
            ns / pass,
            ns / redirect
        );
    }
    if let Some(path) = &options.json {
        let entries: Vec<String> = rows
            .iter()
            .map(|(family, name, ns, pass, redirect)| {
                format!(
                    "{{\"family\":\"{family}\",\"path\":\"{name}\",\"ns_per_packet\":{ns:.2},\"vs_xdp_pass\":{:.3},\"vs_parse_redirect\":{:.3}}}",
                    ns / pass,
                    ns / redirect
                )
            })
            .collect();
        let json = format!(
            "{{\"repeat\":{},\"runs\":{},\"kernel_cost\":[{}]}}\n",
            options.repeat,
            options.runs,
            entries.join(",")
        );
        std::fs::write(path, json).unwrap_or_else(|err| fail(&format!("{path}: {err}")));
    }
}

/// A DNS query for example.com: UDP to the listener that is not QUIC.
fn hex_dns() -> Vec<u8> {
    hex::decode("12340100000100000000000003777777076578616d706c6503636f6d0000010001").unwrap()
}
