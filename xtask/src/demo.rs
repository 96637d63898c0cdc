//! `cargo xtask demo`: builds the router and the demo, then runs the demo (tests crate,
//! `src/bin/demo.rs`): a client, the router and three quinn backends in network namespaces,
//! short forms of the end-to-end scenarios, and a report; with `--fleet`, three routers behind
//! ECMP and BGP. Needs root.

use std::process::Command;

use crate::run;

pub fn run(fleet: bool) -> anyhow::Result<()> {
    let target = run::build_release_binaries()?;
    let mut demo = Command::new(target.join("demo"));
    demo.arg(target.join("quic-router"));
    if fleet {
        demo.arg("--fleet");
    }
    run::status(&mut demo)
}
