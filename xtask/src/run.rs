//! Running commands with the context an error message needs.

use std::process::{Command, Output};

use anyhow::{Context as _, bail};

/// Runs `cargo <args>` from the workspace root, streaming its output.
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let mut command = Command::new(env!("CARGO"));
    command.args(args).current_dir(workspace_root());
    status(&mut command)
}

/// Builds `quic-router` and the tests crate's programs (demo, bench) in release mode; returns
/// the directory they are in.
pub fn build_release_binaries() -> anyhow::Result<std::path::PathBuf> {
    cargo(&[
        "build",
        "--release",
        "--package",
        "router-user",
        "--package",
        "integration-tests",
        "--bins",
    ])?;
    Ok(workspace_root().join("target/release"))
}

/// Runs `cargo <args>` with the nightly toolchain (for the BPF target).
pub fn nightly_cargo(args: &[&str]) -> anyhow::Result<()> {
    let mut command = Command::new("rustup");
    command
        .args(["run", "nightly", "cargo"])
        .args(args)
        .current_dir(workspace_root());
    status(&mut command)
}

/// Runs `command`, streaming its output; an error when it fails.
pub fn status(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: {}", show(command));
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", show(command)))?;
    if !status.success() {
        bail!("{} failed ({status})", show(command));
    }
    Ok(())
}

/// Runs `command` and returns its output, whether or not it succeeded.
pub fn output(command: &mut Command) -> anyhow::Result<Output> {
    command
        .output()
        .with_context(|| format!("cannot run {}", show(command)))
}

/// Runs `command` and returns its stdout; an error with its stderr when it fails.
pub fn stdout(command: &mut Command) -> anyhow::Result<String> {
    let out = output(command)?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            show(command),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("{} printed non-UTF-8", show(command)))
}

pub fn workspace_root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
}

fn show(command: &Command) -> String {
    let mut shown = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}
