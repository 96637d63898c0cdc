//! The test topology: a client, the router and backends, network namespaces joined by veth
//! pairs. Addresses: `crate::addresses`.

use crate::{
    addresses::{CLIENT4, CLIENT6, ROUTER4, ROUTER6, VIP_NET4, VIP_NET6, VIP4, VIP6, backend_net},
    netns::{Netns, link},
};

/// Client -- router -- N backends (direct server return: backends own the VIP and answer
/// the client through the router's ordinary forwarding).
pub struct Topology {
    pub client: Netns,
    pub router: Netns,
    pub backends: Vec<Netns>,
}

impl Topology {
    pub fn new(backends: usize) -> Self {
        Self::with_queues(backends, 1)
    }

    /// The topology with `queues` receive and transmit queues on every veth: each CPU that
    /// sends into a veth fills a queue of its own (queue = CPU modulo queues), and that
    /// queue's NAPI runs on it.
    pub fn with_queues(backends: usize, queues: usize) -> Self {
        let client = Netns::create("client");
        let router = Netns::create("router");
        link(&client, "c0", &router, "r0", queues);
        client.ip(&["addr", "add", &format!("{CLIENT4}/24"), "dev", "c0"]);
        client.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{CLIENT6}/64"),
            "dev",
            "c0",
            "nodad",
        ]);
        router.ip(&["addr", "add", &format!("{ROUTER4}/24"), "dev", "r0"]);
        router.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{ROUTER6}/64"),
            "dev",
            "r0",
            "nodad",
        ]);
        client.ip(&["route", "add", VIP_NET4, "via", ROUTER4]);
        client.ip(&["-6", "route", "add", VIP_NET6, "via", ROUTER6]);
        // Packets sent by a local socket lose CHECKSUM_PARTIAL on a native redirect: let
        // the client's veth compute checksums itself (platform notes).
        client.exec("ethtool", &["-K", "c0", "tx", "off"]);
        router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        router.exec("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"]);

        let backends = (0..backends)
            .map(|i| {
                let backend = Netns::create(&format!("backend{i}"));
                let router_if = format!("r{}", i + 1);
                link(&backend, "b0", &router, &router_if, queues);
                let net = backend_net(i);
                backend.ip(&["addr", "add", &format!("198.18.{net}.2/24"), "dev", "b0"]);
                backend.ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("2001:db8:{net}::2/64"),
                    "dev",
                    "b0",
                    "nodad",
                ]);
                backend.ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
                backend.ip(&["-6", "addr", "add", &format!("{VIP6}/128"), "dev", "lo"]);
                backend.ip(&["route", "add", "default", "via", &format!("198.18.{net}.1")]);
                backend.ip(&[
                    "-6",
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("2001:db8:{net}::1"),
                ]);
                router.ip(&[
                    "addr",
                    "add",
                    &format!("198.18.{net}.1/24"),
                    "dev",
                    &router_if,
                ]);
                router.ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("2001:db8:{net}::1/64"),
                    "dev",
                    &router_if,
                    "nodad",
                ]);
                // Native redirects into a veth are delivered only with GRO (or an XDP
                // program) on the receiving end.
                backend.exec("ethtool", &["-K", "b0", "gro", "on"]);
                backend.exec("sysctl", &["-qw", "net.ipv4.conf.all.rp_filter=0"]);
                backend.exec("sysctl", &["-qw", "net.ipv4.conf.b0.rp_filter=0"]);
                backend
            })
            .collect();
        Self {
            client,
            router,
            backends,
        }
    }

    /// The MAC of backend `i`'s interface: the next hop that the router writes.
    pub fn backend_mac(&self, i: usize) -> String {
        self.backends[i].mac("b0")
    }
}
