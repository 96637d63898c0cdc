//! The shipped systemd unit: systemd itself finds nothing to say about it, it raises the
//! descriptor limit the controller's servers are sized for, and the operating guide shows it.

use std::process::Command;

const UNIT: &str = include_str!("../../config/quic-router@.service");
const OPERATING: &str = include_str!("../../docs/operating.md");

#[test]
fn systemd_verifies_the_unit_without_a_word() {
    assert!(UNIT.contains("\nLimitNOFILE=4096\n"), "{UNIT}");
    let dir = tempfile::tempdir().unwrap();
    // An instance, with the binary this build made where the unit expects it.
    let unit = dir.path().join("quic-router@eth0.service");
    std::fs::write(
        &unit,
        UNIT.replace(
            "/usr/local/sbin/quic-router",
            env!("CARGO_BIN_EXE_quic-router"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian's systemd; `cargo xtask test` installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.trim().is_empty(), "systemd-analyze says: {stderr}");
}

#[test]
fn the_operating_guide_shows_the_unit_file() {
    assert!(
        OPERATING.contains(UNIT),
        "docs/operating.md's unit differs from config/quic-router@.service"
    );
}
