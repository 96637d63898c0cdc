//! Bad input to the command line that must neither hang, panic nor read without bound: every
//! case one line on stderr and exit status 2, in bounded time.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use integration_tests::process;

fn assert_bad_input(args: &[&str], needle: &str) {
    process::assert_bad_input(Path::new(env!("CARGO_BIN_EXE_quic-router")), args, needle);
}

fn fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    path
}

#[test]
fn stats_refuses_a_watch_interval_out_of_range() {
    for interval in ["1e30", "0", "-1", "NaN", "inf", "0.01", "86401"] {
        assert_bad_input(
            &["stats", "--iface", "lo", &format!("--watch={interval}")],
            "--watch takes 0.1 to 86400 seconds",
        );
    }
}

#[test]
fn fifos_devices_and_directories_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let config_fifo = fifo(dir.path(), "router.toml");
    let key_fifo = fifo(dir.path(), "lb.key");
    let capture_fifo = fifo(dir.path(), "capture.pcap");
    let (config_fifo, key_fifo, capture_fifo) = (
        config_fifo.to_str().unwrap(),
        key_fifo.to_str().unwrap(),
        capture_fifo.to_str().unwrap(),
    );
    let valid = dir.path().join("valid.toml");
    std::fs::write(
        &valid,
        "[[listener]]\naddress = \"198.18.0.10\"\nport = 443\n",
    )
    .unwrap();
    let valid = valid.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["explain", "--config", config_fifo, "--packet", "00"],
            "is not a regular file (a FIFO)",
        ),
        (
            vec!["explain", "--config", "/dev/zero", "--packet", "00"],
            "is not a regular file (a character device)",
        ),
        (
            vec!["explain", "--config", "/tmp", "--packet", "00"],
            "is not a regular file (a directory)",
        ),
        (
            vec!["explain", "--config", valid, "--pcap", capture_fifo],
            "is not a regular file (a FIFO)",
        ),
        (
            vec!["explain", "--config", valid, "--pcap", "/dev/zero"],
            "is not a regular file (a character device)",
        ),
        (
            vec![
                "cid",
                "decode",
                "--server-id-len",
                "3",
                "--nonce-len",
                "4",
                "--key-file",
                key_fifo,
                "0767947d29be054a",
            ],
            "is not a regular file (a FIFO)",
        ),
    ] {
        assert_bad_input(&args, needle);
    }
}

#[test]
fn an_oversized_config_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.toml");
    // Sparse: 64 MiB and one octet, almost no disk.
    let file = std::fs::File::create(&path).unwrap();
    file.set_len((64 << 20) + 1).unwrap();
    assert_bad_input(
        &[
            "explain",
            "--config",
            path.to_str().unwrap(),
            "--packet",
            "00",
        ],
        "is larger than 67108864 octets",
    );
}

#[test]
fn commands_for_a_router_that_is_not_there_are_bad_input() {
    // No router runs on loopback in this namespace.
    assert_bad_input(&["stats", "--iface", "lo"], "no router is attached to lo");
    assert_bad_input(
        &["backend", "list", "--iface", "lo"],
        "no router state for lo",
    );
    assert_bad_input(
        &["reload", "--iface", "lo"],
        "no controller is running for lo",
    );
    assert_bad_input(
        &["backend", "drain", "--iface", "lo", "alpha"],
        "no controller is running for lo",
    );
    assert_bad_input(&["status", "--iface", "lo"], "no router is attached to lo");
}

#[test]
fn interface_names_are_checked_before_anything_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        "[[listener]]\naddress = \"198.18.0.10\"\nport = 443\n",
    )
    .unwrap();
    for iface in ["a/b", "..", "a b", "x:1", "sixteen-chars-xx"] {
        for command in ["run", "status", "stats", "detach"] {
            let mut args = vec![command, "--iface", iface];
            if command == "run" {
                args.extend(["--config", config.to_str().unwrap()]);
            }
            assert_bad_input(&args, "is not an interface name");
        }
    }
}
