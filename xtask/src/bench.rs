//! `cargo xtask bench [--quick]`: builds in release mode and runs the benchmark (tests crate,
//! `src/bin/bench/`), which writes bench/results.json, results.md and chart.svg at the
//! workspace root and prints the Markdown tables; then puts the tables and the chart into
//! docs/benchmarks.md, between its markers. Needs root.

use std::{fs, process::Command};

use anyhow::{Context as _, bail};

use crate::run;

/// The page that shows the latest results, relative to the workspace root.
const PAGE: &str = "docs/benchmarks.md";
const BEGIN: &str = "<!-- bench:begin -->\n";
const END: &str = "<!-- bench:end -->";
/// The chart, as linked from [`PAGE`].
const CHART: &str = "![benchmark chart](../bench/chart.svg)";

pub fn run(quick: bool) -> anyhow::Result<()> {
    let target = run::build_release_binaries()?;
    let out = run::workspace_root().join("bench");
    let mut command = Command::new(target.join("bench"));
    command.arg("--out").arg(&out);
    if quick {
        command.arg("--quick");
    }
    run::status(&mut command)?;

    let results = fs::read_to_string(out.join("results.md")).context("bench/results.md")?;
    let page_path = run::workspace_root().join(PAGE);
    let page = fs::read_to_string(&page_path).context(PAGE)?;
    let (Some(begin), Some(end)) = (page.find(BEGIN), page.find(END)) else {
        bail!("{PAGE} has no {BEGIN:?} ... {END:?} block for the results");
    };
    if end < begin {
        bail!("{PAGE}: {END:?} comes before {BEGIN:?}");
    }
    let updated = format!(
        "{}{BEGIN}{results}\n{CHART}\n{}",
        &page[..begin],
        &page[end..]
    );
    fs::write(&page_path, updated).context(PAGE)?;
    eprintln!("xtask: {PAGE} now shows these results");
    Ok(())
}
