//! `LISTENER_PORTS` entries: a port's one listener of a family is matched by address, several
//! send the program to `LISTENERS`, and the families do not mix.

use router_common::maps::{ListenerKey, PortListeners, PortMatch};

fn key(addr: &str, family: u8) -> ListenerKey {
    let ip: std::net::IpAddr = addr.parse().unwrap();
    let mut key = ListenerKey {
        family,
        port_be: 4433u16.to_be(),
        ..ListenerKey::default()
    };
    match ip {
        std::net::IpAddr::V4(v4) => key.addr[..4].copy_from_slice(&v4.octets()),
        std::net::IpAddr::V6(v6) => key.addr = v6.octets(),
    }
    key
}

#[test]
fn a_port_without_listeners_matches_nothing() {
    let port = PortListeners::default();
    assert_eq!(
        port.listener(&key("198.18.0.10", 4).addr, false),
        PortMatch::None
    );
    assert_eq!(port.listener(&[0; 16], false), PortMatch::None);
    assert_eq!(port.listener(&[0; 16], true), PortMatch::None);
}

#[test]
fn one_listener_of_a_family_is_matched_by_its_address_with_its_flags() {
    let mut port = PortListeners::default();
    let v4 = key("198.18.0.10", 4);
    let v6 = key("2001:db8::10", 6);
    port.add(&v4, 2);
    port.add(&v6, 0);
    assert_eq!(port.listener(&v4.addr, false), PortMatch::Listener(2));
    assert_eq!(port.listener(&v6.addr, true), PortMatch::Listener(0));
    assert_eq!(
        port.listener(&key("198.18.0.11", 4).addr, false),
        PortMatch::None
    );
    assert_eq!(
        port.listener(&key("2001:db8::11", 6).addr, true),
        PortMatch::None
    );
    // The same octets in the other family are another address.
    assert_eq!(port.listener(&v4.addr, true), PortMatch::None);
}

#[test]
fn several_listeners_of_a_family_are_left_to_the_hash_map() {
    let mut port = PortListeners::default();
    port.add(&key("198.18.0.10", 4), 2);
    port.add(&key("198.18.0.11", 4), 0);
    let v6 = key("2001:db8::10", 6);
    port.add(&v6, 2);
    assert_eq!(
        port.listener(&key("198.18.0.10", 4).addr, false),
        PortMatch::Several
    );
    assert_eq!(
        port.listener(&key("198.18.0.12", 4).addr, false),
        PortMatch::Several
    );
    assert_eq!(port.listener(&v6.addr, true), PortMatch::Listener(2));
}
