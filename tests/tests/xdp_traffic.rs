//! Real traffic through the attached program, native and generic mode: a client namespace
//! sends QUIC short-header packets to the VIP, the router's XDP program redirects each to the
//! backend namespace its connection ID names, and the backends' sockets count what arrives.

use std::{
    collections::BTreeMap,
    net::{IpAddr, UdpSocket},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use integration_tests::{
    ConfigFile,
    addresses::{QUIC_PORT, VIP4, VIP6},
    attach_router,
    config_text::{BackendText, ConfigText},
    fixtures::mint,
    netns,
    packet::short_header,
    topology::Topology,
};
use router_common::counters::Outcome;
use router_user::router::Mode;

const PER_BACKEND: usize = 100;
/// How long a backend waits for its packets before it reports what it has.
const DEADLINE: Duration = Duration::from_secs(10);

fn router_config(topology: &Topology) -> ConfigFile {
    ConfigFile::with_text(|_| {
        ConfigText::new()
            .listener(VIP4, QUIC_PORT, None)
            .listener(VIP6, QUIC_PORT, None)
            .quic_lb(0, 2, 6, 0, None)
            .backend(
                &BackendText::host("alpha", "r1", &topology.backend_mac(0)).server_id(0, "0a01"),
            )
            .backend(
                &BackendText::host("beta", "r2", &topology.backend_mac(1)).server_id(0, "0a02"),
            )
    })
}

/// Counts the datagrams backend `i` receives on the VIP, by the server ID in their DCID
/// (octets 2..4 of a plaintext codepoint-0 short header), until it has `expected` of them
/// (or the deadline passes: then the count tells what went astray).
fn receiver(
    topology: &Topology,
    i: usize,
    vip: &str,
    expected: usize,
) -> thread::JoinHandle<BTreeMap<String, usize>> {
    let name = topology.backends[i].name.clone();
    let (ready_tx, ready_rx) = mpsc::channel();
    let vip: IpAddr = vip.parse().unwrap();
    let handle = thread::spawn(move || {
        let _inside = netns::enter(&name);
        let socket = UdpSocket::bind((vip, QUIC_PORT)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut seen = BTreeMap::new();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + DEADLINE;
        while seen.values().sum::<usize>() < expected && Instant::now() < deadline {
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
        let _inside = netns::enter(&name);
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
                    .send_to(&short_header(&mint(0, server_id, i)), (vip, QUIC_PORT))
                    .unwrap();
            }
            thread::sleep(Duration::from_micros(200));
        }
    })
    .join()
    .unwrap();
}

fn run(flags: Mode) {
    let topology = Topology::new(2);
    let config = router_config(&topology).load();
    let router = attach_router(&topology, &config, flags);

    for vip in [VIP4, VIP6] {
        let before = router.counters().unwrap();
        let receivers: Vec<_> = (0..2)
            .map(|i| receiver(&topology, i, vip, PER_BACKEND))
            .collect();
        send_from_client(&topology, vip);
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
        let after = router.counters().unwrap();
        let routed =
            after.outcome(Outcome::RoutedByServerId) - before.outcome(Outcome::RoutedByServerId);
        assert_eq!(routed, 2 * PER_BACKEND as u64, "{vip} {flags:?}");
    }
}

#[test]
fn native_mode_delivers_each_packet_to_the_backend_its_cid_names() {
    run(Mode::Native);
}

#[test]
fn generic_mode_delivers_each_packet_to_the_backend_its_cid_names() {
    run(Mode::Skb);
}
