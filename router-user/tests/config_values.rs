//! Values the config file must refuse, each with one line naming the file, the line and the
//! problem: names that would not show the same everywhere they appear.

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
