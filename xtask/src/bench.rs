//! `cargo xtask bench [--quick]`: builds in release mode and runs the benchmark (tests crate,
//! `src/bin/bench/`), which writes bench/results.json, results.md and chart.svg at the
//! workspace root and prints the Markdown tables; then puts the tables into the README's
//! Benchmarks section, between its markers. Needs root.

use std::{fs, process::Command};

use anyhow::{Context as _, bail};

use crate::run;

const BEGIN: &str = "<!-- bench:begin -->\n";
const END: &str = "<!-- bench:end -->";

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
    let readme_path = run::workspace_root().join("README.md");
    let readme = fs::read_to_string(&readme_path).context("README.md")?;
    let (Some(begin), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        bail!("README.md has no {BEGIN:?} ... {END:?} block for the results");
    };
    let updated = format!(
        "{}{BEGIN}{results}\n![benchmark chart](bench/chart.svg)\n{}",
        &readme[..begin],
        &readme[end..]
    );
    fs::write(&readme_path, updated).context("README.md")?;
    eprintln!("xtask: README.md's Benchmarks section now shows these results");
    Ok(())
}
