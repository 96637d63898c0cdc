//! Values the config file must refuse, each with one line naming the file, the line and the
//! problem: values that parse but name nothing the router can use.

use integration_tests::{
    addresses::{QUIC_PORT, VIP4},
    config_text::{BackendText, ConfigText},
    load_config_text,
};

fn with_backend(name: &str) -> ConfigText {
    ConfigText::new()
        .listener(VIP4, QUIC_PORT, None)
        .quic_lb(0, 2, 6, 0, None)
        .backend(&BackendText::host(name, "eth1", "02:00:00:00:0a:01").server_id(0, "0a01"))
}

#[test]
fn backend_names_are_letters_digits_dash_underscore_dot_up_to_64() {
    for name in ["alpha", "a", "web-1.eu_west", &"x".repeat(64)] {
        load_config_text(with_backend(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
    }
    let long = "y".repeat(60_000);
    for name in [
        "",
        "q\\\"x",
        "two words",
        "tab\\there",
        "bidi\u{202e}gnp.exe",
        "nul\\u0000",
        "caf\u{e9}",
        "a/b",
        &"x".repeat(65),
        &long,
    ] {
        let message = load_config_text(with_backend(name)).unwrap_err();
        assert!(
            message.contains(":11: backend name")
                && message.contains("must be 1 to 64 letters, digits, '-', '_' or '.'"),
            "{name:?}: {message}"
        );
        assert!(
            message.len() < 300,
            "the message quotes too much: {message}"
        );
    }
}

fn with_host(interface: &str, mac: &str) -> ConfigText {
    ConfigText::new()
        .listener(VIP4, QUIC_PORT, None)
        .quic_lb(0, 2, 6, 0, None)
        .backend(&BackendText::host("alpha", interface, mac).server_id(0, "0a01"))
}

#[test]
fn next_hops_are_unicast_macs_written_as_six_hex_pairs() {
    load_config_text(with_host("eth1", "02:00:00:00:0A:01")).unwrap();
    for mac in [
        "+2:00:00:00:0a:01",
        "02:00:00:00:0a",
        "02-00-00-00-0a-01",
        "0g:00:00:00:0a:01",
    ] {
        let message = load_config_text(with_host("eth1", mac)).unwrap_err();
        assert!(message.contains("is not a MAC address"), "{mac}: {message}");
    }
    for mac in [
        "00:00:00:00:00:00",
        "ff:ff:ff:ff:ff:ff",
        "01:00:5e:00:00:01",
        "33:33:00:00:00:01",
    ] {
        let message = load_config_text(with_host("eth1", mac)).unwrap_err();
        assert!(
            message.contains("is not a unicast MAC address"),
            "{mac}: {message}"
        );
    }
}

#[test]
fn interfaces_are_names_the_kernel_takes() {
    for interface in ["eth1", "enp1s0f1", "vlan.100", &"x".repeat(15)] {
        load_config_text(with_host(interface, "02:00:00:00:0a:01")).unwrap();
    }
    for interface in [
        "",
        ".",
        "..",
        "a/b",
        "a b",
        "a:1",
        "nul\\u0000",
        &"x".repeat(16),
    ] {
        let message = load_config_text(with_host(interface, "02:00:00:00:0a:01")).unwrap_err();
        assert!(
            message.contains("is not an interface name"),
            "{interface:?}: {message}"
        );
    }
}

#[test]
fn server_id_keys_are_codepoint_digits() {
    let with_key = |key: &str| {
        let text = with_host("eth1", "02:00:00:00:0a:01").build();
        let file = integration_tests::ConfigFile::with_text(|_| ConfigText::new());
        std::fs::write(
            &file.path,
            text.replace("0 = [\"0a01\"]", &format!("\"{key}\" = [\"0a01\"]")),
        )
        .unwrap();
        router_user::config::load(&file.path).map_err(|err| err.to_string())
    };
    with_key("0").unwrap();
    for key in ["+0", "00", " 0", "0x0", "-0"] {
        let message = with_key(key).unwrap_err();
        assert!(
            message.contains(&format!(
                "server_ids key {key:?} is not the config rotation"
            )),
            "{key:?}: {message}"
        );
    }
}

#[test]
fn listeners_are_unicast_addresses() {
    for address in ["198.18.0.10", "2001:db8::10", "127.0.0.1"] {
        load_config_text(ConfigText::new().listener(address, QUIC_PORT, None)).unwrap();
    }
    for (address, why) in [
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("255.255.255.255", "the broadcast address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("::ffff:198.18.0.10", "an IPv4-mapped IPv6 address"),
    ] {
        let message =
            load_config_text(ConfigText::new().listener(address, QUIC_PORT, None)).unwrap_err();
        assert!(
            message.contains(&format!("listener address {address} is {why}")),
            "{address}: {message}"
        );
    }
}
