//! A fleet of three routers behind ECMP and BGP (BIRD 2), serving 300 live quinn connections
//! (tests/src/router_fleet.rs has the topology): the connections spread over the routers; a
//! router's controller killed changes nothing; connections migrate; a rolling upgrade swaps
//! every router's program; a planned drain (`withdraw`, `detach`) and a router losing power
//! move its flows to the others. Not one connection breaks; side by side, where each router
//! hashes the 4-tuple its own way (no QUIC-LB), the same failure breaks connections. A dead
//! server leaves every router's new connections. Needs root and bird2.

use std::{
    collections::BTreeSet,
    path::Path,
    time::{Duration, Instant},
};

use integration_tests::{
    addresses::{VIP4, client},
    fleet::{
        OpenConnection, SERVER_IDS_0, answering, connections, exchange_each, exchange_on, issuer,
        open_connections, vips,
    },
    quic::{Backend, Tickets, socket_in},
    router_fleet::{LossMeter, ROUTERS, RouterFleet, Routing, uplink},
};

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");
/// The loss meter's pace: a datagram a millisecond.
const PACE: Duration = Duration::from_millis(1);

/// Every open connection makes one more exchange with its own server.
fn all_alive(fleet: &RouterFleet, open: &[OpenConnection], when: &str) {
    exchange_on(fleet, open).unwrap_or_else(|err| panic!("{when}: {err}"));
}

#[test]
fn routers_fail_drain_and_upgrade_without_breaking_a_connection() {
    let mut fleet = RouterFleet::new(Path::new(BINARY), Routing::QuicLb);

    // One config everywhere: one routing digest.
    let digests = digests(&fleet);
    assert_eq!(digests.len(), 1, "{digests:?}");

    // (a) 300 connections, spread over the three routers by the upstream's ECMP.
    let before: Vec<u64> = (0..ROUTERS).map(|k| fleet.routed(k)).collect();
    let open = open_connections(&fleet, 300, 30_000).unwrap_or_else(|err| panic!("{err}"));
    let carried: Vec<u64> = (0..ROUTERS).map(|k| fleet.routed(k) - before[k]).collect();
    eprintln!("packets each router carried for 300 connections: {carried:?}");
    let total: u64 = carried.iter().sum();
    for (k, &packets) in carried.iter().enumerate() {
        assert!(
            packets * 10 > total,
            "router{k} carried {packets} of {total} packets"
        );
    }
    all_alive(&fleet, &open, "with three routers");

    // (b) A router's controller killed: its data path and its announcement stay.
    fleet.routers[0].controller.take().unwrap().kill();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fleet.paths(VIP4), ROUTERS);
    all_alive(&fleet, &open, "router0's controller killed");

    // Migrations: 30 connections move to new ports, and so (by the 4-tuple hash) to
    // whichever router ECMP picks for them now.
    fleet.runtime.block_on(async {
        for (i, connection) in open.iter().take(30).enumerate() {
            let socket = socket_in(&fleet.client.name, client(false, 40_000 + i as u16));
            connection.endpoint.rebind(socket).unwrap();
        }
    });
    all_alive(&fleet, &open, "after 30 migrations");

    // (d) A rolling upgrade, router by router, to the new binary (its program swapped in:
    // `--debug` makes it another): router0, whose controller was killed, in place under
    // traffic (the swap is atomic); the others withdraw first, wait for the upstream, and
    // announce again.
    let upgraded = fleet.dir.path().join("quic-router-new");
    std::fs::copy(BINARY, &upgraded).unwrap();
    for k in 0..ROUTERS {
        if k != 0 {
            fleet.cli_ok(k, &["withdraw", "--iface", &uplink(k)]);
            fleet.wait_for_paths(ROUTERS - 1);
            fleet.routers[k].controller.take().unwrap().terminate();
        }
        let program_before = program_id(&fleet, k);
        fleet.start_controller(k, &upgraded, &["--debug"]);
        assert_ne!(
            program_id(&fleet, k),
            program_before,
            "router{k}'s program swapped"
        );
        if k != 0 {
            fleet.cli_ok(k, &["announce", "--iface", &uplink(k)]);
        }
        fleet.wait_for_paths(ROUTERS);
        all_alive(&fleet, &open, &format!("router{k} upgraded"));
    }

    // (c) A planned drain: router1 withdraws (BGP takes its flows elsewhere), then detaches.
    let meter = LossMeter::start(&fleet, PACE);
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    fleet.cli_ok(1, &["withdraw", "--iface", &uplink(1)]);
    fleet.wait_for_paths(ROUTERS - 1);
    let drained_in = start.elapsed();
    all_alive(&fleet, &open, "router1 withdrawn");
    fleet.cli_ok(1, &["detach", "--iface", &uplink(1)]);
    all_alive(&fleet, &open, "router1 detached");
    std::thread::sleep(Duration::from_millis(300));
    let loss = meter.stop();
    eprintln!(
        "planned drain: routes moved in {} ms; {loss:?} through the withdraw and the detach",
        drained_in.as_millis()
    );
    assert_eq!(loss.lost, 0, "a planned drain loses nothing: {loss:?}");

    // Router2 loses power: its link and daemons gone at once.
    let flooded = fleet.counter(0, "other_host");
    let meter = LossMeter::start(&fleet, PACE);
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    fleet.power_off(2);
    fleet.wait_for_paths(1);
    let converged_in = start.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let broken = broken(&fleet, &open);
    let loss = meter.stop();
    eprintln!(
        "QUIC-LB, power off: routes moved in {} ms; {loss:?}; {broken} of {} connections broken",
        converged_in.as_millis(),
        open.len()
    );
    assert_eq!(broken, 0);
    // The switch flooded the frames for router2's MAC until BGP moved them; router0 saw them
    // and left them to its stack: nothing arrived twice.
    assert!(fleet.counter(0, "other_host") > flooded);
    assert_eq!(loss.duplicated, 0, "{loss:?}");
}

/// Side by side: the same failure where the fleet routes by a 4-tuple hash that differs
/// per router (servers without QUIC-LB, each router's table its own): the flows that move
/// to another router land on another server, and their connections break.
#[test]
fn with_a_4_tuple_hash_per_router_a_router_failure_breaks_connections() {
    let mut fleet = RouterFleet::new(Path::new(BINARY), Routing::HashPerRouter);
    let digests = digests(&fleet);
    assert_eq!(
        digests.len(),
        ROUTERS,
        "the routers' digests tell them apart"
    );
    let open = open_connections(&fleet, 300, 30_000).unwrap_or_else(|err| panic!("{err}"));
    all_alive(&fleet, &open, "with three routers");
    let flooded: Vec<u64> = (0..2).map(|k| fleet.counter(k, "other_host")).collect();
    let start = Instant::now();
    fleet.power_off(2);
    fleet.wait_for_paths(ROUTERS - 1);
    let converged_in = start.elapsed();
    let broken = broken(&fleet, &open);
    for (k, before) in flooded.into_iter().enumerate() {
        assert!(
            fleet.counter(k, "other_host") > before,
            "router{k} saw no flood"
        );
    }
    eprintln!(
        "4-tuple hash per router, power off: routes moved in {} ms; {broken} of {} connections broken",
        converged_in.as_millis(),
        open.len()
    );
    assert!(broken > 0, "no connection moved to another server");
}

/// A server dies: within the health checks' time no router gives it a new connection, its
/// own connections end, the others carry on; back, it takes new connections again.
#[test]
fn a_dead_server_takes_no_new_connection_from_any_router_until_it_is_back() {
    let mut fleet = RouterFleet::new(Path::new(BINARY), Routing::QuicLb);
    let up = [("alpha", "up"), ("beta", "up"), ("gamma", "up")];
    fleet.wait_for_health(&up);
    let open = open_connections(&fleet, 90, 30_000).unwrap_or_else(|err| panic!("{err}"));
    let on_beta = open.iter().filter(|c| c.backend == "beta").count();
    assert!(on_beta > 0);

    let beta = fleet.servers.remove(1);
    let stopped = Instant::now();
    fleet.runtime.block_on(beta.stop());
    fleet.wait_for_health(&[("alpha", "up"), ("beta", "down"), ("gamma", "up")]);
    let down_in = stopped.elapsed();
    for (connection, result) in open.iter().zip(exchange_each(&fleet, &open, WITHIN)) {
        match result {
            Ok(server) => assert_eq!(server, connection.backend),
            Err(err) => assert_eq!(connection.backend, "beta", "{err}"),
        }
    }
    let new = connections(&fleet, false, 60, 31_000);
    assert!(
        new.iter()
            .all(|r| r.as_ref().is_ok_and(|server| server != "beta")),
        "{new:?}"
    );

    let netns = fleet.backends[1].name.clone();
    let beta = fleet.runtime.block_on(async {
        Backend::start(
            &netns,
            "beta",
            &vips(),
            issuer(SERVER_IDS_0[1]),
            Tickets::Stateful,
            &fleet.certificate,
        )
    });
    fleet.servers.insert(1, beta);
    let started = Instant::now();
    fleet.wait_for_health(&up);
    let up_in = started.elapsed();
    let new = connections(&fleet, false, 60, 32_000);
    assert!(
        new.iter()
            .any(|r| r.as_ref().is_ok_and(|server| server == "beta")),
        "{new:?}"
    );
    eprintln!(
        "server death: every router had beta down {} ms after it stopped ({on_beta} connections ended with it), up {} ms after it started",
        down_in.as_millis(),
        up_in.as_millis()
    );
}

/// How long a request on a live connection may take.
const WITHIN: Duration = Duration::from_secs(5);

/// The open connections whose next request fails or reaches another server.
fn broken(fleet: &RouterFleet, open: &[OpenConnection]) -> usize {
    open.len() - answering(fleet, open, WITHIN)
}

/// The ID of the program attached to router `k`'s uplink.
fn program_id(fleet: &RouterFleet, k: usize) -> u64 {
    let status = fleet.cli_ok(k, &["status", "--iface", &uplink(k), "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    status["program_id"].as_u64().unwrap()
}

/// The routers' routing digests, each once.
fn digests(fleet: &RouterFleet) -> BTreeSet<String> {
    (0..ROUTERS)
        .map(|k| {
            fleet.status(k)["routing_digest"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}
