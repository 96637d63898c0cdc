//! Real traffic through the attached program, native and generic mode: a client namespace
//! sends QUIC short-header packets to the VIP, the router's XDP program redirects each to the
//! backend namespace its connection ID names, and the backends' sockets count what arrives.

use std::{collections::BTreeMap, net::UdpSocket, sync::mpsc, thread, time::Duration};

use aya::programs::XdpMode;
use integration_tests::{
    attach_router, mint,
    packet::short_header,
    topology::{self, Topology, VIP4, VIP6},
};
use router_common::maps::Outcome;
use router_user::{
    config::{self, RouterConfig},
    netif,
    tables::{BackendIndices, RoutingTables},
};

const PER_BACKEND: usize = 100;

fn router_config(topology: &Topology, dir: &std::path::Path) -> RouterConfig {
    let text = format!(
        r#"
[[listener]]
address = "{VIP4}"
port = 443
[[listener]]
address = "{VIP6}"
port = 443
[[quic_lb]]
config_rotation = 0
server_id_len = 2
nonce_len = 6
[[backend]]
name = "alpha"
server_ids = {{ 0 = ["0a01"] }}
interface = "r1"
next_hop_mac = "{}"
[[backend]]
name = "beta"
server_ids = {{ 0 = ["0a02"] }}
interface = "r2"
next_hop_mac = "{}"
"#,
        topology.backend_mac(0),
        topology.backend_mac(1),
    );
    let path = dir.join("router.toml");
    std::fs::write(&path, text).unwrap();
    config::load(&path).unwrap_or_else(|err| panic!("{err}"))
}

/// Counts the datagrams a backend receives on the VIP until `stop` is sent, by the server ID
/// in their DCID (octets 2..4 of a plaintext codepoint-0 short header).
fn receiver(
    topology: &Topology,
    i: usize,
    vip: &str,
    stop: mpsc::Receiver<()>,
) -> thread::JoinHandle<BTreeMap<String, usize>> {
    let name = topology.backends[i].name.clone();
    let (ready_tx, ready_rx) = mpsc::channel();
    let vip = vip.to_owned();
    let handle = thread::spawn(move || {
        let _inside = topology::enter(&name);
        let socket = UdpSocket::bind((vip.parse::<std::net::IpAddr>().unwrap(), 443)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut seen = BTreeMap::new();
        let mut buf = [0u8; 2048];
        while stop.try_recv().is_err() {
            if let Ok(len) = socket.recv(&mut buf)
                && len > 4
            {
                *seen.entry(hex::encode(&buf[2..4])).or_default() += 1;
            }
        }
        seen
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("receiver ready");
    handle
}

fn send_from_client(topology: &Topology, vip: &str) {
    let name = topology.client.name.clone();
    let vip = vip.to_owned();
    thread::spawn(move || {
        let _inside = topology::enter(&name);
        let unspecified = if vip.contains(':') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let socket = UdpSocket::bind(unspecified).unwrap();
        let vip: std::net::IpAddr = vip.parse().unwrap();
        for i in 0..PER_BACKEND as u64 {
            for server_id in ["0a01", "0a02"] {
                socket
                    .send_to(&short_header(&mint(0, server_id, i)), (vip, 443))
                    .unwrap();
            }
            thread::sleep(Duration::from_micros(200));
        }
    })
    .join()
    .unwrap();
}

fn run(flags: XdpMode) {
    let topology = Topology::new(2);
    let dir = tempfile::tempdir().unwrap();
    let config = router_config(&topology, dir.path());
    let tables = {
        let _inside = topology.router.enter();
        RoutingTables::build(&config, &mut BackendIndices::default(), netif::lookup).unwrap()
    };
    let (_ebpf, dataplane) = attach_router(&topology, &tables, flags);

    for vip in [VIP4, VIP6] {
        let before = dataplane.counters().unwrap();
        let (stops, receivers): (Vec<_>, Vec<_>) = (0..2)
            .map(|i| {
                let (stop_tx, stop_rx) = mpsc::channel();
                (stop_tx, receiver(&topology, i, vip, stop_rx))
            })
            .unzip();
        send_from_client(&topology, vip);
        thread::sleep(Duration::from_millis(300));
        stops.iter().for_each(|stop| stop.send(()).unwrap());
        let seen: Vec<BTreeMap<String, usize>> =
            receivers.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(
            seen[0],
            BTreeMap::from([("0a01".to_owned(), PER_BACKEND)]),
            "alpha via {vip} ({flags:?})"
        );
        assert_eq!(
            seen[1],
            BTreeMap::from([("0a02".to_owned(), PER_BACKEND)]),
            "beta via {vip} ({flags:?})"
        );
        let after = dataplane.counters().unwrap();
        let routed =
            after.outcome(Outcome::RoutedByServerId) - before.outcome(Outcome::RoutedByServerId);
        assert_eq!(routed, 2 * PER_BACKEND as u64, "{vip} {flags:?}");
    }
}

#[test]
fn native_mode_delivers_each_packet_to_the_backend_its_cid_names() {
    run(XdpMode::Driver);
}

#[test]
fn generic_mode_delivers_each_packet_to_the_backend_its_cid_names() {
    run(XdpMode::Skb);
}
