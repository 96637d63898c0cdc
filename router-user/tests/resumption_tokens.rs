//! Resumption with unmodified clients, through the XDP router: quinn's default client sends
//! the NEW_TOKEN token of its first connection in the Initial of its next, with a random
//! DCID; the servers (quic-lb-quinn's routable tokens, each with its own token and ticket
//! keys) put their server ID in front of every token, and the router routes the Initial by
//! it. Side by side: Initials hashed by 4-tuple, and servers whose tokens carry no server ID.
//! Then servers that demand address validation (Retry), and aioquic as an HTTP/3 client of
//! the h3-server example. Needs root, and aioquic (`cargo xtask provision`).

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use integration_tests::{
    aioquic,
    fleet::{
        Fleet, H3Fleet, KEY0, NAMES, Resume, Round, SERVER_IDS_0, connections, key, params, resume,
        server_id,
    },
    quic::{Backend, Tickets, Tokens},
};
use router_common::quic_lb::{Config, Decoder};

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");
const CLIENTS: u16 = 100;

fn set_tokens(fleet: &Fleet, tokens: Tokens) {
    for backend in &fleet.backends {
        backend.set_tokens(tokens);
    }
}

fn resumption_by_token(tickets: Tickets) {
    let fleet = Fleet::new(Path::new(BINARY), tickets, None);
    let routed_before = fleet.counter("routed_by_token");
    let by_token = resume(&fleet, Resume::ByToken, CLIENTS, 42_000);
    let routed_by_token = fleet.counter("routed_by_token") - routed_before;
    let flows = fleet.counter("routed_by_token_flow");

    set_tokens(&fleet, Tokens::Plain);
    let prefix_off = resume(&fleet, Resume::ByToken, CLIENTS, 44_000);
    set_tokens(&fleet, Tokens::Routable);
    fleet.reconfigure("hash", &[0], &[0]);
    let by_hash = resume(&fleet, Resume::ByToken, CLIENTS, 46_000);

    let row = |what: &str, get: fn(&Round) -> u64| {
        println!(
            "| {what} | {} | {} | {} |",
            get(&by_token),
            get(&by_hash),
            get(&prefix_off)
        );
    };
    println!(
        "| {tickets:?} tickets, {CLIENTS} quinn default clients, 3 backends | routed by token | Initials hashed | no server ID in tokens |"
    );
    println!("|---|---:|---:|---:|");
    row("back on the first server", |r| r.same_server as u64);
    row("session resumed", |r| r.resumed);
    row("0-RTT accepted", |r| r.zero_rtt as u64);
    println!("Initials routed by token: {routed_by_token}; packets by token flow: {flows}");

    let clients = u64::from(CLIENTS);
    assert!(
        by_token.same_server as u64 * 100 >= 99 * clients,
        "only {} of {CLIENTS} came back to their first server",
        by_token.same_server
    );
    assert!(
        by_token.resumed * 100 >= 99 * clients,
        "only {} of {CLIENTS} resumed through the router",
        by_token.resumed
    );
    assert!(
        routed_by_token >= by_token.same_server as u64,
        "{routed_by_token} Initials routed by token for {} resumptions",
        by_token.same_server
    );
    if tickets == Tickets::Stateful {
        assert!(
            by_token.zero_rtt as u64 * 100 >= 99 * clients,
            "only {} 0-RTT accepted",
            by_token.zero_rtt
        );
    }
    // Without token routing about a third land on their first server (three backends).
    for (what, round) in [("hashed", &by_hash), ("without server IDs", &prefix_off)] {
        assert!(
            round.resumed * 100 < 70 * clients,
            "{} of {CLIENTS} resumed with tokens {what}",
            round.resumed
        );
    }
}

#[test]
fn quinn_default_clients_resume_on_their_server_stateful_tickets() {
    resumption_by_token(Tickets::Stateful);
}

#[test]
fn quinn_default_clients_resume_on_their_server_per_server_ticket_keys() {
    resumption_by_token(Tickets::OwnKey);
}

/// Servers that demand address validation: every connection completes through the router,
/// the client's second Initial is routed by the Retry token; a client that comes back with a
/// NEW_TOKEN token has its address validated by it (no second Retry) on its first server.
#[test]
fn retry_tokens_route_and_new_tokens_validate() {
    const COUNT: u16 = 60;
    let fleet = Fleet::new(Path::new(BINARY), Tickets::Stateful, None);
    for backend in &fleet.backends {
        backend.set_retry(true);
    }
    let retries = |fleet: &Fleet| fleet.backends.iter().map(Backend::retries).sum::<u64>();
    let routed_before = fleet.counter("routed_by_token");
    for result in connections(&fleet, false, COUNT, 40_000) {
        result.unwrap_or_else(|err| panic!("a connection behind Retry failed: {err}"));
    }
    // At least one each (a retransmitted first Initial gets another).
    assert!(
        retries(&fleet) >= u64::from(COUNT),
        "{} Retry packets for {COUNT} connections",
        retries(&fleet)
    );
    let routed = fleet.counter("routed_by_token") - routed_before;
    assert!(
        routed >= u64::from(COUNT),
        "{routed} Initials routed by their Retry token, for {COUNT} connections"
    );

    const CLIENTS: u16 = 30;
    let validated = |fleet: &Fleet| {
        fleet
            .backends
            .iter()
            .map(Backend::validated_by_new_token)
            .sum::<u64>()
    };
    assert_eq!(validated(&fleet), 0);
    let round = resume(&fleet, Resume::ByToken, CLIENTS, 50_000);
    assert_eq!(round.same_server, usize::from(CLIENTS));
    assert!(
        validated(&fleet) >= u64::from(CLIENTS),
        "{} of {CLIENTS} returning clients validated by their NEW_TOKEN token",
        validated(&fleet)
    );
}

/// The tokens the servers gave one client address (every aioquic round comes from the
/// client's one address): each decodes to the server that issued it, no two share a nonce,
/// and no two share six octets in a row (the config is encrypted: by chance, about one run in
/// twenty million would).
fn check_tokens(rounds: &[aioquic::Round]) {
    let mut decoder = Decoder::new();
    decoder.insert(Config::new(params(0), Some(key(KEY0).aes128())).unwrap());
    let mut nonces = HashSet::new();
    let mut windows: HashMap<[u8; 6], usize> = HashMap::new();
    for (i, round) in rounds.iter().enumerate() {
        let token = round.token.as_deref().expect("the client got a token");
        let (block, _) = decoder.token_block(token).unwrap();
        let decoded = decoder.decode(block).unwrap();
        let issuer = NAMES
            .iter()
            .zip(SERVER_IDS_0)
            .find(|(_, id)| server_id(id) == decoded.server_id.as_slice())
            .map(|(name, _)| *name);
        assert_eq!(issuer, Some(round.first.as_str()), "round {i}: {round:?}");
        assert!(nonces.insert(decoded.nonce), "round {i}: a nonce again");
        for window in token.windows(6) {
            let window: [u8; 6] = window.try_into().unwrap();
            if let Some(&other) = windows.get(&window)
                && other != i
            {
                panic!("rounds {other} and {i}: tokens share {window:02x?}");
            }
            windows.insert(window, i);
        }
    }
}

/// aioquic, a QUIC and HTTP/3 stack we did not write, as an HTTP/3 client of h3-server
/// behind the router: it saves the NEW_TOKEN token and the session ticket of its first
/// connection and resumes with both from a new port. With `compare`, also with Initials
/// hashed and with servers whose tokens carry no server ID (fewer rounds: they show a rate
/// near a third).
fn aioquic_resumption(tickets: Tickets, compare: bool) {
    const COMPARED: u16 = 40;
    let fleet = H3Fleet::new(Path::new(BINARY), tickets, true);
    let rounds = fleet.aioquic_rounds(CLIENTS, 42_000);
    check_tokens(&rounds);
    let by_token = Round::of_aioquic(&rounds);
    let (routed, flows) = (
        fleet.counter("routed_by_token"),
        fleet.counter("routed_by_token_flow"),
    );
    println!(
        "{tickets:?} tickets, {CLIENTS} aioquic clients, h3-server x 3, routed by token: \
         back on the first server {}, session resumed {}, 0-RTT accepted {}; Initials routed \
         by token {routed}, packets by token flow {flows}",
        by_token.same_server, by_token.resumed, by_token.zero_rtt
    );
    let clients = usize::from(CLIENTS);
    assert!(by_token.same_server * 100 >= 99 * clients, "{by_token:?}");
    assert!(
        by_token.resumed * 100 >= 99 * clients as u64,
        "{by_token:?}"
    );
    assert!(routed >= u64::from(CLIENTS));
    if tickets == Tickets::Stateful {
        assert!(by_token.zero_rtt * 100 >= 99 * clients, "{by_token:?}");
    }
    if !compare {
        return;
    }
    fleet.reconfigure("hash");
    let by_hash = Round::of_aioquic(&fleet.aioquic_rounds(COMPARED, 44_000));
    drop(fleet);
    let fleet = H3Fleet::new(Path::new(BINARY), tickets, false);
    let prefix_off = Round::of_aioquic(&fleet.aioquic_rounds(COMPARED, 46_000));
    println!(
        "of {COMPARED}: Initials hashed {by_hash:?}, no server ID in tokens {prefix_off:?} \
         (on the first server, resumed, 0-RTT accepted)"
    );
    for round in [by_hash, prefix_off] {
        assert!(round.resumed * 100 < 70 * u64::from(COMPARED), "{round:?}");
    }
}

#[test]
fn aioquic_resumes_on_its_server_stateful_tickets() {
    aioquic_resumption(Tickets::Stateful, true);
}

#[test]
fn aioquic_resumes_on_its_server_per_server_ticket_keys() {
    aioquic_resumption(Tickets::OwnKey, false);
}
