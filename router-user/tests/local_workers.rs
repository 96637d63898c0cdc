//! Local delivery: four quinn workers on the router's own host share the VIPs' port 443
//! through SO_REUSEPORT, each with its own server ID and its own session tickets: a ticket
//! key of its own, or stateful tickets (no key at all; rustls takes 0-RTT only with these).
//! The same scenarios run with the workers registered with the router, whose SO_REUSEPORT
//! program gives each datagram to the worker its DCID names, and without (the kernel's
//! 4-tuple hash, what SO_REUSEPORT does by itself). Through the router every connection
//! survives a move to a new port and every resumption (by a CID the worker minted, or by
//! quinn's default client with the worker's NEW_TOKEN token) lands on the worker that issued
//! the session, and a drained worker gets no new connection; without it, most do not, and the
//! drained worker gets its share. Needs root.

use std::{collections::BTreeMap, path::Path};

use integration_tests::{
    fleet::{Fleet, Resume, Servers, WORKER_NAMES, connections, migrate_each, resume},
    quic::Tickets,
};

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");
const CONNECTIONS: u16 = 200;
const RESUMPTIONS: u16 = 100;
/// New connections after one of the four workers is drained.
const DRAINED: u16 = 60;

/// What one fleet of workers did.
struct Rates {
    /// Connections whose exchange completed, per worker.
    spread: BTreeMap<String, u64>,
    connections_failed: Vec<String>,
    /// Connections still on their worker after moving to a new port.
    migrated: usize,
    migration_failures: Vec<String>,
    /// Resumptions on the worker of the first connection, sessions resumed, 0-RTT accepted.
    same_worker: usize,
    resumed: u64,
    zero_rtt: usize,
    /// Resumptions by quinn's default client (its NEW_TOKEN token, a random DCID) on the
    /// worker of the first connection.
    same_worker_by_token: usize,
    /// New connections, after worker0 was drained, that worker0 took anyway.
    on_drained: usize,
    drained_failures: Vec<String>,
    /// The SO_REUSEPORT program's counters.
    by_server_id: u64,
    by_token: u64,
    by_fallback: u64,
    not_registered: u64,
}

fn run(registered: bool, tickets: Tickets) -> Rates {
    let fleet = Fleet::with_servers(
        Path::new(BINARY),
        Servers::LocalWorkers { registered },
        tickets,
        None,
    );
    let mut spread = BTreeMap::new();
    let mut connections_failed = Vec::new();
    for v6 in [false, true] {
        for result in connections(&fleet, v6, CONNECTIONS / 2, 40_000) {
            match result {
                Ok(worker) => *spread.entry(worker).or_default() += 1,
                Err(err) => connections_failed.push(err),
            }
        }
    }
    let (migrated, migration_failures): (Vec<_>, Vec<_>) =
        migrate_each(&fleet, CONNECTIONS, 42_000)
            .into_iter()
            .partition(Result::is_ok);
    let round = resume(&fleet, Resume::ByCid, RESUMPTIONS, 50_000);
    let by_token = resume(&fleet, Resume::ByToken, RESUMPTIONS, 52_000);
    fleet
        .deployment
        .cli_ok(&["backend", "drain", "--iface", "r0", WORKER_NAMES[0]]);
    let (after_drain, drained_failures): (Vec<_>, Vec<_>) =
        connections(&fleet, false, DRAINED, 46_000)
            .into_iter()
            .partition(Result::is_ok);
    let on_drained = after_drain
        .iter()
        .filter(|r| r.as_deref() == Ok(WORKER_NAMES[0]))
        .count();
    let stats = fleet.deployment.stats();
    let local = |name: &str| stats["outcomes"][name]["packets"].as_u64().unwrap();
    Rates {
        spread,
        connections_failed,
        migrated: migrated.len(),
        migration_failures: migration_failures
            .into_iter()
            .filter_map(Result::err)
            .collect(),
        same_worker: round.same_server,
        resumed: round.resumed,
        zero_rtt: round.zero_rtt,
        same_worker_by_token: by_token.same_server,
        on_drained,
        drained_failures: drained_failures
            .into_iter()
            .filter_map(Result::err)
            .collect(),
        by_server_id: local("local_worker_by_server_id"),
        by_token: local("local_worker_by_token"),
        by_fallback: local("local_worker_by_fallback"),
        not_registered: local("local_not_registered"),
    }
}

fn percent(part: u64, whole: u16) -> String {
    format!(
        "{part}/{whole} ({:.0}%)",
        100.0 * part as f64 / f64::from(whole)
    )
}

#[test]
fn workers_get_their_connections_through_migration_and_resumption_only_with_the_router() {
    let routed = run(true, Tickets::OwnKey);
    let plain = run(false, Tickets::OwnKey);
    let stateful = run(true, Tickets::Stateful);
    println!("4 local workers, own ticket keys     router selects by CID   kernel hash only");
    println!(
        "  connections completed              {:>22} {:>18}",
        percent(routed.spread.values().sum(), CONNECTIONS),
        percent(plain.spread.values().sum(), CONNECTIONS)
    );
    println!(
        "  still on their worker after a move {:>22} {:>18}",
        percent(routed.migrated as u64, CONNECTIONS),
        percent(plain.migrated as u64, CONNECTIONS)
    );
    println!(
        "  resumed on the issuing worker      {:>22} {:>18}",
        percent(routed.same_worker as u64, RESUMPTIONS),
        percent(plain.same_worker as u64, RESUMPTIONS)
    );
    println!(
        "  sessions resumed                   {:>22} {:>18}",
        percent(routed.resumed, RESUMPTIONS),
        percent(plain.resumed, RESUMPTIONS)
    );
    println!(
        "  0-RTT accepted                     {:>22} {:>18}",
        percent(routed.zero_rtt as u64, RESUMPTIONS),
        percent(plain.zero_rtt as u64, RESUMPTIONS)
    );
    println!(
        "  default clients back by token      {:>22} {:>18}",
        percent(routed.same_worker_by_token as u64, RESUMPTIONS),
        percent(plain.same_worker_by_token as u64, RESUMPTIONS)
    );
    println!(
        "  new connections on a drained worker   {:>22} {:>18}",
        percent(routed.on_drained as u64, DRAINED),
        percent(plain.on_drained as u64, DRAINED)
    );
    println!(
        "  with stateful tickets through the router: 0-RTT accepted {}",
        percent(stateful.zero_rtt as u64, RESUMPTIONS)
    );
    println!("  spread through the router: {:?}", routed.spread);

    // Through the router: everything, on the right worker.
    assert!(
        routed.connections_failed.is_empty(),
        "{:?}",
        routed.connections_failed
    );
    for worker in WORKER_NAMES {
        assert!(
            routed.spread.get(worker).copied().unwrap_or(0) > 0,
            "{worker} got no connection: {:?}",
            routed.spread
        );
    }
    assert_eq!(
        routed.migrated,
        usize::from(CONNECTIONS),
        "{:?}",
        routed.migration_failures
    );
    assert!(routed.same_worker * 100 >= usize::from(RESUMPTIONS) * 99);
    assert!(routed.resumed * 100 >= u64::from(RESUMPTIONS) * 99);
    assert!(routed.by_server_id > u64::from(CONNECTIONS) * 3);
    assert!(routed.same_worker_by_token * 100 >= usize::from(RESUMPTIONS) * 99);
    assert!(routed.by_token >= u64::from(RESUMPTIONS));
    // New connections went where the fallback table (weights, draining) says.
    assert!(routed.by_fallback >= u64::from(CONNECTIONS));
    assert_eq!(routed.not_registered, 0);
    assert!(
        routed.drained_failures.is_empty(),
        "{:?}",
        routed.drained_failures
    );
    assert_eq!(
        routed.on_drained, 0,
        "a drained worker took new connections"
    );
    assert_eq!(
        stateful.migrated,
        usize::from(CONNECTIONS),
        "{:?}",
        stateful.migration_failures
    );
    assert!(stateful.same_worker * 100 >= usize::from(RESUMPTIONS) * 99);
    assert!(stateful.zero_rtt * 100 >= usize::from(RESUMPTIONS) * 99);

    // By the kernel's hash alone: new connections work (one 4-tuple, one socket), but a move
    // or a resumption from a new port lands on the right worker only by chance (1 in 4).
    assert!(
        plain.connections_failed.is_empty(),
        "{:?}",
        plain.connections_failed
    );
    assert!(
        plain.migrated * 100 < usize::from(CONNECTIONS) * 60,
        "{} of {CONNECTIONS} moves kept their worker without the router",
        plain.migrated
    );
    assert!(
        plain.same_worker * 100 < usize::from(RESUMPTIONS) * 60,
        "{} of {RESUMPTIONS} resumptions found their worker without the router",
        plain.same_worker
    );
    assert!(
        plain.same_worker_by_token * 100 < usize::from(RESUMPTIONS) * 60,
        "{} of {RESUMPTIONS} token resumptions found their worker without the router",
        plain.same_worker_by_token
    );
    assert_eq!(
        plain.by_server_id + plain.by_token,
        0,
        "the program ran without registration"
    );
    // Nor does draining: the kernel's hash does not know it.
    assert!(
        plain.on_drained > 0,
        "the kernel's hash avoided the drained worker"
    );
}
