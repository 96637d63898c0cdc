//! TLS for the server: its certificate, how it keeps session tickets (never with a key shared
//! by other servers), and the counting of resumed sessions and accepted 0-RTT data.

use std::{
    any::Any,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use quinn::{
    ConnectionId, Side,
    crypto::{
        ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, ServerConfig, Session,
        UnsupportedVersion, rustls::QuicServerConfig,
    },
};
use quinn_proto::{TransportError, transport_parameters::TransportParameters};
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject as _},
    server::{
        NoServerSessionStorage, ProducesTickets, ServerSessionMemoryCache, StoresServerSessions,
    },
};

use crate::{ALPN, Counting};

/// Sessions a stateful server remembers; the oldest go first (each costs a few hundred octets).
const STORED_SESSIONS: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}", path = .path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{path} holds no certificate", path = .0.display())]
    NoCertificate(PathBuf),
    #[error("self-signed certificate for {name:?}: {source}")]
    SelfSigned { name: String, source: rcgen::Error },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS for QUIC: {0}")]
    Quic(String),
}

/// How a server keeps TLS session tickets. Neither shares anything with other servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tickets {
    /// A ticket names a session in this server's memory: no ticket key at all, each ticket
    /// usable once, and 0-RTT accepted.
    Stateful,
    /// Tickets encrypted under a random key of this process's own (rotated by rustls). rustls
    /// accepts no 0-RTT with them: it cannot make sure a ticket is used once.
    OwnKey,
}

/// A certificate chain and its private key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self { chain, key }
    }

    /// The chain in `cert` and the key in `key`, both PEM.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_error = |path: &Path| {
            let path = path.to_owned();
            move |err: rustls::pki_types::pem::Error| TlsError::Pem {
                path,
                reason: err.to_string(),
            }
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(pem_error(cert))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error(cert))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(cert.to_owned()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(pem_error(key))?;
        Ok(Self { chain, key })
    }

    /// A new self-signed certificate for `name`, for demos: clients must be told to trust it.
    pub fn self_signed(name: &str) -> Result<Self, TlsError> {
        let certified =
            rcgen::generate_simple_self_signed(vec![name.to_owned()]).map_err(|source| {
                TlsError::SelfSigned {
                    name: name.to_owned(),
                    source,
                }
            })?;
        Ok(Self {
            chain: vec![certified.cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()).into(),
        })
    }
}

/// Counts the TLS sessions a server resumes.
pub trait CountResumed: Send + Sync + std::fmt::Debug {
    fn resumed(&self);
}

impl CountResumed for AtomicU64 {
    fn resumed(&self) {
        self.fetch_add(1, Ordering::Relaxed);
    }
}

impl CountResumed for Counting {
    fn resumed(&self) {
        self.bump(|c| &mut c.resumed);
    }
}

/// A QUIC server's TLS: TLS 1.3 only, `alpn`, 0-RTT allowed (rustls then accepts it where it
/// can), session tickets as `tickets` says (never under a key another process has), and the
/// sessions resumed counted by `resumed`. The test servers of the tests crate use it too.
pub fn server_tls(
    identity: &Identity,
    tickets: Tickets,
    alpn: &[u8],
    resumed: Arc<dyn CountResumed>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_no_client_auth()
    .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    // QUIC carries 0-RTT data itself: quinn requires this exact value to allow it.
    tls.max_early_data_size = u32::MAX;
    match tickets {
        Tickets::Stateful => {
            tls.session_storage = Arc::new(CountingSessions {
                inner: ServerSessionMemoryCache::new(STORED_SESSIONS),
                resumed,
            });
        }
        Tickets::OwnKey => {
            tls.ticketer = Arc::new(CountingTicketer {
                inner: rustls::crypto::ring::Ticketer::new()?,
                resumed,
            });
            // Nothing remembered: every ticket is stateless.
            tls.session_storage = Arc::new(NoServerSessionStorage {});
        }
    }
    Ok(tls)
}

/// The server's QUIC crypto: [`server_tls`] with ALPN h3, counted.
pub(crate) fn quic_crypto(
    identity: &Identity,
    tickets: Tickets,
    counting: &Arc<Counting>,
) -> Result<Arc<dyn ServerConfig>, TlsError> {
    let tls = server_tls(identity, tickets, ALPN, counting.clone())?;
    let quic =
        QuicServerConfig::try_from(Arc::new(tls)).map_err(|err| TlsError::Quic(err.to_string()))?;
    Ok(Arc::new(CountingCrypto {
        inner: Arc::new(quic),
        counting: counting.clone(),
    }))
}

/// Stateful session storage that counts the sessions found again (resumed).
#[derive(Debug)]
struct CountingSessions {
    inner: Arc<dyn StoresServerSessions>,
    resumed: Arc<dyn CountResumed>,
}

impl CountingSessions {
    fn found(&self, value: Option<Vec<u8>>) -> Option<Vec<u8>> {
        if value.is_some() {
            self.resumed.resumed();
        }
        value
    }
}

impl StoresServerSessions for CountingSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.found(self.inner.get(key))
    }
    // TLS 1.3 takes a session out, so that its ticket (and 0-RTT under it) works once.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.found(self.inner.take(key))
    }
    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// A ticketer that counts the tickets it could decrypt (resumed sessions).
#[derive(Debug)]
struct CountingTicketer {
    inner: Arc<dyn ProducesTickets>,
    resumed: Arc<dyn CountResumed>,
}

impl ProducesTickets for CountingTicketer {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }
    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(plain)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let plain = self.inner.decrypt(cipher);
        if plain.is_some() {
            self.resumed.resumed();
        }
        plain
    }
}

/// quinn's rustls crypto, counting completed handshakes and the connections whose 0-RTT data
/// TLS accepted: quinn tells a server application neither (its `ZeroRttAccepted` means
/// nothing on a server, and resolves the same when a handshake fails).
struct CountingCrypto {
    inner: Arc<QuicServerConfig>,
    counting: Arc<Counting>,
}

impl ServerConfig for CountingCrypto {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        self.inner.initial_keys(version, dst_cid)
    }

    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        self.inner.retry_tag(version, orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn Session> {
        Box::new(CountingSession {
            inner: self.inner.clone().start_session(version, params),
            counting: self.counting.clone(),
            zero_rtt_counted: AtomicBool::new(false),
            handshake_counted: false,
        })
    }
}

/// A server session that counts its handshake once it completes, and itself once if it hands
/// quinn 0-RTT keys: a server's TLS has them exactly when it accepted the client's early data.
struct CountingSession {
    inner: Box<dyn Session>,
    counting: Arc<Counting>,
    zero_rtt_counted: AtomicBool,
    handshake_counted: bool,
}

impl Session for CountingSession {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        self.inner.initial_keys(dst_cid, side)
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.inner.handshake_data()
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_identity()
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        let keys = self.inner.early_crypto();
        if keys.is_some() && !self.zero_rtt_counted.swap(true, Ordering::Relaxed) {
            self.counting.bump(|c| &mut c.zero_rtt_accepted);
        }
        keys
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.inner.early_data_accepted()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        let ready = self.inner.read_handshake(buf)?;
        // The server's handshake ends with the client's Finished, read here.
        if !self.handshake_counted && !self.inner.is_handshaking() {
            self.handshake_counted = true;
            self.counting.bump(|c| &mut c.connections);
        }
        Ok(ready)
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.inner.transport_parameters()
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        self.inner.write_handshake(buf)
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        self.inner.next_1rtt_keys()
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.inner.is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.inner.export_keying_material(output, label, context)
    }
}
