//! `cargo xtask demo`: builds the router and the demo, then runs the demo (tests crate,
//! `src/bin/demo.rs`): a client, the router and three quinn backends in network namespaces,
//! short forms of the end-to-end scenarios, and a report. Needs root.

use std::process::Command;

use crate::run;

pub fn run() -> anyhow::Result<()> {
    let target = run::build_release_binaries()?;
    run::status(Command::new(target.join("demo")).arg(target.join("quic-router")))
}
