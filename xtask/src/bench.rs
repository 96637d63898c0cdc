//! `cargo xtask bench [--quick]`: builds in release mode and runs the benchmark (tests crate,
//! `src/bin/bench/`), which writes bench/results.json, results.md, summary.md and chart.svg
//! at the workspace root and prints the Markdown tables; then puts the tables and the chart
//! into docs/benchmarks.md, and the summary into the README, between their markers. Needs
//! root.

use std::{fs, process::Command};

use anyhow::{Context as _, bail};

use crate::run;

/// The page that shows the latest results, relative to the workspace root.
const PAGE: &str = "docs/benchmarks.md";
const BEGIN: &str = "<!-- bench:begin -->\n";
const END: &str = "<!-- bench:end -->";
/// The chart, as linked from [`PAGE`].
const CHART: &str = "![benchmark chart](../bench/chart.svg)";
/// The README, which shows the summary.
const README: &str = "README.md";
const SUMMARY_BEGIN: &str = "<!-- bench-summary:begin -->\n";
const SUMMARY_END: &str = "<!-- bench-summary:end -->";
/// The chart, as linked from the README.
const README_CHART: &str = "![benchmark chart](bench/chart.svg)";

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
    replace_between(PAGE, BEGIN, END, &format!("{results}\n{CHART}\n"))?;
    let summary = fs::read_to_string(out.join("summary.md")).context("bench/summary.md")?;
    replace_between(
        README,
        SUMMARY_BEGIN,
        SUMMARY_END,
        &format!("{summary}\n{README_CHART}\n"),
    )?;
    eprintln!("xtask: {PAGE} and {README} now show these results");
    Ok(())
}

/// Replaces what lies between `begin` and `end` in the file `page` (relative to the
/// workspace root) with `content`.
fn replace_between(page: &str, begin: &str, end: &str, content: &str) -> anyhow::Result<()> {
    let path = run::workspace_root().join(page);
    let text = fs::read_to_string(&path).context(page.to_owned())?;
    let (Some(from), Some(to)) = (text.find(begin), text.find(end)) else {
        bail!("{page} has no {begin:?} ... {end:?} block for the results");
    };
    if to < from {
        bail!("{page}: {end:?} comes before {begin:?}");
    }
    let updated = format!("{}{begin}{content}{}", &text[..from], &text[to..]);
    fs::write(&path, updated).context(page.to_owned())
}
