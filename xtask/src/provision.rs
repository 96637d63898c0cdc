//! Makes a fresh machine ready: nightly's rust-src, bpf-linker built against nightly's LLVM,
//! the Debian packages the tests use, and aioquic (the tests' HTTP/3 client) in a virtual
//! environment of the project's own. Costs well under a second when all is there.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::run;

/// bpf-linker 0.13 is the last release that builds with this machine's stable rustc.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// ethtool: the namespace tests switch veth offloads (see platform notes); systemd: the tests
/// check the shipped unit file with `systemd-analyze verify`; python3-venv: Debian's python3
/// makes virtual environments only with it (aioquic's); clang-16 and libbpf-dev: the
/// benchmark's C yardstick floor (bench-ebpf/c/floor.c); bird2: the fleet's BGP daemon.
const DEBIAN_PACKAGES: &[&str] = &[
    "ethtool",
    "systemd",
    "python3-venv",
    "clang-16",
    "libbpf-dev",
    "bird2",
];
/// aioquic from PyPI: the HTTP/3 client the interop tests run against the project's servers.
const AIOQUIC_VERSION: &str = "1.7.2";
/// What aioquic 1.7.2 installed with it (2026-11-26), pinned: a new release of any of them
/// cannot change the tests' client.
const AIOQUIC_DEPENDENCIES: &[&str] = &[
    "attrs==26.1.0",
    "certifi==2026.10.19.post1",
    "cffi==2.1.1",
    "cryptography==50.0.2",
    "pycparser==3.12",
    "pylsqpack==1.0.0",
    "pyOpenSSL==26.4.0",
    "service-identity==26.1.0",
    "typing_extensions==4.16.0",
];
/// aioquic's virtual environment, relative to the workspace root. The tests crate finds the
/// interpreter there too (tests/src/aioquic.rs): change both together.
const AIOQUIC_VENV: &str = "target/venv/aioquic";

pub fn provision() -> anyhow::Result<()> {
    let started = Instant::now();
    nightly_rust_src()?;
    bpf_linker()?;
    debian_packages()?;
    aioquic_venv()?;
    eprintln!(
        "xtask: provisioned in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// aya-build compiles the XDP program with `-Z build-std=core`, which needs rust-src.
fn nightly_rust_src() -> anyhow::Result<()> {
    let list = run::output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if !list.status.success() {
        eprintln!("xtask: installing the nightly toolchain");
        return run::status(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))
        .context("the XDP program needs a nightly toolchain with rust-src");
    }
    if !String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|line| line.starts_with("rust-src"))
    {
        run::status(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))
        .context("cannot add rust-src to the nightly toolchain")?;
    }
    Ok(())
}

/// The LLVM shared library that nightly's rustc ships.
struct NightlyLlvm {
    /// e.g. `libLLVM.so.22.1-rust-1.97.0-nightly`
    soname: String,
    /// the file itself, in nightly's sysroot
    library: PathBuf,
    /// e.g. `22`, for bpf-linker's `llvm-22` feature
    major: String,
}

fn nightly_llvm() -> anyhow::Result<NightlyLlvm> {
    let rustc =
        |arg: &str| run::stdout(Command::new("rustup").args(["run", "nightly", "rustc", arg]));
    let sysroot = PathBuf::from(rustc("--print=sysroot")?.trim());
    let version = rustc("-vV")?;
    let major = version
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("nightly rustc does not report its LLVM version")?
        .to_owned();
    let lib = sysroot.join("lib");
    let soname = fs::read_dir(&lib)
        .with_context(|| format!("cannot list {}", lib.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .find(|name| name.starts_with("libLLVM.so."))
        .with_context(|| {
            format!(
                "no libLLVM.so.* in {}: cannot build bpf-linker",
                lib.display()
            )
        })?;
    Ok(NightlyLlvm {
        library: lib.join(&soname),
        soname,
        major,
    })
}

fn home() -> anyhow::Result<PathBuf> {
    env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set")
}

fn cache_dir() -> anyhow::Result<PathBuf> {
    let base = match env::var_os("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => home()?.join(".cache"),
    };
    Ok(base.join("quic-router"))
}

fn cargo_bin_dir() -> anyhow::Result<PathBuf> {
    let cargo_home = match env::var_os("CARGO_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => home()?.join(".cargo"),
    };
    Ok(cargo_home.join("bin"))
}

/// bpf-linker links against LLVM and must use the same LLVM as nightly's rustc. It has no
/// prebuilt binary here, so it is built from crates.io against nightly's libLLVM (about 45 s),
/// and rebuilt when a nightly update changes that library.
fn bpf_linker() -> anyhow::Result<()> {
    let llvm = nightly_llvm()?;
    let cache = cache_dir()?;
    let stamp = cache.join("bpf-linker.stamp");
    let wanted = format!("bpf-linker {BPF_LINKER_VERSION} against {}\n", llvm.soname);
    let bin_dir = cargo_bin_dir()?;
    let linker = bin_dir.join("bpf-linker");

    let runs = run::output(Command::new(&linker).arg("--version"))
        .map(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION)
        })
        .unwrap_or(false);
    let stamped = fs::read_to_string(&stamp).is_ok_and(|have| have == wanted);
    if !(runs && stamped) {
        if linker.exists() {
            eprintln!(
                "xtask: {} was not built against nightly's {}; rebuilding it",
                linker.display(),
                llvm.soname
            );
        }
        build_bpf_linker(&llvm, &cache)?;
        fs::write(&stamp, &wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    }

    let on_path =
        env::var_os("PATH").is_some_and(|path| env::split_paths(&path).any(|dir| dir == bin_dir));
    if !on_path {
        bail!(
            "{} is not on PATH; aya-build finds bpf-linker there: add it to PATH",
            bin_dir.display()
        );
    }
    Ok(())
}

fn build_bpf_linker(llvm: &NightlyLlvm, cache: &Path) -> anyhow::Result<()> {
    // bpf-linker's build links `-lLLVM` from $LLVM_PREFIX/lib and keeps that directory as its
    // RUNPATH, where the binary then looks for the full soname: provide both names.
    let prefix = cache.join("llvm").join(&llvm.soname);
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("cannot create {}", lib.display()))?;
    for name in ["libLLVM.so", llvm.soname.as_str()] {
        let link = lib.join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm.library, &link).with_context(|| {
            format!(
                "cannot link {} to {}",
                link.display(),
                llvm.library.display()
            )
        })?;
    }
    let features = format!("llvm-{}", llvm.major);
    run::status(
        Command::new(env!("CARGO"))
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--force",
            ])
            .args(["--no-default-features", "--features", &features])
            .env("LLVM_PREFIX", &prefix),
    )
    .with_context(|| {
        format!(
            "cannot build bpf-linker {BPF_LINKER_VERSION} against {} (needs crates.io)",
            llvm.soname
        )
    })
}

fn debian_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| {
            run::stdout(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
                .map_or(true, |status| status.trim() != "install ok installed")
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let apt = |args: &[&str]| {
        run::status(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    apt(&["update", "-qq"])
        .and_then(|()| {
            apt(&[
                &["install", "-y", "-qq", "--no-install-recommends"],
                &missing[..],
            ]
            .concat())
        })
        .with_context(|| {
            format!(
                "cannot install Debian packages {} (needs root and Debian's mirrors)",
                missing.join(", ")
            )
        })
}

/// aioquic in a virtual environment of the project's own ([`AIOQUIC_VENV`], made with the
/// `python3` on PATH), so that no system Python package is touched. Made, or remade, only
/// when its interpreter does not run or it holds another aioquic than [`AIOQUIC_VERSION`]; the
/// check reads one directory, without starting Python.
fn aioquic_venv() -> anyhow::Result<()> {
    let venv = run::workspace_root().join(AIOQUIC_VENV);
    let python = venv.join("bin/python3");
    // `exists` follows the interpreter's symlink: false when the Python it was made from is gone.
    if python.exists() && installed_aioquic(&venv).as_deref() == Some(AIOQUIC_VERSION) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing aioquic {AIOQUIC_VERSION} into {}",
        venv.display()
    );
    run::status(
        Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg("--clear")
            .arg(&venv),
    )
    .with_context(|| {
        format!(
            "cannot make a virtual environment at {} (needs python3 with its venv module)",
            venv.display()
        )
    })?;
    let requirement = format!("aioquic=={AIOQUIC_VERSION}");
    run::status(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &requirement,
            ])
            .args(AIOQUIC_DEPENDENCIES),
    )
    .with_context(|| {
        format!(
            "cannot install {requirement} into {} (needs PyPI)",
            venv.display()
        )
    })?;
    match installed_aioquic(&venv) {
        Some(version) if version == AIOQUIC_VERSION => Ok(()),
        found => bail!(
            "pip installed {requirement} into {}, but the environment holds {}",
            venv.display(),
            found.map_or("no aioquic".to_owned(), |v| format!("aioquic {v}"))
        ),
    }
}

/// The version of aioquic in `venv`, from its `aioquic-VERSION.dist-info` directory.
fn installed_aioquic(venv: &Path) -> Option<String> {
    let lib = fs::read_dir(venv.join("lib")).ok()?;
    lib.filter_map(|python| fs::read_dir(python.ok()?.path().join("site-packages")).ok())
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .find_map(|name| {
            name.strip_prefix("aioquic-")?
                .strip_suffix(".dist-info")
                .map(str::to_owned)
        })
}
