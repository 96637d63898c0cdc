//! The routing digest: equal for configs that send every packet to the same backend, whatever
//! each router's own means of reaching the backends, and different for any change to what
//! decides a packet's backend.

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path};

use router_user::config;

const EXAMPLE: &str = include_str!("../../config/router.example.toml");

/// The digest of `text` as a config file, next to key files with `key`.
fn digest(dir: &Path, text: &str, key: &str) -> String {
    fs::create_dir_all(dir.join("keys")).unwrap();
    let key_file = dir.join("keys/cr1.key");
    fs::write(&key_file, format!("{key}\n")).unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.join("router.toml");
    fs::write(&path, text).unwrap();
    config::load(&path)
        .unwrap_or_else(|err| panic!("{err}"))
        .routing_digest()
}

const KEY: &str = "8f95f09245765f80256934e50c66207f";

#[test]
fn what_each_router_has_of_its_own_leaves_the_digest_alone() {
    let dir = tempfile::tempdir().unwrap();
    let base = digest(dir.path(), EXAMPLE, KEY);
    assert_eq!(base.len(), 32);
    assert!(base.chars().all(|c| c.is_ascii_hexdigit()));
    for (what, text, key) in [
        (
            "an interface",
            EXAMPLE.replace("interface = \"eth1\"", "interface = \"ens5\""),
            KEY,
        ),
        (
            "a next hop",
            EXAMPLE.replace("02:00:00:00:0a:01", "02:00:00:00:0a:99"),
            KEY,
        ),
        (
            "the outer sources",
            EXAMPLE.replace("198.18.100.0/28", "198.18.101.0/28"),
            KEY,
        ),
        (
            "the map sizes",
            EXAMPLE.replace("backends = 1024", "backends = 2048"),
            KEY,
        ),
        (
            "the key",
            EXAMPLE.to_owned(),
            "fdf726a9893ec05c0632d3956680baf0",
        ),
    ] {
        assert!(
            text != EXAMPLE || key != KEY,
            "{what}: the example changed nothing"
        );
        assert_eq!(digest(dir.path(), &text, key), base, "{what}");
    }
}

#[test]
fn what_decides_a_packets_backend_changes_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let base = digest(dir.path(), EXAMPLE, KEY);
    for (what, text) in [
        ("a weight", EXAMPLE.replace("weight = 2", "weight = 3")),
        (
            "a state",
            EXAMPLE.replace("state = \"draining\"", "state = \"active\""),
        ),
        ("a server ID", EXAMPLE.replace("\"0a02\"", "\"0a12\"")),
        (
            "a backend's name",
            EXAMPLE.replace("\"gamma\"", "\"gamma2\""),
        ),
        (
            "a nonce length",
            EXAMPLE.replacen("nonce_len = 6", "nonce_len = 7", 1),
        ),
    ] {
        assert_ne!(text, EXAMPLE, "{what}: the example changed nothing");
        assert_ne!(digest(dir.path(), &text, KEY), base, "{what}");
    }
}
