//! An HTTP/3 server on [quinn] whose connection IDs and address-validation tokens carry its
//! QUIC-LB server ID, for the demo, the tests and anyone trying quic-router with a real
//! HTTP/3 client. Every `GET` (any path) is answered with status 200, the body `<name>\n` and
//! a `server-name: <name>` header; other methods get 405.
//!
//! # Behind the router
//!
//! Give every server the router's QUIC-LB config (codepoint, lengths, key) and a server ID of
//! its own that the router's `[[backend]]` lists under that codepoint; the server then mints
//! every connection ID with it, and its NEW_TOKEN and Retry tokens start with a routable
//! block under the same config, so that the router sends a client's next connection (which
//! carries the token in its Initial) back to the server that issued the token and its TLS
//! session ticket. No ticket key is shared: with `--tickets stateful` a ticket names a
//! session in the issuing server's memory, with `--tickets own-key` each process encrypts
//! tickets under a random key of its own. rustls accepts 0-RTT only with stateful tickets.
//!
//! ```text
//! # router.toml: [[quic_lb]] config_rotation = 0, server_id_len = 2, nonce_len = 6,
//! #              key_file = "cr0.key"; [[backend]] server_ids = { 0 = ["0a01"] }, ...
//! h3-server --name alpha --listen 198.18.0.10:443 --listen '[2001:db8::10]:443' \
//!     --codepoint 0 --server-id-len 2 --nonce-len 6 --server-id 0a01 --key-file cr0.key \
//!     --cert alpha.pem --key alpha.key --tickets stateful
//! ```
//!
//! The server listens on the VIP itself (direct server return: the router hands it the
//! client's packets with their IP and UDP headers unchanged, and it answers the client
//! directly).
//!
//! # As a library
//!
//! [`Server::on_sockets`] serves on sockets that the caller bound (in a network namespace,
//! say) and counts what happened ([`Counters`]); dropping the [`Server`] closes its
//! endpoints. It must be called inside a tokio runtime.
//!
//! Everything is bounded: concurrent connections ([`Limits::max_connections`]; beyond it
//! new connection attempts are refused), streams per connection, header size, idle time and
//! the time to answer one request. Connections are logged at debug level only.
//!
//! [quinn]: https://docs.rs/quinn

mod key;
mod tls;

use std::{
    net::{SocketAddr, UdpSocket},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use quic_lb_quinn::CidIssuer;
use quinn::{
    Endpoint, EndpointConfig, IdleTimeout, Incoming, TokioRuntime, TransportConfig, VarInt,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::debug;

pub use key::{KeyFileError, load_key_file};
pub use tls::{CountResumed, Identity, Tickets, TlsError, server_tls};

/// The ALPN of HTTP/3.
pub const ALPN: &[u8] = b"h3";

/// Unidirectional streams a client may open: HTTP/3 needs three (control, QPACK encoder and
/// decoder); the rest leaves room for extensions and grease.
const MAX_UNI_STREAMS: u32 = 8;
/// The largest request header section accepted (HTTP/3 SETTINGS_MAX_FIELD_SECTION_SIZE).
const MAX_FIELD_SECTION_SIZE: u64 = 16 * 1024;
/// Data buffered for one connection attempt before it is accepted: 0-RTT requests are small.
const INCOMING_BUFFER: u64 = 64 * 1024;
/// Data buffered for all connection attempts together.
const INCOMING_BUFFER_TOTAL: u64 = 16 * 1024 * 1024;
/// NEW_TOKEN frames sent on each connection without routable tokens, as many as with them.
const NEW_TOKENS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "server name {0:?} must be 1 to 255 visible ASCII characters (it is an HTTP header value)"
    )]
    Name(String),
    #[error("the limits must be at least 1 ({0})")]
    Limit(&'static str),
    #[error("idle timeout {0:?} is too long for QUIC")]
    IdleTimeout(Duration),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("no socket to serve on")]
    NoSocket,
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve on a socket: {0}")]
    Endpoint(std::io::Error),
}

/// Bounds on what clients can make the server hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further connection attempts are refused.
    pub max_connections: u32,
    /// Requests (bidirectional streams) one connection may have open at once.
    pub max_requests_per_connection: u32,
    /// A connection that has been silent this long is closed.
    pub idle_timeout: Duration,
    /// The time a request may take from its acceptance to the end of its answer.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_requests_per_connection: 16,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What a server is and does.
pub struct Options {
    /// The server's name: the body of every answer, and its `server-name` header.
    pub name: String,
    /// Mints the server's connection IDs and its tokens' routable blocks.
    pub issuer: CidIssuer,
    pub identity: Identity,
    pub tickets: Tickets,
    /// Tokens (NEW_TOKEN and Retry) start with a routable QUIC-LB block. Without it they are
    /// quinn's own, under a random key (NEW_TOKEN frames are sent either way): for side by
    /// side measurements.
    pub token_prefix: bool,
    /// Demand address validation: a connection attempt without a valid token gets a Retry.
    pub retry: bool,
    pub limits: Limits,
}

impl Options {
    /// Checks what [`Server::on_sockets`] would refuse, for a caller that wants to tell bad
    /// input from a failure to serve: the name (as a header value) if all is well.
    pub fn check(&self) -> Result<HeaderValue, Error> {
        if self.limits.max_connections == 0 {
            return Err(Error::Limit("max_connections"));
        }
        if self.limits.max_requests_per_connection == 0 {
            return Err(Error::Limit("max_requests_per_connection"));
        }
        IdleTimeout::try_from(self.limits.idle_timeout)
            .map_err(|_| Error::IdleTimeout(self.limits.idle_timeout))?;
        name_header(&self.name)
    }
}

/// What a server has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Handshakes completed.
    pub connections: u64,
    /// TLS sessions resumed (a stored session taken, or a ticket decrypted).
    pub resumed: u64,
    /// Connections whose 0-RTT data (early requests) TLS accepted.
    pub zero_rtt_accepted: u64,
    /// GET requests answered.
    pub requests: u64,
    /// Connection attempts whose Initial carried a valid token of this server's (NEW_TOKEN
    /// or Retry): the client's address was validated by it.
    pub validated: u64,
    /// Retry packets sent (with [`Options::retry`]).
    pub retries: u64,
    /// Connection attempts refused because [`Limits::max_connections`] were being served.
    pub refused: u64,
}

/// Where the counters live: a watch channel, so that a caller can wait for a count instead
/// of polling it.
#[derive(Debug)]
pub(crate) struct Counting(watch::Sender<Counters>);

impl Counting {
    pub(crate) fn bump(&self, counter: fn(&mut Counters) -> &mut u64) {
        self.0.send_modify(|counters| *counter(counters) += 1);
    }
}

/// What every connection task shares.
struct Shared {
    counting: Arc<Counting>,
    body: Bytes,
    name_header: HeaderValue,
    retry: bool,
    request_timeout: Duration,
    connection_slots: Arc<Semaphore>,
}

/// A running server: its endpoints close when it drops.
pub struct Server {
    endpoints: Vec<Endpoint>,
    counting: Arc<Counting>,
}

impl Server {
    /// Binds `addrs` (IPv6 sockets take IPv6 only, so `0.0.0.0:443` and `[::]:443` can go
    /// together) and serves on them. Call inside a tokio runtime.
    pub fn bind(options: Options, addrs: &[SocketAddr]) -> Result<Self, Error> {
        let sockets = addrs
            .iter()
            .map(|&addr| bind_socket(addr).map_err(|source| Error::Bind { addr, source }))
            .collect::<Result<_, _>>()?;
        Self::on_sockets(options, sockets)
    }

    /// Serves on `sockets`, bound already. Call inside a tokio runtime.
    pub fn on_sockets(options: Options, sockets: Vec<UdpSocket>) -> Result<Self, Error> {
        if sockets.is_empty() {
            return Err(Error::NoSocket);
        }
        let name_header = options.check()?;
        let limits = options.limits;
        let counting = Arc::new(Counting(watch::Sender::new(Counters::default())));
        let server_config = server_config(&options, &counting)?;
        let shared = Arc::new(Shared {
            counting: counting.clone(),
            body: Bytes::from(format!("{}\n", options.name)),
            name_header,
            retry: options.retry,
            request_timeout: limits.request_timeout,
            connection_slots: Arc::new(Semaphore::new(limits.max_connections as usize)),
        });
        let endpoints = sockets
            .into_iter()
            .map(|socket| {
                let mut endpoint_config = EndpointConfig::default();
                endpoint_config.cid_generator(options.issuer.factory());
                let endpoint = Endpoint::new(
                    endpoint_config,
                    Some(server_config.clone()),
                    socket,
                    Arc::new(TokioRuntime),
                )
                .map_err(Error::Endpoint)?;
                tokio::spawn(accept(endpoint.clone(), shared.clone()));
                Ok(endpoint)
            })
            .collect::<Result<_, Error>>()?;
        Ok(Self {
            endpoints,
            counting,
        })
    }

    /// The addresses the server listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.endpoints
            .iter()
            .filter_map(|endpoint| endpoint.local_addr().ok())
            .collect()
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        *self.counting.0.borrow()
    }

    /// Waits until `done` holds for the counters, at most `timeout`: the counters then, or
    /// the counters at the timeout as the error.
    pub async fn wait_for(
        &self,
        mut done: impl FnMut(&Counters) -> bool,
        timeout: Duration,
    ) -> Result<Counters, Counters> {
        let mut receiver = self.counting.0.subscribe();
        match tokio::time::timeout(timeout, receiver.wait_for(|c| done(c))).await {
            Ok(Ok(counters)) => Ok(*counters),
            // The sender lives as long as `self`: only the timeout ends the wait early.
            _ => Err(self.counters()),
        }
    }

    /// Closes every connection and waits, at most `timeout`, until the clients have been told.
    pub async fn shutdown(self, timeout: Duration) {
        self.close();
        let endpoints = self.endpoints.clone();
        let idle = async {
            for endpoint in &endpoints {
                endpoint.wait_idle().await;
            }
        };
        let _ = tokio::time::timeout(timeout, idle).await;
    }

    fn close(&self) {
        for endpoint in &self.endpoints {
            endpoint.close(VarInt::from_u32(0), b"server stopping");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

/// A UDP socket bound at `addr`; IPv6 ones take IPv6 only.
fn bind_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn name_header(name: &str) -> Result<HeaderValue, Error> {
    let visible = |c: char| c.is_ascii_graphic();
    if name.is_empty() || name.len() > 255 || !name.chars().all(visible) {
        return Err(Error::Name(name.to_owned()));
    }
    HeaderValue::from_str(name).map_err(|_| Error::Name(name.to_owned()))
}

fn server_config(
    options: &Options,
    counting: &Arc<Counting>,
) -> Result<quinn::ServerConfig, Error> {
    let limits = options.limits;
    let crypto = tls::quic_crypto(&options.identity, options.tickets, counting)?;
    let mut config = quinn::ServerConfig::with_crypto(crypto);
    let mut transport = TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            IdleTimeout::try_from(limits.idle_timeout)
                .map_err(|_| Error::IdleTimeout(limits.idle_timeout))?,
        ))
        .max_concurrent_bidi_streams(VarInt::from_u32(limits.max_requests_per_connection))
        .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS));
    config
        .transport_config(Arc::new(transport))
        .max_incoming(limits.max_connections as usize)
        .incoming_buffer_size(INCOMING_BUFFER)
        .incoming_buffer_size_total(INCOMING_BUFFER_TOTAL);
    if options.token_prefix {
        // Tokens that start with a block minted as the server's CIDs are: the router sends
        // the Initial that brings one back to this server, and its session.
        quic_lb_quinn::routable_tokens(&mut config, &options.issuer);
    } else {
        new_tokens(&mut config);
    }
    Ok(config)
}

/// NEW_TOKEN frames on, under quinn's own random token key (`--no-token-prefix`). Set
/// explicitly: quinn sends none by default when built without its token log (the workspace
/// builds quinn-proto with it, `bloom`, which also makes a server accept each token once).
fn new_tokens(config: &mut quinn::ServerConfig) {
    let mut validation = quinn::ValidationTokenConfig::default();
    validation.sent(NEW_TOKENS);
    config.validation_token_config(validation);
}

async fn accept(endpoint: Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let validated = incoming.remote_address_validated();
        if shared.retry && !validated {
            // quinn refuses to retry an Initial that carried a Retry token already (its
            // address is then validated, or the token was bad and quinn closed it).
            match incoming.retry() {
                Ok(()) => shared.counting.bump(|c| &mut c.retries),
                Err(err) => err.into_incoming().refuse(),
            }
            continue;
        }
        let Ok(slot) = shared.connection_slots.clone().try_acquire_owned() else {
            incoming.refuse();
            shared.counting.bump(|c| &mut c.refused);
            continue;
        };
        if validated {
            shared.counting.bump(|c| &mut c.validated);
        }
        tokio::spawn(serve_connection(incoming, slot, shared.clone()));
    }
}

/// Serves one connection; its slot is free again when it ends.
async fn serve_connection(incoming: Incoming, _slot: OwnedSemaphorePermit, shared: Arc<Shared>) {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(err) => {
            debug!(%remote, "connection attempt failed: {err}");
            return;
        }
    };
    // Answer requests that came as 0-RTT data at once (0.5-RTT). Only GETs are answered, and
    // answering one twice (a replay) changes nothing.
    let connection = match connecting.into_0rtt() {
        Ok((connection, _)) => connection,
        // quinn always converts a server's connection; this is only for completeness.
        Err(connecting) => match connecting.await {
            Ok(connection) => connection,
            Err(err) => {
                debug!(%remote, "handshake failed: {err}");
                return;
            }
        },
    };
    let mut h3 = match h3::server::builder()
        .max_field_section_size(MAX_FIELD_SECTION_SIZE)
        .build::<_, Bytes>(h3_quinn::Connection::new(connection))
        .await
    {
        Ok(h3) => h3,
        Err(err) => {
            debug!(%remote, "HTTP/3 setup failed: {err}");
            return;
        }
    };
    loop {
        match h3.accept().await {
            Ok(Some(resolver)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(shared.request_timeout, answer(resolver, &shared))
                        .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => debug!(%remote, "request failed: {err}"),
                        Err(_) => debug!(%remote, "request timed out"),
                    }
                });
            }
            Ok(None) => break,
            Err(err) => {
                debug!(%remote, "connection ended: {err}");
                break;
            }
        }
    }
}

async fn answer(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    shared: &Shared,
) -> Result<(), h3::error::StreamError> {
    let (request, mut stream) = resolver.resolve_request().await?;
    let get = request.method() == Method::GET;
    let response = if get {
        Response::builder()
            .status(StatusCode::OK)
            .header("server-name", shared.name_header.clone())
            .header(header::CONTENT_TYPE, "text/plain")
    } else {
        Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET")
    }
    .body(())
    .expect("a status and valid header values");
    stream.send_response(response).await?;
    if get {
        stream.send_data(shared.body.clone()).await?;
        // Counted before the stream ends: a client that has the whole answer finds it counted.
        shared.counting.bump(|c| &mut c.requests);
    }
    stream.finish().await
}
