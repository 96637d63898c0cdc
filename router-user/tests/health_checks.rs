//! Backend health checks in the controller (`[health]`), on three hosts reached at L2 (GUE and
//! IP-in-IP: e2e_routed): a server that stops answering takes no new connection once it
//! has missed `fall` probes (its server IDs still route to it), and takes them again after
//! `rise` answers; its health shows in `status`, `stats`, the metrics and the log; a
//! restarted controller keeps it; when every backend is down the checks fail open; and no
//! probe or answer reaches a client.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use integration_tests::{
    addresses::{QUIC_PORT, VIP4, client},
    fleet::{Fleet, NAMES, SERVER_IDS_0, connections, issuer, vips},
    netns,
    packet::{QUIC_V1, initial, short_header},
    process::scrape,
    quic::{Backend, Tickets, socket_in},
};

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");
const METRICS: &str = "127.0.0.1:19471";
/// A probe every 200 ms; down after two unanswered, up after two answered.
const HEALTH: &str = "interval_ms = 200\nrise = 2\nfall = 2";
/// How long the probes may take to arrive, at most.
const WITHIN: Duration = Duration::from_secs(20);

/// UDP datagrams that reached the stack in namespace `netns` (delivered, to no socket, or in
/// error; both families).
fn udp_received(netns: &str) -> u64 {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        let _inside = netns::enter(&netns);
        let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
        let mut lines = snmp.lines().filter(|line| line.starts_with("Udp: "));
        let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
        let v4: u64 = names
            .split_whitespace()
            .zip(values.split_whitespace())
            .filter(|(name, _)| ["InDatagrams", "NoPorts", "InErrors"].contains(name))
            .map(|(_, value)| value.parse::<u64>().unwrap())
            .sum();
        let snmp6 = std::fs::read_to_string("/proc/thread-self/net/snmp6").unwrap();
        let v6: u64 = snmp6
            .lines()
            .filter_map(|line| line.split_once(char::is_whitespace))
            .filter(|(name, _)| ["Udp6InDatagrams", "Udp6NoPorts", "Udp6InErrors"].contains(name))
            .map(|(_, value)| value.trim().parse::<u64>().unwrap())
            .sum();
        v4 + v6
    })
    .join()
    .unwrap()
}

/// Serves backend `i` again (its server ID, both VIPs), in place `i` of the fleet's servers.
fn start_backend(fleet: &mut Fleet, i: usize) {
    let netns = fleet.deployment.topology.backends[i].name.clone();
    let backend = fleet.runtime.block_on(async {
        Backend::start(
            &netns,
            NAMES[i],
            &vips(),
            issuer(SERVER_IDS_0[i]),
            Tickets::Stateful,
            &fleet.certificate,
        )
    });
    fleet.backends.insert(i, backend);
}

/// Stops backend `i`'s server, as its process exiting.
fn stop_backend(fleet: &mut Fleet, i: usize) {
    let backend = fleet.backends.remove(i);
    fleet.runtime.block_on(backend.stop());
}

/// The servers that answered `count` new connections (IPv4 and IPv6 from ports from
/// `port_base`), each of which must succeed.
fn new_connections(fleet: &Fleet, count: u16, port_base: u16) -> BTreeMap<String, usize> {
    let mut answered = BTreeMap::new();
    for v6 in [false, true] {
        for result in connections(fleet, v6, count, port_base + u16::from(v6) * count) {
            let server = result.unwrap_or_else(|err| panic!("a new connection failed: {err}"));
            *answered.entry(server).or_insert(0) += 1;
        }
    }
    answered
}

#[test]
fn a_backend_that_stops_answering_takes_no_new_connections_until_it_answers_again() {
    let mut fleet = Fleet::new(Path::new(BINARY), Tickets::Stateful, None);
    fleet.check_health(HEALTH);
    fleet.controllers.pop().unwrap().terminate();
    fleet
        .controllers
        .push(fleet.deployment.start(&["--metrics-addr", METRICS]));
    fleet.wait_for_health(&[("alpha", "up"), ("beta", "up"), ("gamma", "up")]);

    // Probes go to the backends, and neither they nor their answers reach the client.
    let client_ns = fleet.client_netns();
    let beta_ns = fleet.deployment.topology.backends[1].name.clone();
    let (client_before, beta_before) = (udp_received(&client_ns), udp_received(&beta_ns));
    let start = Instant::now();
    while udp_received(&beta_ns) < beta_before + 5 {
        assert!(start.elapsed() < WITHIN, "beta got no probes");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        udp_received(&client_ns),
        client_before,
        "UDP reached the client"
    );

    stop_backend(&mut fleet, 1);
    let took = fleet.wait_for_health(&[("alpha", "up"), ("beta", "down"), ("gamma", "up")]);
    eprintln!("beta down {} ms after its server stopped", took.as_millis());
    let answered = new_connections(&fleet, 30, 20_000);
    assert_eq!(answered.get("beta"), None, "{answered:?}");
    assert_eq!(answered.values().sum::<usize>(), 60);
    // Its server IDs still route to it: its connections are its own.
    let delivered = |fleet: &Fleet| {
        fleet.deployment.stats()["backends"]["beta"]["packets"]
            .as_u64()
            .unwrap()
    };
    let before = delivered(&fleet);
    let cid = issuer(SERVER_IDS_0[1]).issue();
    let socket = socket_in(&client_ns, client(false, 24_000));
    socket
        .send_to(
            &short_header(&cid),
            (VIP4.parse::<std::net::IpAddr>().unwrap(), QUIC_PORT),
        )
        .unwrap();
    let start = Instant::now();
    while delivered(&fleet) == before {
        assert!(
            start.elapsed() < WITHIN,
            "a packet with beta's CID did not reach beta"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Its health in the operator's views.
    let status = fleet.deployment.cli_ok(&["status", "--iface", "r0"]);
    assert!(
        status.contains("health      2 up, 1 down (beta), 0 unchecked"),
        "{status}"
    );
    assert!(
        status.contains("            beta down: no answer to 2 probes in a row"),
        "{status}"
    );
    let stats = fleet.deployment.stats();
    assert_eq!(stats["backends"]["beta"]["health"], "down", "{stats}");
    assert_eq!(stats["backends"]["alpha"]["health"], "up", "{stats}");
    let metrics = scrape(&fleet.deployment.topology.router.name, METRICS).unwrap();
    assert!(
        metrics.contains("quic_router_backend_up{backend=\"beta\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("quic_router_backend_up{backend=\"alpha\"} 1"),
        "{metrics}"
    );
    let log = fleet.controllers[0].log_text();
    assert!(
        log.lines()
            .any(|line| line.contains("backend down") && line.contains("beta")),
        "{log}"
    );

    // A restarted controller keeps beta out until it answers.
    fleet.controllers.pop().unwrap().terminate();
    fleet.controllers.push(fleet.deployment.start(&[]));
    let answered = new_connections(&fleet, 15, 21_000);
    assert_eq!(answered.get("beta"), None, "{answered:?}");

    start_backend(&mut fleet, 1);
    let took = fleet.wait_for_health(&[("alpha", "up"), ("beta", "up"), ("gamma", "up")]);
    eprintln!("beta up {} ms after its server started", took.as_millis());
    let answered = new_connections(&fleet, 30, 22_000);
    assert!(answered.get("beta").is_some_and(|&n| n > 0), "{answered:?}");
    assert!(
        fleet.controllers[0]
            .log_text()
            .lines()
            .any(|line| line.contains("backend up") && line.contains("beta")),
        "the log says beta is back"
    );
}

#[test]
fn when_every_backend_is_down_new_connections_still_go_to_them_all() {
    let mut fleet = Fleet::new(Path::new(BINARY), Tickets::Stateful, None);
    fleet.check_health(HEALTH);
    fleet.wait_for_health(&[("alpha", "up"), ("beta", "up"), ("gamma", "up")]);
    for i in (0..3).rev() {
        stop_backend(&mut fleet, i);
    }
    fleet.wait_for_health(&[("alpha", "down"), ("beta", "down"), ("gamma", "down")]);
    let status = fleet.deployment.cli_ok(&["status", "--iface", "r0"]);
    assert!(status.contains("failing open"), "{status}");
    // An Initial that names no server still finds one in the fallback table.
    let (hashed, none) = (fleet.counter("initial_hashed"), fleet.counter("no_backend"));
    let socket = socket_in(&fleet.client_netns(), client(false, 23_000));
    let datagram = initial(0xc0, QUIC_V1, &[7; 8], &[9; 8], &[], 1180);
    socket
        .send_to(
            &datagram,
            (VIP4.parse::<std::net::IpAddr>().unwrap(), QUIC_PORT),
        )
        .unwrap();
    let start = Instant::now();
    while fleet.counter("initial_hashed") == hashed {
        assert!(start.elapsed() < WITHIN, "the Initial was not routed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fleet.counter("no_backend"), none);
    assert!(
        fleet.controllers[0]
            .log_text()
            .contains("every active backend is down"),
        "the log says the checks fail open"
    );
}
