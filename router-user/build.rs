//! Builds the XDP program (router-ebpf) for the BPF target with aya-build; the binary lands in
//! OUT_DIR and is embedded by `router_user::ebpf::program_bytes`.

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|package| package.name.as_str() == "router-ebpf")
        .ok_or_else(|| anyhow!("router-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the XDP program failed; `cargo xtask test` (or `cargo xtask provision`) \
         installs nightly's rust-src and bpf-linker",
    )
}
