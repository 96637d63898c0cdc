//! aioquic, a QUIC and HTTP/3 stack independent of quinn and rustls, against the h3-server
//! library, each test in a network namespace of its own (loopback only). The client resumes
//! from a new port with the NEW_TOKEN token and the session ticket of its first connection;
//! the tests check what the client saw and what the server counted. Needs root (`ip netns`)
//! and aioquic (`cargo xtask provision`).

use std::{
    fs,
    net::{SocketAddr, UdpSocket},
    path::PathBuf,
    time::Duration,
};

use h3_server::{Counters, Identity, Limits, Options, Server, Tickets};
use integration_tests::{
    aioquic::{ResumeClient, Round},
    netns::Netns,
    quic::socket_in,
};
use quic_lb_quinn::{CidIssuer, IssuerConfig};
use router_common::quic_lb::{Aes128, Config, ConfigParams, Decoder, Key};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const NAME: &str = "alpha";
const SERVER_NAME: &str = "h3.quic-router.test";
/// The server's QUIC-LB config: codepoint 1, four-pass AES (2 + 6 octets), server ID 0a01.
const PARAMS: ConfigParams = ConfigParams::new(1, 2, 6);
const KEY: [u8; 16] = *b"interop-test-key";
const SERVER_ID: [u8; 2] = [0x0a, 0x01];
const ROUNDS: u32 = 3;
/// How long the server may take to count what the client has already seen done.
const COUNTED_WITHIN: Duration = Duration::from_secs(5);

/// A server in a namespace of its own, on loopback; everything is removed on drop (the
/// server's endpoints first, then its runtime, then the namespace), also when a test panics.
struct Setup {
    server: Server,
    runtime: tokio::runtime::Runtime,
    netns: Netns,
    /// The server's certificate, for the client to trust.
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new(listen: &str, tickets: Tickets, token_prefix: bool, retry: bool) -> Self {
        let netns = Netns::create("h3");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
            .expect("self-signed certificate");
        let ca = dir.path().join("ca.pem");
        fs::write(&ca, certified.cert.pem()).expect("write the certificate");
        let identity = Identity::new(
            vec![certified.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der())),
        );
        let options = Options {
            name: NAME.to_owned(),
            issuer: CidIssuer::new(IssuerConfig {
                params: PARAMS,
                key: Some(Key::from_slice(&KEY).expect("16 octets")),
                server_id: SERVER_ID.to_vec(),
            })
            .expect("QUIC-LB issuer"),
            identity,
            tickets,
            token_prefix,
            retry,
            limits: Limits::default(),
        };
        let addr: SocketAddr = listen.parse().expect("an address");
        let socket: UdpSocket = socket_in(&netns.name, addr);
        let server = {
            let _inside = runtime.enter();
            Server::on_sockets(options, vec![socket]).unwrap_or_else(|err| panic!("{err}"))
        };
        Self {
            server,
            runtime,
            netns,
            ca,
            _dir: dir,
        }
    }

    /// `ROUNDS` rounds of the aioquic resume client.
    fn resume(&self, send_token: bool) -> Vec<Round> {
        ResumeClient {
            server: self.server.local_addrs()[0],
            server_name: SERVER_NAME,
            ca: &self.ca,
            first_port: 40000,
            second_port: 41000,
            rounds: ROUNDS,
            send_token,
        }
        .run_in(&self.netns.name)
    }

    /// The server's counters once it has counted every handshake of the client's rounds (the
    /// client can finish before the server has read its last Finished).
    fn counters_after_rounds(&self) -> Counters {
        self.runtime
            .block_on(
                self.server
                    .wait_for(|c| c.connections >= 2 * u64::from(ROUNDS), COUNTED_WITHIN),
            )
            .unwrap_or_else(|counters| panic!("handshakes not counted: {counters:?}"))
    }
}

/// The server ID that a token's routable block names, if it names one under [`PARAMS`].
fn token_server_id(token: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = Decoder::<Aes128>::new();
    decoder.insert(
        Config::new(
            PARAMS,
            Some(Key::from_slice(&KEY).expect("16 octets").aes128()),
        )
        .expect("config"),
    );
    let (_, server_id) = decoder.token_server_id(token).ok()?;
    Some(server_id.as_slice().to_vec())
}

fn assert_answers_and_token(rounds: &[Round]) {
    for round in rounds {
        assert_eq!(round.first, NAME, "{round:?}");
        assert_eq!(round.second, NAME, "{round:?}");
        assert!(round.token_sent && round.token.is_some(), "{round:?}");
    }
}

#[test]
fn aioquic_resumes_with_a_routable_token_and_0rtt_on_stateful_tickets() {
    let setup = Setup::new("127.0.0.1:443", Tickets::Stateful, true, false);
    let rounds = setup.resume(true);
    assert_answers_and_token(&rounds);
    for round in &rounds {
        let token = round.token.as_deref().expect("a token");
        assert_eq!(
            token_server_id(token).as_deref(),
            Some(&SERVER_ID[..]),
            "the token does not start with this server's routable block: {round:?}"
        );
        assert!(round.resumed, "TLS session not resumed: {round:?}");
        assert!(
            round.early_data_offered && round.early_data_accepted,
            "rustls takes aioquic's 0-RTT GET under a stateful ticket: {round:?}"
        );
    }
    let rounds = u64::from(ROUNDS);
    assert_eq!(
        setup.counters_after_rounds(),
        Counters {
            connections: 2 * rounds,
            resumed: rounds,
            zero_rtt_accepted: rounds,
            requests: 2 * rounds,
            // Every second connection's token, and no other, validated the client's address.
            validated: rounds,
            retries: 0,
            refused: 0,
        }
    );
}

#[test]
fn without_the_token_prefix_the_token_still_flows() {
    let setup = Setup::new("[::1]:443", Tickets::Stateful, false, false);
    let rounds = setup.resume(true);
    assert_answers_and_token(&rounds);
    // quinn's own tokens start with random octets: one may name this server by chance
    // (about 1 in 2^19), all of them not.
    assert!(
        !rounds.iter().all(
            |round| token_server_id(round.token.as_deref().expect("a token")).as_deref()
                == Some(&SERVER_ID[..])
        ),
        "tokens carry the routable block: {rounds:?}"
    );
    assert!(
        rounds
            .iter()
            .all(|round| round.resumed && round.early_data_accepted)
    );
    let counters = setup.counters_after_rounds();
    assert_eq!(counters.validated, u64::from(ROUNDS), "{counters:?}");
}

#[test]
fn without_the_token_the_address_is_not_validated() {
    let setup = Setup::new("127.0.0.1:443", Tickets::Stateful, true, false);
    let rounds = setup.resume(false);
    assert!(
        rounds
            .iter()
            .all(|round| !round.token_sent && round.resumed && round.second == NAME),
        "{rounds:?}"
    );
    let counters = setup.counters_after_rounds();
    assert_eq!(counters.validated, 0, "{counters:?}");
}

/// With Retry demanded, only first connections get one: the second ones bring a NEW_TOKEN
/// token. Tickets under a key of the server's own resume, but without 0-RTT (rustls allows
/// early data with stateful tickets only, and says so in the ticket).
#[test]
fn retry_once_per_client_and_own_key_tickets_resume_without_0rtt() {
    let setup = Setup::new("127.0.0.1:443", Tickets::OwnKey, true, true);
    let rounds = setup.resume(true);
    assert_answers_and_token(&rounds);
    for round in &rounds {
        assert!(round.resumed, "{round:?}");
        assert!(
            !round.early_data_offered && !round.early_data_accepted,
            "{round:?}"
        );
    }
    let rounds = u64::from(ROUNDS);
    assert_eq!(
        setup.counters_after_rounds(),
        Counters {
            connections: 2 * rounds,
            resumed: rounds,
            zero_rtt_accepted: 0,
            requests: 2 * rounds,
            // First connections: their Retry token; second ones: their NEW_TOKEN token.
            validated: 2 * rounds,
            retries: rounds,
            refused: 0,
        }
    );
}
