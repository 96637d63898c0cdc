//! `delivery`, `tunnel_address` and `[encapsulation]`: what the
//! file says is taken as it says, and what cannot work is refused with the line and the
//! reason.

use std::net::IpAddr;

use router_user::{
    config::{self, BackendState, Delivery, Reach},
    config_edit::{BackendSpec, Edit, edit_text},
};

const HEAD: &str = r#"[[listener]]
address = "198.18.0.10"
port = 443

[[quic_lb]]
config_rotation = 0
server_id_len = 2
nonce_len = 6
"#;

fn text(encapsulation: &str, backend_extra: &str) -> String {
    format!(
        "{HEAD}{encapsulation}\n[[backend]]\nname = \"alpha\"\nserver_ids = {{ 0 = [\"0a01\"] }}\ninterface = \"eth1\"\nnext_hop_mac = \"02:00:00:00:0a:01\"\n{backend_extra}\n"
    )
}

const ENCAPSULATION: &str = "[encapsulation]\nsource4 = \"198.18.100.0/28\"\nsource6 = \"2001:db8:100::/64\"\ngue_port = 6080\n";

fn delivery(text: &str) -> Result<Delivery, String> {
    let config = config::parse(text, "router.toml".as_ref()).map_err(|err| err.to_string())?;
    match &config.backends[0].reach {
        Reach::Host { delivery, .. } => Ok(*delivery),
        Reach::Routed { .. } | Reach::LocalWorker => panic!("a host"),
    }
}

/// The config with the backend's `interface` and `next_hop_mac` lines given by `hop`.
fn with_next_hop(hop: &str, backend_extra: &str) -> String {
    text(ENCAPSULATION, backend_extra).replace(
        "interface = \"eth1\"\nnext_hop_mac = \"02:00:00:00:0a:01\"\n",
        hop,
    )
}

#[test]
fn a_tunnel_without_a_next_hop_follows_the_kernels_routes() {
    let config = config::parse(
        &with_next_hop("", "delivery = \"gue\"\ntunnel_address = \"198.18.9.2\""),
        "router.toml".as_ref(),
    )
    .unwrap();
    assert_eq!(
        config.backends[0].reach,
        Reach::Routed {
            delivery: Delivery::Gue {
                tunnel: "198.18.9.2".parse().unwrap()
            }
        }
    );
    for hop in [
        "interface = \"eth1\"\n",
        "next_hop_mac = \"02:00:00:00:0a:01\"\n",
    ] {
        let message = config::parse(
            &with_next_hop(hop, "delivery = \"ipip\"\ntunnel_address = \"198.18.9.2\""),
            "router.toml".as_ref(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.contains("interface and next_hop_mac together, or neither"),
            "{hop:?}: {message}"
        );
    }
    // Without a tunnel the next hop is the host itself: both are needed.
    let message = config::parse(&with_next_hop("", ""), "router.toml".as_ref())
        .unwrap_err()
        .to_string();
    assert!(message.contains("interface is missing"), "{message}");
}

#[test]
fn each_method_is_taken_as_written() {
    assert_eq!(delivery(&text("", "")), Ok(Delivery::L2));
    assert_eq!(delivery(&text("", "delivery = \"l2\"")), Ok(Delivery::L2));
    let tunnel: IpAddr = "198.18.5.2".parse().unwrap();
    assert_eq!(
        delivery(&text(
            ENCAPSULATION,
            "delivery = \"gue\"\ntunnel_address = \"198.18.5.2\""
        )),
        Ok(Delivery::Gue { tunnel })
    );
    let tunnel: IpAddr = "2001:db8:5::2".parse().unwrap();
    assert_eq!(
        delivery(&text(
            ENCAPSULATION,
            "delivery = \"ipip\"\ntunnel_address = \"2001:db8:5::2\""
        )),
        Ok(Delivery::Ipip { tunnel })
    );
}

#[test]
fn what_cannot_work_is_refused_with_its_line() {
    for (encapsulation, extra, needle) in [
        (
            "",
            "delivery = \"vxlan\"",
            "delivery \"vxlan\" is not l2, gue or ipip",
        ),
        (
            "",
            "tunnel_address = \"198.18.5.2\"",
            "tunnel_address is for delivery = \"gue\" or \"ipip\"",
        ),
        (
            ENCAPSULATION,
            "delivery = \"gue\"",
            "needs a tunnel_address",
        ),
        (
            ENCAPSULATION,
            "delivery = \"ipip\"\ntunnel_address = \"224.0.0.1\"",
            "is not a unicast IP address",
        ),
        (
            ENCAPSULATION,
            "delivery = \"ipip\"\ntunnel_address = \"backend\"",
            "is not a unicast IP address",
        ),
        (
            "",
            "delivery = \"ipip\"\ntunnel_address = \"198.18.5.2\"",
            "needs [encapsulation] source4",
        ),
        (
            "[encapsulation]\nsource4 = \"198.18.100.0/28\"\n",
            "delivery = \"ipip\"\ntunnel_address = \"2001:db8:5::2\"",
            "needs [encapsulation] source6",
        ),
        (
            "[encapsulation]\nsource4 = \"198.18.100.0/28\"\n",
            "delivery = \"gue\"\ntunnel_address = \"198.18.5.2\"",
            "needs [encapsulation] gue_port",
        ),
        (
            "[encapsulation]\nsource4 = \"198.18.100.1/28\"\n",
            "",
            "has bits set past its length",
        ),
        (
            "[encapsulation]\nsource4 = \"2001:db8::/64\"\n",
            "",
            "must be an IPv4 prefix",
        ),
        (
            "[encapsulation]\ngue_port = 0\n",
            "",
            "gue_port must be 1 to 65535",
        ),
        ("[encapsulation]\nmtu = 1500\n", "", "unknown field `mtu`"),
    ] {
        let message = delivery(&text(encapsulation, extra)).unwrap_err();
        assert!(
            message.starts_with("router.toml:") && message.contains(needle),
            "{extra:?} / {encapsulation:?}: {message}"
        );
    }
}

#[test]
fn backend_add_writes_the_delivery_and_tunnel_address() {
    let spec = |delivery: &str, tunnel: &str| BackendSpec {
        name: "epsilon".to_owned(),
        interface: None,
        next_hop_mac: None,
        delivery: Some(delivery.to_owned()),
        tunnel_address: Some(tunnel.to_owned()),
        local_worker: false,
        server_ids: [("0".to_owned(), vec!["0a05".to_owned()])].into(),
        weight: None,
        state: BackendState::Active,
    };
    let edited = edit_text(
        &text(ENCAPSULATION, ""),
        &Edit::AddBackend {
            backend: spec("ipip", "2001:db8:9::5"),
        },
    )
    .unwrap();
    let config = config::parse(&edited, "router.toml".as_ref()).unwrap();
    assert_eq!(
        config.backends[1].reach,
        Reach::Routed {
            delivery: Delivery::Ipip {
                tunnel: "2001:db8:9::5".parse().unwrap()
            }
        }
    );
    // What the file cannot hold is refused by the same validation.
    let edited = edit_text(
        &text("", ""),
        &Edit::AddBackend {
            backend: spec("gue", "198.18.9.5"),
        },
    )
    .unwrap();
    let message = config::parse(&edited, "router.toml".as_ref())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("needs [encapsulation] source4"),
        "{message}"
    );
}
