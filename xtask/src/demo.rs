//! `cargo xtask demo`: until the end-to-end topology lands, the demo shows what the router
//! decodes: it mints connection IDs for three servers in each QUIC-LB mode with
//! `quic-router cid encode` and decodes them back with `quic-router cid decode`.

use std::{
    fs,
    io::Read as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};

use crate::run;

/// A directory removed on drop, also when the demo fails half-way.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

struct Layout {
    name: &'static str,
    server_id_len: usize,
    nonce_len: usize,
    keyed: bool,
}

const LAYOUTS: &[Layout] = &[
    Layout {
        name: "plaintext",
        server_id_len: 2,
        nonce_len: 6,
        keyed: false,
    },
    Layout {
        name: "single-pass",
        server_id_len: 4,
        nonce_len: 12,
        keyed: true,
    },
    Layout {
        name: "four-pass (3 passes to decode)",
        server_id_len: 3,
        nonce_len: 5,
        keyed: true,
    },
    Layout {
        name: "four-pass (4 passes to decode)",
        server_id_len: 8,
        nonce_len: 4,
        keyed: true,
    },
];

pub fn run() -> anyhow::Result<()> {
    run::cargo(&["build", "--release", "--package", "router-user"])?;
    let binary = run::workspace_root().join("target/release/quic-router");
    let dir =
        TempDir(std::env::temp_dir().join(format!("quic-router-demo-{}", std::process::id())));
    fs::create_dir_all(&dir.0).with_context(|| format!("cannot create {}", dir.0.display()))?;
    let key_file = write_random_key(&dir.0)?;
    let key_file = key_file.to_str().context("temporary path is not UTF-8")?;

    println!(
        "\nQUIC-LB connection IDs minted and decoded by quic-router (key in a 0600 file, never shown)\n"
    );
    println!("| mode | server ID | connection ID | decoded server ID | nonce |");
    println!("|---|---|---|---|---|");
    for (index, layout) in LAYOUTS.iter().enumerate() {
        for server in 1..=3u8 {
            let server_id = hex_id(server, layout.server_id_len);
            let mut encode = Command::new(&binary);
            encode.args(["cid", "encode", "--config-rotation", &index.to_string()]);
            encode.args([
                "--server-id",
                &server_id,
                "--nonce-len",
                &layout.nonce_len.to_string(),
            ]);
            let mut decode = Command::new(&binary);
            decode.args([
                "cid",
                "decode",
                "--server-id-len",
                &layout.server_id_len.to_string(),
            ]);
            decode.args(["--nonce-len", &layout.nonce_len.to_string()]);
            if layout.keyed {
                encode.args(["--key-file", key_file]);
                decode.args(["--key-file", key_file]);
            }
            let cid = run::stdout(&mut encode)?.trim().to_owned();
            let decoded = run::stdout(decode.arg(&cid))?;
            let field = |name: &str| {
                decoded
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .map(str::to_owned)
                    .with_context(|| format!("no {name} in {decoded:?}"))
            };
            let (decoded_sid, nonce) = (field("server_id")?, field("nonce")?);
            ensure!(
                decoded_sid == server_id,
                "{}: decoded {decoded_sid}, minted {server_id}",
                layout.name
            );
            println!(
                "| {} | {server_id} | {cid} | {decoded_sid} | {nonce} |",
                layout.name
            );
        }
    }

    let unroutable = "e7c4605e4504cc4f";
    let out = run::output(Command::new(&binary).args([
        "cid",
        "decode",
        "--server-id-len",
        "3",
        "--nonce-len",
        "4",
        unroutable,
    ]))?;
    if out.status.code() != Some(2) {
        bail!(
            "decoding an unroutable CID should exit with status 2, got {}",
            out.status
        );
    }
    println!(
        "\nAn unroutable CID (codepoint 0b111), {unroutable}: exit status 2, {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// `server` in the last octet of a `len`-octet server ID, as hex.
fn hex_id(server: u8, len: usize) -> String {
    format!("{}{server:02x}", "00".repeat(len - 1))
}

fn write_random_key(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut key = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut key))
        .context("cannot read /dev/urandom")?;
    let path = dir.join("quic-lb.key");
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, hex.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    ensure!(
        fs::metadata(&path)?.permissions().mode() & 0o077 == 0,
        "key file is readable by others"
    );
    Ok(path)
}
