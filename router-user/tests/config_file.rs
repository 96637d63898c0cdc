//! The router config file: the examples the documentation shows parse, and every kind of
//! error names the file, the line and the problem.

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path};

use router_user::config::{self, BackendState, Delivery, Reach};

const EXAMPLE: &str = include_str!("../../config/router.example.toml");

fn write_key(dir: &Path, mode: u32) {
    fs::create_dir_all(dir.join("keys")).unwrap();
    let key = dir.join("keys/cr1.key");
    fs::write(&key, "8f95f09245765f80256934e50c66207f\n").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_config_reference_shows_the_example_config() {
    let reference = include_str!("../../docs/config.md");
    assert!(
        reference.contains(&format!("```toml\n{EXAMPLE}```\n")),
        "docs/config.md's config example differs from config/router.example.toml"
    );
}

const LOCAL_EXAMPLE: &str = include_str!("../../config/router.local.example.toml");

#[test]
fn the_local_workers_page_shows_the_local_workers_example() {
    let page = include_str!("../../docs/local-workers.md");
    assert!(
        page.contains(&format!("```toml\n{LOCAL_EXAMPLE}```\n")),
        "docs/local-workers.md's example differs from config/router.local.example.toml"
    );
}

#[test]
fn the_local_workers_example_parses() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("keys")).unwrap();
    let key = dir.path().join("keys/cr0.key");
    fs::write(&key, "fdf726a9893ec05c0632d3956680baf0\n").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.path().join("router.toml");
    fs::write(&path, LOCAL_EXAMPLE).unwrap();
    let config = config::load(&path).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.backends.len(), 4);
    assert!(
        config
            .backends
            .iter()
            .all(|b| b.reach == Reach::LocalWorker)
    );
    assert_eq!(config.backends[2].state, BackendState::Draining);
}

#[test]
fn the_example_config_parses() {
    let dir = tempfile::tempdir().unwrap();
    write_key(dir.path(), 0o600);
    let path = dir.path().join("router.toml");
    fs::write(&path, EXAMPLE).unwrap();
    let config = config::load(&path).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.cid_configs.len(), 2);
    assert!(config.cid_configs[0].key.is_none() && config.cid_configs[1].key.is_some());
    assert_eq!(config.backends.len(), 5);
    assert_eq!(config.backends[1].weight, 2);
    assert_eq!(config.backends[2].state, BackendState::Draining);
    assert!(matches!(
        config.backends[3].reach,
        Reach::Host { delivery: Delivery::Gue { tunnel }, .. } if tunnel.to_string() == "198.18.50.4"
    ));
    assert!(matches!(
        config.backends[4].reach,
        Reach::Routed { delivery: Delivery::Ipip { tunnel } } if tunnel.to_string() == "2001:db8:50::5"
    ));
    assert_eq!(config.encapsulation.gue_port, Some(6080));
    assert_eq!(
        config.backends[0].server_ids,
        vec![(0, vec![0x0a, 0x01]), (1, vec![0xa0, 0, 1])]
    );
}

/// `EXAMPLE` with `from` replaced by `to`: the error must be `router.toml:LINE: ...needle`.
fn assert_error(from: &str, to: &str, line: usize, needle: &str) {
    assert!(EXAMPLE.contains(from), "the example lacks {from:?}");
    let dir = tempfile::tempdir().unwrap();
    write_key(dir.path(), 0o600);
    let path = dir.path().join("router.toml");
    fs::write(&path, EXAMPLE.replacen(from, to, 1)).unwrap();
    let message = config::load(&path).unwrap_err().to_string();
    let prefix = format!("{}:{line}: ", path.display());
    assert!(
        message.starts_with(&prefix),
        "{message:?} should start with {prefix:?}"
    );
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    assert!(!message.contains('\n'), "{message:?} is not one line");
}

#[test]
fn every_error_names_file_line_and_problem() {
    assert_error(
        "address = \"198.18.0.10\"",
        "address = \"198.18.0\"",
        5,
        "not an IP address",
    );
    assert_error(
        "port = 443\ninitial_routing",
        "port = 0\ninitial_routing",
        6,
        "port 0",
    );
    assert_error(
        "port = 443\ninitial_routing",
        "port = 70000\ninitial_routing",
        6,
        "",
    );
    assert_error(
        "address = \"2001:db8::10\"",
        "address = \"198.18.0.10\"",
        11,
        "given twice",
    );
    assert_error(
        "server_id_len = 2 ",
        "server_id_len = 0 ",
        18,
        "server ID length 0 is out of range",
    );
    assert_error(
        "nonce_len = 6 ",
        "nonce_len = 3 ",
        19,
        "nonce length 3 is out of range",
    );
    assert_error("nonce_len = 6 ", "nonce_len = 18 ", 19, "exceeds 19 octets");
    assert_error("config_rotation = 1", "config_rotation = 7", 23, "reserved");
    assert_error(
        "config_rotation = 1",
        "config_rotation = 0",
        23,
        "config rotation 0 is given twice",
    );
    assert_error(
        "server_use_len = 0 ",
        "server_use_len = 12 ",
        30,
        "exceeds 20",
    );
    assert_error(
        "keys/cr1.key",
        "keys/missing.key",
        26,
        "key file: cannot open",
    );
    assert_error(
        "0 = [\"0a01\"]",
        "0 = [\"0a0\"]",
        36,
        "is not 2 octets of hex",
    );
    assert_error(
        "0 = [\"0a01\"], 1",
        "5 = [\"0a01\"], 1",
        36,
        "not the config rotation of a [[quic_lb]]",
    );
    assert_error(
        "0 = [\"0a02\"]",
        "0 = [\"0a01\"]",
        44,
        "belongs to both alpha and beta",
    );
    assert_error(
        "\"02:00:00:00:0a:01\"",
        "\"02:00:00:00:0a\"",
        38,
        "not a MAC address",
    );
    assert_error("weight = 2", "weight = 1001", 47, "out of range 1..=1000");
    assert_error(
        "state = \"draining\"",
        "state = \"sleeping\"",
        54,
        "unknown variant",
    );
    assert_error(
        "name = \"beta\"",
        "name = \"alpha\"",
        43,
        "backend alpha is given twice",
    );
    assert_error(
        "interface = \"eth2\"",
        "interface = \"\"",
        52,
        "not an interface name",
    );
    assert_error("weight = 1 ", "wieght = 1 ", 39, "unknown field");
    assert_error(
        "interface = \"eth2\"\n",
        "",
        50,
        "backend gamma: interface is missing (or set local_worker = true)",
    );
    assert_error(
        "next_hop_mac = \"02:00:00:00:0c:01\"",
        "local_worker = true",
        52,
        "backend gamma: a local worker has no interface, next_hop_mac, delivery or tunnel_address",
    );
    assert_error(
        "initial_routing = \"cid\"",
        "initial_routing = \"dcid\"",
        7,
        "unknown variant",
    );
    assert_error(
        "[[listener]]\naddress = \"198.18.0.10\"",
        "[listener\naddress = \"198.18.0.10\"",
        4,
        "",
    );
}

#[test]
fn a_key_file_its_group_or_others_can_access_is_refused() {
    for (mode, who) in [
        (0o644, "its group and other users"),
        (0o640, "its group"),
        (0o660, "its group"),
        (0o604, "other users"),
        (0o601, "other users"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_key(dir.path(), mode);
        let path = dir.path().join("router.toml");
        fs::write(&path, EXAMPLE).unwrap();
        let message = config::load(&path).unwrap_err().to_string();
        assert!(
            message.contains(":26: key file")
                && message.contains(&format!("accessible to {who} (mode {mode:04o})"))
                && message.contains("chmod go-rwx"),
            "{mode:o}: {message}"
        );
        assert!(!message.contains("8f95f092"), "the key leaked: {message}");
    }
}

#[test]
fn a_config_without_listeners_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.toml");
    fs::write(&path, "").unwrap();
    let message = config::load(&path).unwrap_err().to_string();
    assert!(
        message.ends_with(":1: no [[listener]]: the router needs at least one"),
        "{message}"
    );
}

/// The README's config for servers in other subnets is complete: it parses as it stands,
/// one backend per kind of reach.
#[test]
fn the_readmes_tunnel_example_parses() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Servers in other subnets")
        .nth(1)
        .expect("the README's section on tunnels");
    let text = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a TOML block");
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("keys")).unwrap();
    let key = dir.path().join("keys/cr0.key");
    fs::write(&key, "fdf726a9893ec05c0632d3956680baf0\n").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.path().join("router.toml");
    fs::write(&path, text).unwrap();
    let config = config::load(&path).unwrap_or_else(|err| panic!("{err}"));
    let reaches: Vec<&Reach> = config.backends.iter().map(|b| &b.reach).collect();
    assert!(matches!(
        reaches[..],
        [
            Reach::Host {
                delivery: Delivery::L2,
                ..
            },
            Reach::Routed {
                delivery: Delivery::Gue { .. }
            },
            Reach::Host {
                delivery: Delivery::Ipip { .. },
                ..
            },
        ]
    ));
}
