//! `cargo xtask`: build, provisioning, demo, test and bench tasks for quic-router.
//!
//! Every task provisions first (nightly's rust-src, a bpf-linker that runs against nightly's
//! LLVM, the Debian packages the tests use), so the README's commands work on a fresh machine.

mod bench;
mod demo;
mod provision;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent; seconds when all is there).
    Provision,
    /// Build the router (XDP program and `quic-router`) in release mode.
    Build,
    /// Formatting, clippy (host and eBPF crates) and every test. Needs root.
    Test,
    /// The main job on a built-in topology.
    Demo {
        /// Three routers behind ECMP and BGP (BIRD 2): failures, drains and 300 live
        /// connections.
        #[arg(long)]
        fleet: bool,
    },
    /// Benchmarks: per-packet cost in the kernel, forwarding rate end to end, control
    /// plane. Writes bench/results.json, results.md, summary.md and chart.svg, and puts
    /// them into docs/benchmarks.md and the README. Needs root.
    Bench {
        /// A reduced set, in under two minutes.
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = provision::provision().and_then(|()| match cli.task {
        Task::Provision => Ok(()),
        Task::Build => run::cargo(&["build", "--release", "--package", "router-user"]),
        Task::Test => test(),
        Task::Demo { fleet } => demo::run(fleet),
        Task::Bench { quick } => bench::run(quick),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The host crates: every member but the eBPF programs, which only build for the BPF target.
const HOST_CRATES: &[&str] = &[
    "--workspace",
    "--exclude",
    "router-ebpf",
    "--exclude",
    "bench-ebpf",
];

fn test() -> anyhow::Result<()> {
    run::cargo(&["fmt", "--all", "--check"])?;
    run::cargo(
        &[
            &["clippy", "--all-targets"],
            HOST_CRATES,
            &["--", "-D", "warnings"],
        ]
        .concat(),
    )?;
    run::nightly_cargo(&[
        "clippy",
        "--package",
        "router-ebpf",
        "--package",
        "bench-ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ])?;
    run::cargo(&[&["test"], HOST_CRATES].concat())
}
