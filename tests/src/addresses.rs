//! Every address the tests use, defined once: from 198.18.0.0/15 and 2001:db8::/32 only.
//!
//! The topology (`topology`): the client on `c0`, the router on `r0` facing it and on
//! `r(1+i)` facing backend `i`; backend `i` is 198.18.(10+i).2 / 2001:db8:(10+i)::2 on `b0`
//! and holds the VIPs on loopback.

use std::net::{IpAddr, SocketAddr};

/// The VIP: what backends hold on loopback and clients send to.
pub const VIP4: &str = "198.18.0.10";
pub const VIP6: &str = "2001:db8::10";
/// The VIPs' subnets, which the client routes through the router.
pub const VIP_NET4: &str = "198.18.0.0/24";
pub const VIP_NET6: &str = "2001:db8::/64";
/// The UDP port of the VIPs' listeners.
pub const QUIC_PORT: u16 = 443;
/// An address no listener has.
pub const NOT_A_VIP4: &str = "198.18.0.99";
pub const NOT_A_VIP6: &str = "2001:db8::99";

/// The subnet of the client's link to the router (198.18.1.0/24, 2001:db8:1::/64).
pub const CLIENT_NET: usize = 1;
/// The client's addresses on `c0`.
pub const CLIENT4: &str = "198.18.1.2";
pub const CLIENT6: &str = "2001:db8:1::2";
/// A second IPv4 address of the client's, for moving connections.
pub const CLIENT4_MOVED: &str = "198.18.1.3";
/// The source of packets made by hand (fixtures, BPF_PROG_TEST_RUN).
pub const SENDER4: &str = "198.18.1.7";
pub const SENDER6: &str = "2001:db8:1::7";

/// The router's addresses on `r0`, the client's next hop.
pub const ROUTER4: &str = "198.18.1.1";
pub const ROUTER6: &str = "2001:db8:1::1";

/// The VIP of one family.
pub fn vip(v6: bool) -> IpAddr {
    if v6 { VIP6 } else { VIP4 }.parse().expect("a VIP")
}

/// The VIP's listener of one family.
pub fn vip_socket(v6: bool) -> SocketAddr {
    SocketAddr::new(vip(v6), QUIC_PORT)
}

/// The hand-made packets' source of one family.
pub fn sender(v6: bool) -> IpAddr {
    if v6 { SENDER6 } else { SENDER4 }
        .parse()
        .expect("an address")
}

/// The client's address of one family, at `port`.
pub fn client(v6: bool, port: u16) -> SocketAddr {
    let ip: IpAddr = if v6 { CLIENT6 } else { CLIENT4 }
        .parse()
        .expect("an address");
    SocketAddr::new(ip, port)
}

/// Backend `i`'s subnet number: its addresses are 198.18.N.2 and 2001:db8:N::2, the router's
/// side .1 and ::1.
pub fn backend_net(i: usize) -> usize {
    10 + i
}

/// Backend `i`'s own IPv4 address.
pub fn backend4(i: usize) -> String {
    format!("198.18.{}.2", backend_net(i))
}

/// The routed topology (`Topology::routed`): the subnet of the router's link to the gateway,
/// the router's side (`rg`, .1) and the gateway's (`gr`, .2).
pub const GATEWAY_NET: usize = 2;
pub const ROUTER_TO_GATEWAY4: &str = "198.18.2.1";
pub const ROUTER_TO_GATEWAY6: &str = "2001:db8:2::1";
pub const GATEWAY4: &str = "198.18.2.2";
pub const GATEWAY6: &str = "2001:db8:2::2";

/// Backend `i`'s subnet behind the gateway: the backend is .2 / ::2 (its tunnel addresses),
/// the gateway .1 / ::1.
pub fn tunnel_net(i: usize) -> usize {
    20 + i
}

/// Backend `i`'s tunnel address of one family, in the routed topology.
pub fn tunnel_address(i: usize, v6: bool) -> String {
    if v6 {
        format!("2001:db8:{}::2", tunnel_net(i))
    } else {
        format!("198.18.{}.2", tunnel_net(i))
    }
}

/// The router's outer source prefixes when it encapsulates, and GUE's port.
pub const ENCAP_SOURCE4: &str = "198.18.100.0/28";
pub const ENCAP_SOURCE6: &str = "2001:db8:100::/64";
pub const GUE_PORT: u16 = 6080;
