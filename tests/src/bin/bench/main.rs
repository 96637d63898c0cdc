//! `cargo xtask bench`: how fast the router is, beside floors and alternatives measured in the
//! same run. Per-packet cost in the kernel (BPF_PROG_TEST_RUN), the CID cache per CPU or
//! common under two CPUs, forwarding rate end to end through network namespaces, and control-plane
//! timings. Writes results.json, results.md and
//! chart.svg; targets are reported, never asserted. Needs root.
//!
//! Usage: bench [--quick] [--out DIR]

mod cid_cache;
mod control;
mod delivery;
mod forwarding;
mod harness;
mod kernel;
mod local;
mod production;
mod report;

use std::path::PathBuf;

struct Options {
    quick: bool,
    out: PathBuf,
}

fn options() -> Options {
    let mut options = Options {
        quick: false,
        out: PathBuf::from("bench"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--out" => {
                options.out = args
                    .next()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| fail("--out needs a directory"))
            }
            other => fail(&format!(
                "unknown argument {other} (usage: bench [--quick] [--out DIR])"
            )),
        }
    }
    options
}

fn fail(message: &str) -> ! {
    eprintln!("bench: {message}");
    std::process::exit(2);
}

fn main() {
    let options = options();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        fail("needs root (BPF programs, network namespaces)");
    }
    let kernel_settings = kernel::Settings {
        repeat: 1_000_000,
        runs: if options.quick { 5 } else { 7 },
    };
    let forwarding_settings = forwarding::Settings {
        seconds: if options.quick { 1.0 } else { 3.0 },
        max_packets: 60_000_000,
        rounds: if options.quick { 1 } else { 3 },
    };
    let cid_cache_settings = cid_cache::Settings {
        rounds: if options.quick { 3 } else { 5 },
        repeat: 1_000_000,
        connections: if options.quick { 10_000 } else { 30_000 },
        new_cids: if options.quick { 40_000 } else { 100_000 },
    };
    let production_settings = production::Settings {
        calls: if options.quick { 20_000 } else { 100_000 },
        rounds: if options.quick { 5 } else { 21 },
        connections: if options.quick { 100_000 } else { 1_000_000 },
        cached_connections: if options.quick { 10_000 } else { 30_000 },
    };
    let control_settings = control::Settings {
        server_ids: vec![10_000, 100_000],
        runs: if options.quick { 1 } else { 3 },
    };

    eprintln!("bench: per-packet cost in the kernel");
    let kernel = kernel::run(&kernel_settings);
    eprintln!(
        "bench: per-packet cost as production sees it (one packet a call, many connections, attacks)"
    );
    let production = production::run(&production_settings);
    eprintln!("bench: the CID cache with both CPUs running the program");
    let cid_cache = cid_cache::run(&cid_cache_settings);
    eprintln!("bench: forwarding end to end");
    let forwarding = forwarding::run(&forwarding_settings, forwarding::Layout::OneForwardingCpu);
    eprintln!("bench: forwarding end to end, every CPU forwarding");
    let forwarding_every_cpu = forwarding::run(&forwarding_settings, forwarding::Layout::EveryCpu);
    eprintln!("bench: local delivery");
    let local = local::run(&forwarding_settings);
    eprintln!("bench: control plane");
    let control = control::run(&control_settings);

    let results = report::Results {
        machine: report::Machine::read(),
        settings: report::Settings {
            quick: options.quick,
            repeat: kernel_settings.repeat,
            runs: kernel_settings.runs,
            seconds: forwarding_settings.seconds,
            rounds: forwarding_settings.rounds,
        },
        kernel: &kernel.rows,
        programs: &kernel.programs,
        functions: &kernel.functions,
        production: &production,
        production_settings: &production_settings,
        cid_cache: &cid_cache,
        forwarding: &forwarding,
        forwarding_every_cpu: &forwarding_every_cpu,
        local: &local,
        control: &control,
    };
    match report::write(&options.out, &results) {
        Ok(summary) => println!("{summary}"),
        Err(err) => fail(&err),
    }
}
