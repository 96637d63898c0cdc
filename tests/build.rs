//! Builds the benchmark's eBPF programs (bench-ebpf) for the BPF target with aya-build, and
//! the C yardstick floor (bench-ebpf/c/floor.c) with clang; both land in OUT_DIR and are
//! embedded by `integration_tests::bench_program_bytes` and `c_floor_bytes`.

use std::process::Command;

use anyhow::{Context as _, bail};

/// The clang that builds the C floor (Debian's clang-16, which `cargo xtask provision`
/// installs).
const CLANG: &str = "clang-16";

/// Compiles the C floor for the BPF target into OUT_DIR/c-floor.o.
fn c_floor() -> anyhow::Result<()> {
    let source =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join("../bench-ebpf/c/floor.c");
    println!("cargo::rerun-if-changed={}", source.display());
    let out = std::path::Path::new(&std::env::var("OUT_DIR")?).join("c-floor.o");
    // The kernel's UAPI headers include <asm/types.h>, which Debian keeps per architecture.
    let multiarch = Command::new("gcc")
        .arg("-print-multiarch")
        .output()
        .context("gcc -print-multiarch")?;
    let multiarch = String::from_utf8(multiarch.stdout)?;
    let status = Command::new(CLANG)
        .args(["-O2", "-g", "-target", "bpf", "-c"])
        .arg(format!("-I/usr/include/{}", multiarch.trim()))
        .arg(&source)
        .arg("-o")
        .arg(&out)
        .status()
        .with_context(|| {
            format!("cannot run {CLANG} for the C floor; `cargo xtask provision` installs it")
        })?;
    if !status.success() {
        bail!("{CLANG} could not build {} ({status})", source.display());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    c_floor()?;
    let root_dir =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join("../bench-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "bench-ebpf",
            root_dir: root_dir.to_str().context("a UTF-8 path")?,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the benchmark's programs failed; `cargo xtask provision` installs what they need",
    )
}
