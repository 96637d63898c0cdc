//! `cargo xtask demo`: the router at work on a built-in topology. A client namespace, the
//! router's namespace (quic-router with its XDP program attached in native mode) and three
//! backend namespaces with quinn servers that mint QUIC-LB connection IDs and routable tokens,
//! then HTTP/3 servers (h3-server) for aioquic clients, then the quinn servers in subnets of
//! their own behind a routed hop (GUE). Runs short forms of the end-to-end scenarios and
//! prints what happened. Removes everything when done.
//!
//! With `--fleet`: three routers behind an upstream router, BGP through BIRD 2 and ECMP, 300
//! live connections through a killed controller, a drain, a power-off, and the same power-off
//! where each router hashes the 4-tuple its own way.
//!
//! Usage: demo QUIC_ROUTER_BINARY [--fleet]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use integration_tests::{
    fleet::{
        Fleet, H3Fleet, Resume, Round, Servers, answering, connections, drain, migrate,
        open_connections, resume,
    },
    quic::{Tickets, Tokens},
    router_fleet::{LossMeter, ROUTERS, RouterFleet, Routing, uplink},
};
use router_common::counters::Outcome;

fn main() {
    let Some(binary) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: demo QUIC_ROUTER_BINARY [--fleet]");
        std::process::exit(2);
    };
    let started = Instant::now();
    match std::env::args().nth(2).as_deref() {
        None => {}
        Some("--fleet") => {
            fleet_demo(&binary);
            println!(
                "\nDone in {:.0} s; namespaces, daemons and pins removed.",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        Some(other) => {
            eprintln!(
                "demo: unknown argument {other:?} (usage: demo QUIC_ROUTER_BINARY [--fleet])"
            );
            std::process::exit(2);
        }
    }
    println!("Setting up: client -- router (quic-router, XDP native) -- alpha, beta, gamma");
    println!(
        "  addresses from 198.18.0.0/15 and 2001:db8::/32; VIP 198.18.0.10 / 2001:db8::10, UDP 443"
    );
    println!("  QUIC-LB: codepoint 0, four-pass AES-128, 2-octet server IDs, 6-octet nonces\n");
    let fleet = Fleet::new(&binary, Tickets::Stateful, None);

    // (a) New connections spread by the fallback hash; every later packet by server ID.
    let results = connections(&fleet, false, 60, 40_000);
    let mut spread: BTreeMap<String, u32> = BTreeMap::new();
    let mut failed = 0;
    for result in &results {
        match result {
            Ok(backend) => *spread.entry(backend.clone()).or_default() += 1,
            Err(_) => failed += 1,
        }
    }
    println!("(a) 60 new connections, each: handshake, one request, close");
    for (backend, count) in &spread {
        println!("      {backend:<6} {count:>3} connections");
    }
    println!("      failed: {failed}\n");

    // (b) Migration.
    match migrate(&fleet) {
        Ok(backends) => println!(
            "(b) one connection moved to a new port, then to a new address: answered by {}\n",
            backends.join(" -> ")
        ),
        Err(e) => println!("(b) migration failed: {e}\n"),
    }

    // (c) Resumption without a shared ticket key, then with Initials hashed by 4-tuple.
    const CLIENTS: u16 = 30;
    let by_cid = resume(&fleet, Resume::ByCid, CLIENTS, 46_000);
    fleet.reconfigure("hash", &[0], &[0]);
    let by_hash = resume(&fleet, Resume::ByCid, CLIENTS, 48_000);
    fleet.reconfigure("cid", &[0], &[0]);
    println!(
        "(c) resumption: {CLIENTS} clients each resume, from a new port, with a CID their first"
    );
    println!(
        "    server minted as the Initial's DCID. Each server keeps its own sessions (stateful"
    );
    println!("    tickets: no ticket key at all, nothing shared).");
    print_rates(
        CLIENTS,
        &["Initials routed by CID", "Initials hashed by 4-tuple"],
        &[&by_cid, &by_hash],
    );

    // (d) Resumption with unmodified clients: quinn's default client sends its NEW_TOKEN
    // token back, and the servers' tokens name them.
    let by_token = resume(&fleet, Resume::ByToken, CLIENTS, 52_000);
    fleet.reconfigure("hash", &[0], &[0]);
    let token_hashed = resume(&fleet, Resume::ByToken, CLIENTS, 54_000);
    fleet.reconfigure("cid", &[0], &[0]);
    set_tokens(&fleet, Tokens::Plain);
    let plain_tokens = resume(&fleet, Resume::ByToken, CLIENTS, 56_000);
    set_tokens(&fleet, Tokens::Routable);
    println!(
        "(d) resumption with unmodified clients: {CLIENTS} quinn clients with default settings"
    );
    println!(
        "    (random DCIDs) resume from a new port; their Initial carries the NEW_TOKEN token"
    );
    println!("    of the first connection, which starts with the issuing server's ID.");
    print_rates(
        CLIENTS,
        &[
            "routed by token",
            "Initials hashed",
            "no server ID in tokens",
        ],
        &[&by_token, &token_hashed, &plain_tokens],
    );

    // (e) Draining.
    match open_connections(&fleet, 6, 50_000) {
        Ok(open) => {
            let result = drain(&fleet, &open, 30, 51_000);
            let to_drained = result
                .new_backends
                .iter()
                .filter(|b| **b == result.drained)
                .count();
            let plural = if result.open_on_drained == 1 { "" } else { "s" };
            println!(
                "(e) drained {}: {to_drained} of 30 new connections went to it; its {} open connection{plural} {}\n",
                result.drained,
                result.open_on_drained,
                match &result.open_after {
                    Ok(()) => "finished their exchange".to_owned(),
                    Err(e) => format!("failed: {e}"),
                }
            );
        }
        Err(e) => println!("(e) could not open connections: {e}\n"),
    }

    println!("Connections per backend, as the servers counted them:");
    for backend in &fleet.backends {
        println!(
            "      {:<6} {:>4} connections, {:>3} resumed sessions",
            backend.name,
            backend.connections(),
            backend.resumed()
        );
    }
    println!("\nThe router's counters (quic-router stats):");
    let stats = fleet.deployment.stats();
    for outcome in Outcome::ALL {
        let packets = stats["outcomes"][outcome.name()]["packets"]
            .as_u64()
            .unwrap_or(0);
        if packets > 0 {
            println!("      {:<22} {packets:>7} packets", outcome.name());
        }
    }
    for backend in fleet.backends.iter().map(|backend| backend.name.as_str()) {
        let delivered = &stats["backends"][backend];
        println!(
            "      to {backend:<19} {:>7} packets {:>9} octets",
            delivered["packets"].as_u64().unwrap_or(0),
            delivered["bytes"].as_u64().unwrap_or(0)
        );
    }
    drop(fleet);

    // (f) The same with a QUIC stack we did not write: aioquic, as an HTTP/3 client of the
    // h3-server example.
    println!("\nSetting up again with HTTP/3 servers (h3-server) on alpha, beta and gamma");
    let h3 = H3Fleet::new(&binary, Tickets::Stateful, true);
    let by_token = Round::of_aioquic(&h3.aioquic_rounds(CLIENTS, 42_000));
    h3.reconfigure("hash");
    let hashed = Round::of_aioquic(&h3.aioquic_rounds(CLIENTS, 44_000));
    println!(
        "(f) {CLIENTS} aioquic HTTP/3 clients each GET, save the NEW_TOKEN token and the session"
    );
    println!("    ticket, and resume from a new port with both.");
    print_rates(
        CLIENTS,
        &["routed by token", "Initials hashed"],
        &[&by_token, &hashed],
    );
    drop(h3);

    routed_hop(&binary, CLIENTS);
    println!(
        "\nDone in {:.1} s; removing the namespaces.",
        started.elapsed().as_secs_f64()
    );
}

/// (g) The backends in subnets of their own behind a gateway, reached in GUE by the kernel's
/// routes, each unwrapping with `quic-router decap`.
fn routed_hop(binary: &Path, clients: u16) {
    println!(
        "\nSetting up again with alpha, beta and gamma in subnets of their own behind a gateway:"
    );
    println!(
        "  the router reaches them in GUE over IPv4 by its kernel routes (bpf_fib_lookup), each"
    );
    println!(
        "  unwraps with quic-router decap; the router's link to the gateway has an MTU of 1400"
    );
    let fleet = Fleet::with_servers(
        binary,
        Servers::Routed {
            delivery: "gue",
            outer_v6: false,
            path_mtu: 1400,
        },
        Tickets::Stateful,
        None,
    );
    let ok = |results: Vec<Result<String, String>>| results.iter().filter(|r| r.is_ok()).count();
    let v4 = ok(connections(&fleet, false, 30, 40_000));
    let v6 = ok(connections(&fleet, true, 30, 41_000));
    println!("(g) 30 connections over IPv4: {v4} completed; 30 over IPv6: {v6} completed");
    match migrate(&fleet) {
        Ok(backends) => println!(
            "    one connection moved to a new port, then a new address: answered by {}",
            backends.join(" -> ")
        ),
        Err(e) => println!("    migration failed: {e}"),
    }
    let by_token = resume(&fleet, Resume::ByToken, clients, 52_000);
    println!(
        "    {clients} quinn default clients resumed from a new port: {} back on the first server, {} sessions resumed",
        by_token.same_server, by_token.resumed
    );
    println!(
        "    the router: {} packets routed by server ID, {} by token, {} too big for the path (answered with ICMP), {} passed to the stack until the gateway's neighbour entry was made",
        fleet.counter("routed_by_server_id"),
        fleet.counter("routed_by_token"),
        fleet.counter("too_big"),
        fleet.counter("next_hop_unresolved")
    );
    for (i, backend) in fleet.backends.iter().enumerate() {
        println!(
            "    {:<6} unwrapped {:>5} GUE packets",
            backend.name,
            fleet.decap_counter(i, "decapsulated_gue")
        );
    }
}

fn set_tokens(fleet: &Fleet, tokens: Tokens) {
    for backend in &fleet.backends {
        backend.set_tokens(tokens);
    }
}

/// The fleet variant: what the routers' failures do to 300 live connections.
fn fleet_demo(binary: &Path) {
    println!("Setting up: client -- upstream router (BIRD 2, ECMP over the 4-tuple)");
    println!("            == router0, router1, router2 (quic-router + BIRD each, BGP)");
    println!("            -- alpha, beta, gamma (quinn, QUIC-LB CIDs; answers go straight back)");
    println!("  each controller keeps the VIPs' routes in kernel table 100; BIRD announces them");
    println!("  BGP hold time 3 s; health checks every 500 ms\n");
    let mut fleet = RouterFleet::new(binary, Routing::QuicLb);
    let before: Vec<u64> = (0..ROUTERS).map(|k| fleet.routed(k)).collect();
    let open = match open_connections(&fleet, 300, 30_000) {
        Ok(open) => open,
        Err(err) => {
            println!("could not open 300 connections: {err}");
            return;
        }
    };
    let carried: Vec<u64> = (0..ROUTERS).map(|k| fleet.routed(k) - before[k]).collect();
    let total: u64 = carried.iter().sum::<u64>().max(1);
    println!("(a) 300 connections opened (one request each); packets each router carried:");
    for (k, packets) in carried.iter().enumerate() {
        println!(
            "      router{k} {packets:>6} packets ({:.0}%)",
            100.0 * *packets as f64 / total as f64
        );
    }
    let report = |fleet: &RouterFleet, what: &str| {
        let alive = answering(fleet, &open, Duration::from_secs(5));
        println!("      {what}: {alive}/300 connections answered by their own server");
    };

    println!("\n(b) router0's controller killed (its data path and routes stay)");
    if let Some(controller) = fleet.routers[0].controller.take() {
        controller.kill();
    }
    report(&fleet, "after");

    println!("\n(c) router1 drained: quic-router withdraw, then detach");
    let meter = LossMeter::start(&fleet, Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    fleet.cli_ok(1, &["withdraw", "--iface", &uplink(1)]);
    let moved = fleet.wait_for_paths(2).max(start.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    let loss = meter.stop();
    println!(
        "      the upstream's route dropped router1 {} ms after the withdraw",
        moved.as_millis()
    );
    println!(
        "      paced datagrams (1 a ms over 32 flows): {} sent, {} lost",
        loss.sent, loss.lost
    );
    report(&fleet, "after the withdraw");
    fleet.cli_ok(1, &["detach", "--iface", &uplink(1)]);
    report(&fleet, "after the detach");

    println!(
        "\n(d) router2 loses power: links and daemons gone at once; the upstream's link to the"
    );
    println!("    switch stays up; the switch floods router2's frames to the other ports");
    let flooded = fleet.counter(0, "other_host");
    let meter = LossMeter::start(&fleet, Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    fleet.power_off(2);
    fleet.wait_for_paths(1);
    let moved = start.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let loss = meter.stop();
    println!(
        "      BGP withdrew router2's routes {} ms after the power went (hold time)",
        moved.as_millis()
    );
    println!(
        "      paced datagrams: {} sent, {} lost, {} duplicated; longest gap {} ms",
        loss.sent,
        loss.lost,
        loss.duplicated,
        loss.longest_gap.as_millis()
    );
    println!(
        "      router0 left {} flooded frames for router2's MAC to its stack (other_host)",
        fleet.counter(0, "other_host") - flooded
    );
    report(&fleet, "after");
    drop(fleet);

    println!("\nSide by side: the same power-off where each router hashes the 4-tuple its own way");
    println!("(servers without QUIC-LB; what a stateful or non-QUIC-LB balancer risks)");
    let mut fleet = RouterFleet::new(binary, Routing::HashPerRouter);
    let open = match open_connections(&fleet, 300, 30_000) {
        Ok(open) => open,
        Err(err) => {
            println!("could not open 300 connections: {err}");
            return;
        }
    };
    fleet.power_off(2);
    fleet.wait_for_paths(2);
    let alive = answering(&fleet, &open, Duration::from_secs(5));
    println!(
        "      router2 powered off: {alive}/300 connections answered by their own server, {} broken",
        300 - alive
    );
}

/// A table of resumption rates, one column per round.
fn print_rates(clients: u16, columns: &[&str], rounds: &[&Round]) {
    let percent = |n: u64| {
        format!(
            "{n}/{clients} ({:.0}%)",
            100.0 * n as f64 / f64::from(clients)
        )
    };
    let row = |label: &str, cells: Vec<String>| {
        let cells: String = cells.iter().map(|cell| format!(" {cell:>24}")).collect();
        println!("      {label:<26}{cells}");
    };
    row("", columns.iter().map(|c| c.to_string()).collect());
    row(
        "back on the first server",
        rounds
            .iter()
            .map(|r| percent(r.same_server as u64))
            .collect(),
    );
    row(
        "session resumed",
        rounds.iter().map(|r| percent(r.resumed)).collect(),
    );
    row(
        "0-RTT accepted",
        rounds.iter().map(|r| percent(r.zero_rtt as u64)).collect(),
    );
    println!();
}
