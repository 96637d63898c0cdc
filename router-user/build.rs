//! Builds the router's eBPF programs (router-ebpf) for the BPF target with aya-build; the
//! binary lands in OUT_DIR and is embedded by the library (`ebpf::program_bytes`).

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let root_dir =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join("../router-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "router-ebpf",
            root_dir: root_dir.to_str().context("a UTF-8 path")?,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the XDP program failed; `cargo xtask test` (or `cargo xtask provision`) \
         installs nightly's rust-src and bpf-linker",
    )
}
