//! `[limits]` and `[health]` in the router config: defaults when absent, each value within
//! its range, and the file's listeners, backends and server IDs counted against the limits;
//! every error one line naming the file and the line.

use integration_tests::{
    addresses::{QUIC_PORT, VIP4, VIP6},
    config_text::{BackendText, ConfigText},
    load_config_text,
};
use router_common::maps::Limits;
use router_user::health::HealthSettings;
use std::time::Duration;

fn base() -> ConfigText {
    ConfigText::new()
        .listener(VIP4, QUIC_PORT, None)
        .quic_lb(0, 2, 6, 0, None)
}

fn host(name: &str, server_id: &str) -> BackendText {
    BackendText::host(name, "eth1", "02:00:00:00:0a:01").server_id(0, server_id)
}

#[test]
fn limits_default_to_todays_sizes_and_take_what_the_file_says() {
    let config = load_config_text(base().backend(&host("alpha", "0a01"))).unwrap();
    assert_eq!(config.limits, Limits::DEFAULT);

    let config = load_config_text(
        ConfigText::new()
            .limits(&[
                ("backends", 2048),
                ("server_ids", 1_000_000),
                ("listeners", 4),
                ("cid_cache_entries", 1_048_576),
            ])
            .listener(VIP4, QUIC_PORT, None),
    )
    .unwrap();
    assert_eq!(
        config.limits,
        Limits {
            backends: 2048,
            server_ids: 1_000_000,
            listeners: 4,
            cid_cache_entries: 1_048_576,
        }
    );
}

#[test]
fn each_limit_is_checked_against_its_range() {
    for (key, value, range) in [
        ("backends", 0, "1..=65536"),
        ("backends", 65_537, "1..=65536"),
        ("server_ids", 0, "1..=4194304"),
        ("server_ids", 4_194_305, "1..=4194304"),
        ("listeners", 0, "1..=65536"),
        ("cid_cache_entries", 1023, "1024..=1048576"),
        ("cid_cache_entries", 1_048_577, "1024..=1048576"),
    ] {
        let message = load_config_text(
            ConfigText::new()
                .limits(&[(key, value)])
                .listener(VIP4, QUIC_PORT, None),
        )
        .unwrap_err();
        assert!(
            message.contains(":2: ")
                && message.contains(&format!("limits.{key} = {value} is out of range {range}")),
            "{message}"
        );
    }
    let message = load_config_text(
        ConfigText::new()
            .limits(&[("backend", 8)])
            .listener(VIP4, QUIC_PORT, None),
    )
    .unwrap_err();
    assert!(message.contains("unknown field `backend`"), "{message}");
}

#[test]
fn the_cid_cache_is_a_power_of_two_entries() {
    let message = load_config_text(
        ConfigText::new()
            .limits(&[("cid_cache_entries", 3 * 1024)])
            .listener(VIP4, QUIC_PORT, None),
    )
    .unwrap_err();
    assert!(
        message.contains(":2: ")
            && message.contains("limits.cid_cache_entries = 3072 is not a power of two"),
        "{message}"
    );
}

#[test]
fn the_file_must_fit_in_its_limits() {
    // Two listeners where one fits.
    let message = load_config_text(
        ConfigText::new()
            .limits(&[("listeners", 1)])
            .listener(VIP4, QUIC_PORT, None)
            .listener(VIP6, QUIC_PORT, None),
    )
    .unwrap_err();
    assert!(
        message.contains("more than 1 listeners (limits.listeners)"),
        "{message}"
    );
    // Three backends where two fit; then server IDs over the limit.
    let three = |limits: &[(&str, u32)]| {
        let text = ConfigText::new()
            .limits(limits)
            .listener(VIP4, QUIC_PORT, None)
            .quic_lb(0, 2, 6, 0, None);
        ["0a01", "0a02", "0a03"]
            .iter()
            .enumerate()
            .fold(text, |text, (i, id)| {
                text.backend(&host(&format!("b{i}"), id))
            })
    };
    let message = load_config_text(three(&[("backends", 2)])).unwrap_err();
    assert!(
        message.contains("more than 2 backends (limits.backends)"),
        "{message}"
    );
    let message = load_config_text(three(&[("server_ids", 2)])).unwrap_err();
    assert!(
        message.contains("more than 2 server IDs in all (limits.server_ids)"),
        "{message}"
    );
    assert!(load_config_text(three(&[("backends", 3), ("server_ids", 3)])).is_ok());
}

#[test]
fn health_checks_are_off_without_the_section_and_take_defaults_within_it() {
    let backend = host("alpha", "0a01");
    let config = load_config_text(base().backend(&backend)).unwrap();
    assert_eq!(config.health, None);
    let config = load_config_text(base().health(&[]).backend(&backend)).unwrap();
    assert_eq!(config.health, Some(HealthSettings::default()));
    let config = load_config_text(
        base()
            .health(&[("interval_ms", 250), ("rise", 1), ("fall", 5)])
            .backend(&backend),
    )
    .unwrap();
    assert_eq!(
        config.health,
        Some(HealthSettings {
            interval: Duration::from_millis(250),
            rise: 1,
            fall: 5,
        })
    );
}

#[test]
fn each_health_setting_is_checked_against_its_range() {
    for (key, value, range) in [
        ("interval_ms", 99, "100..=60000"),
        ("interval_ms", 60_001, "100..=60000"),
        ("rise", 0, "1..=100"),
        ("fall", 101, "1..=100"),
        ("fall", u64::from(u32::MAX) + 1, "1..=100"),
    ] {
        let message = load_config_text(base().health(&[(key, value)])).unwrap_err();
        assert!(
            message.ends_with(&format!(
                ":11: health.{key} = {value} is out of range {range}"
            )),
            "{key} = {value}: {message}"
        );
    }
    let message = load_config_text(base().health(&[("timeout_ms", 5)])).unwrap_err();
    assert!(
        message.contains(":11: unknown field `timeout_ms`"),
        "{message}"
    );
}
