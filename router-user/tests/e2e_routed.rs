//! End to end across a routed hop: quinn servers in subnets of their own behind a gateway,
//! which the router reaches by the kernel's routes, in GUE over IPv4 and in IP-in-IP over
//! IPv6; each server's decapsulator (`quic-router decap`) unwraps. Connections over both
//! families, migration to a new port and address, resumption by token; and a path whose MTU
//! is too small for some packets, answered by the router; and local workers on a host behind
//! the tunnel, whose own quic-router gives each datagram to its worker; health probes to the
//! servers through the tunnels. Needs root.

use std::{
    net::IpAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use integration_tests::{
    addresses::{client, vip_socket},
    fleet::{
        Fleet, H3Fleet, NAMES, Resume, Round, Servers, WORKER_IFACE, connections, migrate,
        migrate_each, resume,
    },
    quic::{Backend, ClientTls, SERVER_NAME, Tickets, client_endpoint, request},
};

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");

fn routed_fleet(delivery: &'static str, outer_v6: bool, path_mtu: u32) -> Fleet {
    Fleet::with_servers(
        Path::new(BINARY),
        Servers::Routed {
            delivery,
            outer_v6,
            path_mtu,
        },
        Tickets::Stateful,
        None,
    )
}

/// Connections over both families, a migration and resumptions by token, all through
/// `delivery` to the servers' tunnel addresses of one family.
fn across_a_routed_hop(delivery: &'static str, outer_v6: bool) {
    let fleet = routed_fleet(delivery, outer_v6, 1500);
    // Health probes go the packets' way: wrapped, by the kernel's routes, and answered.
    fleet.check_health("interval_ms = 200");
    fleet.wait_for_health(&[("alpha", "up"), ("beta", "up"), ("gamma", "up")]);
    for (v6, port_base) in [(false, 40_000), (true, 41_000)] {
        for result in connections(&fleet, v6, 30, port_base) {
            result.unwrap_or_else(|err| panic!("a connection failed (IPv6: {v6}): {err}"));
        }
    }
    let served: u64 = fleet.backends.iter().map(Backend::connections).sum();
    assert_eq!(served, 60);

    let backends = migrate(&fleet).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        backends.windows(2).all(|pair| pair[0] == pair[1]),
        "the connection changed backends: {backends:?}"
    );

    let round = resume(&fleet, Resume::ByToken, 20, 42_000);
    assert_eq!(
        round.same_server, 20,
        "resumptions back on the first server"
    );
    assert_eq!(round.resumed, 20, "sessions resumed");

    assert!(fleet.counter("routed_by_server_id") > 60 * 3);
    assert!(fleet.counter("routed_by_token") >= 20);
    // (too_big is not zero: quinn probes for an MTU up to 1452-octet datagrams, which do not
    // fit a 1500-octet path once wrapped, and are answered.)
    for outcome in ["unknown_server_id", "redirect_failed", "no_backend"] {
        assert_eq!(fleet.counter(outcome), 0, "{outcome}");
    }
    // Every server took its packets out of the tunnel, and nothing else came to them in one.
    let unwrapped = if delivery == "gue" {
        "decapsulated_gue"
    } else {
        "decapsulated_ipip"
    };
    for (i, name) in NAMES.iter().enumerate() {
        assert!(fleet.decap_counter(i, unwrapped) > 0, "{name}: {unwrapped}");
        for refused in ["foreign_source", "malformed", "nested_tunnel"] {
            assert_eq!(fleet.decap_counter(i, refused), 0, "{name}: {refused}");
        }
    }
}

#[test]
fn gue_over_ipv4_across_a_routed_hop() {
    across_a_routed_hop("gue", false);
}

#[test]
fn ipip_over_ipv6_across_a_routed_hop() {
    across_a_routed_hop("ipip", true);
}

/// A path of 1400 octets and GUE over IPv6 (52 octets): the handshake (1200-octet
/// datagrams) fits, the clients' path MTU probes up to quinn's 1452 do not. The router
/// answers those with "packet too big"; the connections carry on.
#[test]
fn packets_too_big_for_the_path_are_answered_and_connections_complete() {
    let fleet = routed_fleet("gue", true, 1400);
    let netns = fleet.client_netns();
    let tls = ClientTls::new(&fleet.certificate);
    for (v6, port) in [(false, 43_000), (true, 43_001)] {
        let before = fleet.counter("too_big");
        fleet
            .runtime
            .block_on(async {
                let endpoint = client_endpoint(&netns, client(v6, port));
                let connection = endpoint
                    .connect_with(tls.config(None), vip_socket(v6), SERVER_NAME)
                    .map_err(|e| e.to_string())?
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                // Requests go on while the client probes for a larger MTU, until the
                // client's kernel has taken the router's answer (its checksum, its quote of
                // the client's datagram) and lowered its path MTU to the VIP to what the
                // tunnel leaves: 1400 - 52.
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let route = client_route(&netns, vip_socket(v6).ip());
                    if route.contains("mtu 1348") {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(format!("no answer taken in 30 s: {route}"));
                    }
                    request(&connection).await?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                for _ in 0..5 {
                    request(&connection).await?;
                }
                connection.close(0u32.into(), b"done");
                Ok::<_, String>(())
            })
            .unwrap_or_else(|err| panic!("IPv6 inside: {v6}: {err}"));
        assert!(fleet.counter("too_big") > before, "IPv6 inside: {v6}");
    }
    assert_eq!(fleet.counter("redirect_failed"), 0);
}

/// aioquic, a QUIC stack we did not write, as an HTTP/3 client of h3-server behind IP-in-IP
/// over IPv6: each client resumes from a new port with its NEW_TOKEN token and session
/// ticket, and lands on the server that issued them.
#[test]
fn aioquic_clients_resume_on_their_server_across_a_routed_hop() {
    let fleet = H3Fleet::with_servers(
        Path::new(BINARY),
        Servers::Routed {
            delivery: "ipip",
            outer_v6: true,
            path_mtu: 1500,
        },
        Tickets::Stateful,
        true,
    );
    let round = Round::of_aioquic(&fleet.aioquic_rounds(10, 45_000));
    assert_eq!(round.same_server, 10, "back on the first server");
    assert_eq!(round.resumed, 10, "sessions resumed");
    assert!(fleet.counter("routed_by_token") >= 10);
}

/// Four local workers on one host behind the tunnel: the decapsulator hands each inner
/// packet to the host's stack, where the host's own quic-router's socket selection gives it
/// to the worker its CID (or token) names. Each worker keeps its own ticket key: a
/// resumption works only on the worker that issued it.
#[test]
fn local_workers_behind_the_decapsulator_keep_their_connections() {
    let fleet = Fleet::with_servers(
        Path::new(BINARY),
        Servers::RoutedWorkers,
        Tickets::OwnKey,
        None,
    );
    for (v6, port_base) in [(false, 40_000), (true, 41_000)] {
        for result in connections(&fleet, v6, 20, port_base) {
            result.unwrap_or_else(|err| panic!("a connection failed (IPv6: {v6}): {err}"));
        }
    }
    for result in migrate_each(&fleet, 40, 42_000) {
        result.unwrap_or_else(|err| panic!("a migration: {err}"));
    }
    let round = resume(&fleet, Resume::ByToken, 20, 44_000);
    assert_eq!(
        round.same_server, 20,
        "resumptions back on the first worker"
    );
    assert_eq!(round.resumed, 20, "sessions resumed");

    let host = &fleet.deployment.topology.backends[0].name;
    let (status, stdout, stderr) = fleet
        .deployment
        .cli_in(host, &["stats", "--iface", WORKER_IFACE, "--json"]);
    assert_eq!(status, 0, "{stderr}");
    let stats: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let local = |name: &str| stats["outcomes"][name]["packets"].as_u64().unwrap();
    assert!(local("local_worker_by_server_id") > 0, "{stats}");
    assert!(local("local_worker_by_token") >= 20, "{stats}");
    assert_eq!(local("local_not_registered"), 0, "{stats}");
    assert!(fleet.decap_counter(0, "decapsulated_gue") > 0);
}

/// `ip route get ADDRESS` in the client's namespace: the route and its cached path MTU.
fn client_route(netns: &str, address: IpAddr) -> String {
    let out = Command::new("ip")
        .args(["-n", netns, "route", "get", &address.to_string()])
        .output()
        .expect("ip route get");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
