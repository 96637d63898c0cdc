//! The test topology: a client, the router and backends, network namespaces joined by veth
//! pairs. Addresses: `crate::addresses`.

use crate::{
    addresses::{
        CLIENT_NET, ENCAP_SOURCE4, ENCAP_SOURCE6, GATEWAY_NET, GATEWAY4, GATEWAY6,
        ROUTER_TO_GATEWAY4, ROUTER_TO_GATEWAY6, ROUTER4, ROUTER6, VIP_NET4, VIP_NET6, VIP4, VIP6,
        backend_net, tunnel_net,
    },
    netns::{Netns, link},
};

/// Client -- router -- N backends (direct server return: backends own the VIP and answer
/// the client through the router's ordinary forwarding), or, routed, client -- router --
/// gateway -- N backends in subnets of their own.
pub struct Topology {
    pub client: Netns,
    pub router: Netns,
    pub backends: Vec<Netns>,
    /// The router between the router and the backends, in the routed topology.
    pub gateway: Option<Netns>,
}

impl Topology {
    pub fn new(backends: usize) -> Self {
        Self::with_queues(backends, 1)
    }

    /// The topology with `queues` receive and transmit queues on every veth: each CPU that
    /// sends into a veth fills a queue of its own (queue = CPU modulo queues), and that
    /// queue's NAPI runs on it.
    pub fn with_queues(backends: usize, queues: usize) -> Self {
        let (client, router) = client_and_router(queues);
        let backends = (0..backends)
            .map(|i| {
                let backend = Netns::create(&format!("backend{i}"));
                let router_if = format!("r{}", i + 1);
                link(&backend, "b0", &router, &router_if, queues);
                let net = backend_net(i);
                add_subnet(&backend, "b0", net, 2);
                route_through(&backend, net, 1);
                add_subnet(&router, &router_if, net, 1);
                // Native redirects into a veth are delivered only with GRO (or an XDP
                // program) on the receiving end.
                backend.exec("ethtool", &["-K", "b0", "gro", "on"]);
                hold_vips(&backend, "b0");
                backend
            })
            .collect();
        Self {
            client,
            router,
            backends,
            gateway: None,
        }
    }

    /// Client -- router -- gateway -- `backends` backends, each in a subnet of its own that
    /// the router reaches through the gateway (`tunnel_address`): delivery across L3. The
    /// router's link to the gateway has `path_mtu`; the router's outer source prefixes are
    /// routed back to it.
    pub fn routed(backends: usize, path_mtu: u32) -> Self {
        let (client, router) = client_and_router(1);
        let gateway = Netns::create("gateway");
        link(&router, "rg", &gateway, "gr", 1);
        router.ip(&["link", "set", "rg", "mtu", &path_mtu.to_string()]);
        add_subnet(&router, "rg", GATEWAY_NET, 1);
        add_subnet(&gateway, "gr", GATEWAY_NET, 2);
        gateway.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        gateway.exec("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"]);
        gateway.exec("sysctl", &["-qw", "net.ipv4.conf.all.rp_filter=0"]);
        gateway.exec("sysctl", &["-qw", "net.ipv4.conf.gr.rp_filter=0"]);
        // The router's native redirects into `rg` are delivered only with GRO on `gr`.
        gateway.exec("ethtool", &["-K", "gr", "gro", "on"]);
        // Answers to the clients, and anything for the router's outer sources, go back.
        for net in [&format!("198.18.{CLIENT_NET}.0/24"), ENCAP_SOURCE4] {
            gateway.ip(&["route", "add", net, "via", ROUTER_TO_GATEWAY4]);
        }
        for net in [&format!("2001:db8:{CLIENT_NET}::/64"), ENCAP_SOURCE6] {
            gateway.ip(&["-6", "route", "add", net, "via", ROUTER_TO_GATEWAY6]);
        }
        let backends = (0..backends)
            .map(|i| {
                let backend = Netns::create(&format!("backend{i}"));
                let (backend_if, gateway_if) = (format!("t{i}"), format!("g{i}"));
                link(&backend, &backend_if, &gateway, &gateway_if, 1);
                let net = tunnel_net(i);
                add_subnet(&backend, &backend_if, net, 2);
                add_subnet(&gateway, &gateway_if, net, 1);
                router.ip(&[
                    "route",
                    "add",
                    &format!("198.18.{net}.0/24"),
                    "via",
                    GATEWAY4,
                ]);
                router.ip(&[
                    "-6",
                    "route",
                    "add",
                    &format!("2001:db8:{net}::/64"),
                    "via",
                    GATEWAY6,
                ]);
                route_through(&backend, net, 1);
                hold_vips(&backend, &backend_if);
                backend
            })
            .collect();
        Self {
            client,
            router,
            backends,
            gateway: Some(gateway),
        }
    }

    /// The MAC of backend `i`'s interface: the next hop that the router writes.
    pub fn backend_mac(&self, i: usize) -> String {
        self.backends[i].mac("b0")
    }
}

/// The client and the router, linked (`c0`, `r0`), addressed, and routed: the client
/// reaches the VIPs through the router, which forwards.
fn client_and_router(queues: usize) -> (Netns, Netns) {
    let client = Netns::create("client");
    let router = Netns::create("router");
    link(&client, "c0", &router, "r0", queues);
    // The client's side is CLIENT4 / CLIENT6, the router's ROUTER4 / ROUTER6.
    add_subnet(&client, "c0", CLIENT_NET, 2);
    add_subnet(&router, "r0", CLIENT_NET, 1);
    client.ip(&["route", "add", VIP_NET4, "via", ROUTER4]);
    client.ip(&["-6", "route", "add", VIP_NET6, "via", ROUTER6]);
    // Packets sent by a local socket lose CHECKSUM_PARTIAL on a native redirect: let
    // the client's veth compute checksums itself (platform notes).
    client.exec("ethtool", &["-K", "c0", "tx", "off"]);
    // What the router redirects back out of `r0` (its ICMP answers) is delivered into a
    // veth only with GRO (or an XDP program) on the receiving end.
    client.exec("ethtool", &["-K", "c0", "gro", "on"]);
    router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    router.exec("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"]);
    (client, router)
}

/// Adds 198.18.`net`.`host`/24 and 2001:db8:`net`::`host`/64 to `interface` of `netns`.
pub(crate) fn add_subnet(netns: &Netns, interface: &str, net: usize, host: u8) {
    netns.ip(&[
        "addr",
        "add",
        &format!("198.18.{net}.{host}/24"),
        "dev",
        interface,
    ]);
    netns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("2001:db8:{net}::{host}/64"),
        "dev",
        interface,
        "nodad",
    ]);
}

/// Default routes of `netns` through .`host` / ::`host` of its subnet `net`.
pub(crate) fn route_through(netns: &Netns, net: usize, host: u8) {
    netns.ip(&[
        "route",
        "add",
        "default",
        "via",
        &format!("198.18.{net}.{host}"),
    ]);
    netns.ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        &format!("2001:db8:{net}::{host}"),
    ]);
}

/// A backend's VIPs on loopback, and no reverse-path filter on `interface`: the clients'
/// packets are for an address that is not the interface's.
pub(crate) fn hold_vips(backend: &Netns, interface: &str) {
    backend.ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
    backend.ip(&["-6", "addr", "add", &format!("{VIP6}/128"), "dev", "lo"]);
    backend.exec("sysctl", &["-qw", "net.ipv4.conf.all.rp_filter=0"]);
    backend.exec(
        "sysctl",
        &["-qw", &format!("net.ipv4.conf.{interface}.rp_filter=0")],
    );
}
