//! Builds the benchmark's eBPF programs (bench-ebpf) for the BPF target with aya-build; the
//! binary lands in OUT_DIR and is embedded by `integration_tests::bench_program_bytes`.

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
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
