//! Real QUIC for the end-to-end tests: quinn backend servers that mint QUIC-LB connection IDs
//! and answer with their name, and quinn clients. Sockets are made inside the namespaces of
//! the topology; the endpoints run on the test's tokio runtime.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use quic_lb_quinn::CidIssuer;
use quinn::{
    ClientConfig, Endpoint, EndpointConfig, ServerConfig, TokioRuntime, TransportConfig,
    crypto::rustls::{QuicClientConfig, QuicServerConfig},
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{addresses::QUIC_PORT, netns};

pub const SERVER_NAME: &str = "quic-router.test";
/// How long a request may wait for its answer: generous, for loaded CI machines.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const ALPN: &[u8] = b"quic-router-test";

/// A self-signed certificate for [`SERVER_NAME`], shared by every backend.
#[derive(Clone)]
pub struct Certificate {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
    /// The certificate in PEM, for clients that read a file.
    pub pem: String,
    /// Its private key in PEM, for servers that read a file.
    pub key_pem: String,
}

impl Certificate {
    pub fn new() -> Self {
        let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
            .expect("self-signed certificate");
        Self {
            cert: certified.cert.der().clone(),
            key: certified.key_pair.serialize_der(),
            pem: certified.cert.pem(),
            key_pem: certified.key_pair.serialize_pem(),
        }
    }

    /// The certificate and its key as an h3-server identity.
    pub fn identity(&self) -> h3_server::Identity {
        h3_server::Identity::new(
            vec![self.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone())),
        )
    }
}

impl Default for Certificate {
    fn default() -> Self {
        Self::new()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport() -> Arc<TransportConfig> {
    let mut transport = TransportConfig::default();
    // Namespaces on one host: a short first RTT guess keeps handshakes and closes quick.
    transport.initial_rtt(Duration::from_millis(10));
    transport.max_idle_timeout(Some(Duration::from_secs(10).try_into().unwrap()));
    transport.keep_alive_interval(Some(Duration::from_secs(1)));
    Arc::new(transport)
}

/// How a backend keeps TLS session tickets, each server its own, so a resumed session works
/// only where it started: h3-server's, whose TLS set-up the test servers share.
pub use h3_server::Tickets;

/// How a backend issues address-validation tokens (NEW_TOKEN frames and Retry packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokens {
    /// quic-lb-quinn's routable tokens: a block that names this server first, sealed under a
    /// token key of its own.
    Routable,
    /// quinn's own tokens under a key of this server's own: nothing a router can read.
    Plain,
}

/// What a backend has done.
#[derive(Debug, Default)]
pub struct BackendCounters {
    pub connections: AtomicU64,
    pub resumed: Arc<AtomicU64>,
    /// Retry packets sent.
    pub retries: AtomicU64,
    /// Connection attempts whose address a NEW_TOKEN token validated.
    pub validated_by_new_token: AtomicU64,
}

/// A quinn server on a backend: answers every request stream with
/// `<name> <CID for the next connection, hex>`, the CID minted by its QUIC-LB issuer.
pub struct Backend {
    pub name: String,
    pub issuer: CidIssuer,
    pub counters: Arc<BackendCounters>,
    endpoints: Vec<Endpoint>,
    certificate: Certificate,
    tickets: Tickets,
    /// Whether the server demands address validation: a Retry for every Initial without a
    /// valid token.
    retry: Arc<AtomicBool>,
}

fn server_config(
    certificate: &Certificate,
    tickets: Tickets,
    tokens: Tokens,
    issuer: &CidIssuer,
    counters: &BackendCounters,
) -> ServerConfig {
    let tls = h3_server::server_tls(
        &certificate.identity(),
        tickets,
        ALPN,
        counters.resumed.clone(),
    )
    .expect("server TLS");
    let crypto = QuicServerConfig::try_from(Arc::new(tls)).expect("QUIC TLS config");
    let mut config = ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport());
    match tokens {
        Tokens::Routable => quic_lb_quinn::routable_tokens(&mut config, issuer),
        // quinn's defaults: a random key of this server's own, NEW_TOKEN frames on.
        Tokens::Plain => {}
    }
    config
}

/// A socket on QUIC's port of each of `vips`, in namespace `netns`.
fn vip_sockets(netns: &str, vips: &[IpAddr]) -> Vec<UdpSocket> {
    vips.iter()
        .map(|&vip| socket_in(netns, SocketAddr::new(vip, QUIC_PORT)))
        .collect()
}

/// A UDP socket bound in namespace `netns`.
pub fn socket_in(netns: &str, addr: SocketAddr) -> UdpSocket {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        let _inside = netns::enter(&netns);
        UdpSocket::bind(addr).unwrap_or_else(|err| panic!("bind {addr} in {netns}: {err}"))
    })
    .join()
    .expect("socket thread")
}

/// A UDP socket bound in namespace `netns` with `SO_REUSEPORT`, sharing its port with the
/// other workers' (IPv6 sockets take IPv6 only: each family's sockets are a group).
pub fn reuseport_socket_in(netns: &str, addr: SocketAddr) -> UdpSocket {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        let _inside = netns::enter(&netns);
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            None,
        )
        .expect("UDP socket");
        socket.set_reuse_port(true).expect("SO_REUSEPORT");
        if addr.is_ipv6() {
            socket.set_only_v6(true).expect("IPV6_V6ONLY");
        }
        socket
            .bind(&addr.into())
            .unwrap_or_else(|err| panic!("bind {addr} in {netns}: {err}"));
        UdpSocket::from(socket)
    })
    .join()
    .expect("socket thread")
}

impl Backend {
    /// Serves on each of `vips` (the QUIC port) in namespace `netns`. Call inside the runtime.
    pub fn start(
        netns: &str,
        name: &str,
        vips: &[IpAddr],
        issuer: CidIssuer,
        tickets: Tickets,
        certificate: &Certificate,
    ) -> Self {
        Self::on_sockets(name, vip_sockets(netns, vips), issuer, tickets, certificate)
    }

    /// Serves on each of `vips` as [`start`](Self::start) does, but with quinn's own random
    /// connection IDs and tokens, which name no server: what a server without QUIC-LB gives
    /// a router (the answers still carry the CID `issuer` mints).
    pub fn start_without_quic_lb(
        netns: &str,
        name: &str,
        vips: &[IpAddr],
        issuer: CidIssuer,
        tickets: Tickets,
        certificate: &Certificate,
    ) -> Self {
        let sockets = vip_sockets(netns, vips);
        Self::serving(name, sockets, issuer, tickets, certificate, false)
    }

    /// Serves on `sockets`, bound already. Call inside the runtime.
    pub fn on_sockets(
        name: &str,
        sockets: Vec<UdpSocket>,
        issuer: CidIssuer,
        tickets: Tickets,
        certificate: &Certificate,
    ) -> Self {
        Self::serving(name, sockets, issuer, tickets, certificate, true)
    }

    /// Serves on `sockets`; `quic_lb`: with `issuer`'s connection IDs and routable tokens.
    fn serving(
        name: &str,
        sockets: Vec<UdpSocket>,
        issuer: CidIssuer,
        tickets: Tickets,
        certificate: &Certificate,
        quic_lb: bool,
    ) -> Self {
        let tokens = if quic_lb {
            Tokens::Routable
        } else {
            Tokens::Plain
        };
        let counters = Arc::new(BackendCounters::default());
        let retry = Arc::new(AtomicBool::new(false));
        let endpoints = sockets
            .into_iter()
            .map(|socket| {
                let mut endpoint_config = EndpointConfig::default();
                if quic_lb {
                    endpoint_config.cid_generator(issuer.factory());
                }
                let config = server_config(certificate, tickets, tokens, &issuer, &counters);
                let endpoint = Endpoint::new(
                    endpoint_config,
                    Some(config),
                    socket,
                    Arc::new(TokioRuntime),
                )
                .expect("server endpoint");
                tokio::spawn(serve(
                    endpoint.clone(),
                    name.to_owned(),
                    issuer.clone(),
                    counters.clone(),
                    retry.clone(),
                ));
                endpoint
            })
            .collect();
        Self {
            name: name.to_owned(),
            issuer,
            counters,
            endpoints,
            certificate: certificate.clone(),
            tickets,
            retry,
        }
    }

    /// Stops serving, as a server process that exits: every connection closed, the
    /// endpoints idle and dropped (their sockets close once quinn's drivers see that).
    pub async fn stop(self) {
        for endpoint in &self.endpoints {
            endpoint.close(0u32.into(), b"stopped");
        }
        for endpoint in &self.endpoints {
            endpoint.wait_idle().await;
        }
    }

    /// Issues `tokens` from now on (a new server config: sessions and tokens issued before
    /// are forgotten).
    pub fn set_tokens(&self, tokens: Tokens) {
        for endpoint in &self.endpoints {
            endpoint.set_server_config(Some(server_config(
                &self.certificate,
                self.tickets,
                tokens,
                &self.issuer,
                &self.counters,
            )));
        }
    }

    /// Demands address validation (Retry) from now on, or stops.
    pub fn set_retry(&self, retry: bool) {
        self.retry.store(retry, Ordering::Relaxed);
    }

    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }

    pub fn resumed(&self) -> u64 {
        self.counters.resumed.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u64 {
        self.counters.retries.load(Ordering::Relaxed)
    }

    pub fn validated_by_new_token(&self) -> u64 {
        self.counters.validated_by_new_token.load(Ordering::Relaxed)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        for endpoint in &self.endpoints {
            endpoint.close(0u32.into(), b"backend stopped");
        }
    }
}

async fn serve(
    endpoint: Endpoint,
    name: String,
    issuer: CidIssuer,
    counters: Arc<BackendCounters>,
    retry: Arc<AtomicBool>,
) {
    while let Some(incoming) = endpoint.accept().await {
        // Validated without a Retry of ours just now: by a NEW_TOKEN token.
        if incoming.remote_address_validated() && incoming.may_retry() {
            counters
                .validated_by_new_token
                .fetch_add(1, Ordering::Relaxed);
        }
        if retry.load(Ordering::Relaxed) && !incoming.remote_address_validated() {
            counters.retries.fetch_add(1, Ordering::Relaxed);
            // The client comes back with the Retry token; a refusal just drops the attempt.
            let _ = incoming.retry();
            continue;
        }
        let (name, issuer, counters) = (name.clone(), issuer.clone(), counters.clone());
        tokio::spawn(async move {
            let Ok(connecting) = incoming.accept() else {
                return;
            };
            // Accept 0-RTT data where the client sends it.
            let connection = match connecting.into_0rtt() {
                Ok((connection, _)) => connection,
                Err(connecting) => match connecting.await {
                    Ok(connection) => connection,
                    Err(_) => return,
                },
            };
            counters.connections.fetch_add(1, Ordering::Relaxed);
            while let Ok((mut send, mut receive)) = connection.accept_bi().await {
                let (name, issuer) = (name.clone(), issuer.clone());
                tokio::spawn(async move {
                    if receive.read_to_end(1024).await.is_err() {
                        return;
                    }
                    let next_cid = issuer.issue();
                    let answer = format!("{name} {}", hex::encode(&next_cid[..]));
                    let _ = send.write_all(answer.as_bytes()).await;
                    let _ = send.finish();
                });
            }
        });
    }
}

/// A backend's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub backend: String,
    /// A CID the backend minted for this client's next connection.
    pub next_cid: Vec<u8>,
}

/// A client's TLS state: its own session cache, so a ticket is only ever offered to the
/// server the same client got it from; and its own token store, for
/// [`default_client`](Self::default_client).
#[derive(Clone)]
pub struct ClientTls(Arc<rustls::ClientConfig>, Arc<TokenWaiter>);

/// quinn's default token store, telling when a token arrives.
#[derive(Default)]
pub struct TokenWaiter {
    store: quinn::TokenMemoryCache,
    received: tokio::sync::Notify,
    count: AtomicU64,
}

impl TokenWaiter {
    /// Waits until the client has received a token.
    pub async fn wait_for_token(&self) -> Result<(), String> {
        tokio::time::timeout(ANSWER_TIMEOUT, async {
            loop {
                let notified = self.received.notified();
                if self.count.load(Ordering::SeqCst) > 0 {
                    return;
                }
                notified.await;
            }
        })
        .await
        .map_err(|_| format!("no NEW_TOKEN in {ANSWER_TIMEOUT:?}"))
    }
}

impl quinn::TokenStore for TokenWaiter {
    fn insert(&self, server_name: &str, token: bytes::Bytes) {
        self.store.insert(server_name, token);
        self.count.fetch_add(1, Ordering::SeqCst);
        self.received.notify_waiters();
    }

    fn take(&self, server_name: &str) -> Option<bytes::Bytes> {
        self.store.take(server_name)
    }
}

impl ClientTls {
    pub fn new(certificate: &Certificate) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(certificate.cert.clone())
            .expect("trust the test certificate");
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        tls.enable_early_data = true;
        Self(Arc::new(tls), Arc::default())
    }

    /// quinn's default client (random DCIDs, quinn's token store) with this client's TLS
    /// state and token store: it sends the NEW_TOKEN token of one connection in the Initial
    /// of its next.
    pub fn default_client(&self) -> ClientConfig {
        let crypto = QuicClientConfig::try_from(self.0.clone()).expect("QUIC TLS config");
        let mut config = ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport());
        config.token_store(self.1.clone());
        config
    }

    /// This client's token store.
    pub fn tokens(&self) -> &TokenWaiter {
        &self.1
    }

    /// A quinn client config; with `initial_dcid`, Initials carry that DCID. No token is
    /// ever sent back (a store of its own per config).
    pub fn config(&self, initial_dcid: Option<Vec<u8>>) -> ClientConfig {
        let crypto = QuicClientConfig::try_from(self.0.clone()).expect("QUIC TLS config");
        let mut config = ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport());
        if let Some(dcid) = initial_dcid {
            config.initial_dst_cid_provider(Arc::new(move || quinn::ConnectionId::new(&dcid)));
        }
        config
    }
}

/// A client endpoint bound at `local` in namespace `netns`.
pub fn client_endpoint(netns: &str, local: SocketAddr) -> Endpoint {
    Endpoint::new(
        EndpointConfig::default(),
        None,
        socket_in(netns, local),
        Arc::new(TokioRuntime),
    )
    .expect("client endpoint")
}

/// One request on a new stream of `connection`, and its answer.
pub async fn request(connection: &quinn::Connection) -> Result<Answer, String> {
    let (mut send, mut receive) = connection.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(b"hello").await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, receive.read_to_end(1024))
        .await
        .map_err(|_| format!("no answer in {ANSWER_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> Result<Answer, String> {
    let text = std::str::from_utf8(answer).map_err(|e| e.to_string())?;
    let (backend, cid) = text.split_once(' ').ok_or("malformed answer")?;
    let next_cid = hex::decode(cid).map_err(|e| e.to_string())?;
    Ok(Answer {
        backend: backend.to_owned(),
        next_cid,
    })
}

/// What a connection attempt with 0-RTT gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumption {
    pub answer: Answer,
    /// The server accepted the 0-RTT data (so the session was resumed).
    pub zero_rtt_accepted: bool,
}

/// Connects to `server`, sending the request as 0-RTT data when the client has a session
/// for it, and waits for the answer. If the server rejects the 0-RTT data (it lost the
/// session: another server), the request goes again once the handshake is done.
pub async fn connect_0rtt(
    endpoint: &Endpoint,
    config: ClientConfig,
    server: SocketAddr,
) -> Result<Resumption, String> {
    let (connection, resumption) = open_0rtt(endpoint, config, server).await?;
    connection.close(0u32.into(), b"done");
    Ok(resumption)
}

/// [`connect_0rtt`], leaving the connection open.
pub async fn open_0rtt(
    endpoint: &Endpoint,
    config: ClientConfig,
    server: SocketAddr,
) -> Result<(quinn::Connection, Resumption), String> {
    let connecting = endpoint
        .connect_with(config, server, SERVER_NAME)
        .map_err(|e| e.to_string())?;
    let (connection, resumption) = match connecting.into_0rtt() {
        Ok((connection, accepted)) => {
            let (mut send, mut receive) = connection.open_bi().await.map_err(|e| e.to_string())?;
            send.write_all(b"hello").await.map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            let resumption = if accepted.await {
                let answer = tokio::time::timeout(ANSWER_TIMEOUT, receive.read_to_end(1024))
                    .await
                    .map_err(|_| format!("no answer in {ANSWER_TIMEOUT:?}"))?
                    .map_err(|e| e.to_string())?;
                Resumption {
                    answer: parse_answer(&answer)?,
                    zero_rtt_accepted: true,
                }
            } else {
                Resumption {
                    answer: request(&connection).await?,
                    zero_rtt_accepted: false,
                }
            };
            (connection, resumption)
        }
        Err(connecting) => {
            let connection = connecting.await.map_err(|e| e.to_string())?;
            let answer = request(&connection).await?;
            (
                connection,
                Resumption {
                    answer,
                    zero_rtt_accepted: false,
                },
            )
        }
    };
    Ok((connection, resumption))
}
