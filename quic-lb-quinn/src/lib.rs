//! QUIC-LB connection IDs for [quinn] servers (draft-ietf-quic-load-balancers-21): a
//! [`ConnectionIdGenerator`] on router-common's codec, so that every connection ID a server
//! issues carries its server ID and a QUIC-LB router sends its packets back to it.
//!
//! ```
//! use std::time::Duration;
//!
//! use quic_lb_quinn::{CidIssuer, IssuerConfig};
//! use router_common::quic_lb::{ConfigParams, Decoder, Key};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Codepoint 0, four-pass AES-128: this server's ID is 0a01, with 6-octet nonces.
//! let key = Key::from_slice(&[0x8f; 16]).expect("16 octets");
//! let config = IssuerConfig {
//!     params: ConfigParams::new(0, 2, 6),
//!     key: Some(key.clone()),
//!     server_id: vec![0x0a, 0x01],
//! };
//! let issuer = CidIssuer::new(config)?.with_lifetime(Duration::from_secs(300));
//! let mut endpoint_config = quinn::EndpointConfig::default();
//! endpoint_config.cid_generator(issuer.factory());
//! // quinn::Endpoint::new(endpoint_config, Some(server_config), socket, runtime)?
//!
//! // One more CID, for a client to resume with: the router decodes it to this server.
//! let cid = issuer.issue();
//! let mut decoder = Decoder::new();
//! decoder.insert(router_common::quic_lb::Config::new(
//!     ConfigParams::new(0, 2, 6),
//!     Some(key.aes128()),
//! )?);
//! let (codepoint, server_id) = decoder.server_id(&cid)?;
//! assert_eq!((codepoint, server_id.as_slice()), (0, &[0x0a, 0x01][..]));
//! // issuer.rotate(...) moves to another codepoint; issue() and quinn share one nonce
//! // sequence.
//! # Ok(())
//! # }
//! ```
//!
//! # Routable tokens
//!
//! [`routable_tokens`] makes a server put a routable block (router-common's
//! `quic_lb::token` format: a CID from this issuer) in front of every address-validation token
//! it issues, in NEW_TOKEN frames and Retry packets, and turns NEW_TOKEN frames on. A client
//! sends the token back in the Initial of its next connection, where the router reads the
//! server ID from it: a resumption goes back to the server that holds its session, with no
//! change to the client. Each server seals its tokens under a key of its own
//! ([`RoutableTokenKey::new`]), so no token key is shared either; a token another server
//! issued, or one whose block was changed, opens nowhere else and counts as no token
//! (RFC 9000 §8.1.3).
//!
//! ```
//! # use quic_lb_quinn::{CidIssuer, IssuerConfig};
//! # use router_common::quic_lb::ConfigParams;
//! # fn tls() -> std::sync::Arc<dyn quinn_proto::crypto::ServerConfig> { unimplemented!() }
//! # fn example(issuer: &CidIssuer) {
//! let mut server_config = quinn_proto::ServerConfig::with_crypto(tls());
//! quic_lb_quinn::routable_tokens(&mut server_config, issuer);
//! # }
//! ```
//!
//! Nonces never repeat under one key: encrypted configs count up from a random start, and
//! when the count comes round to the start again the issuer switches to unroutable
//! connection IDs (codepoint 0b111, random) rather than reuse one. Plaintext configs use
//! random nonces, as draft-21 requires of them (no observable relationship between CIDs).
//!
//! [quinn]: https://docs.rs/quinn

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use quinn_proto::{
    ConnectionId, ConnectionIdGenerator, InvalidCid, ServerConfig, ValidationTokenConfig,
    crypto::{AeadKey, CryptoError, HandshakeTokenKey},
};
use rand::RngCore as _;
use router_common::quic_lb::{
    Aes128, Config, ConfigError, ConfigParams, EncodeError, Encoder, Key,
    UNROUTABLE_CONFIG_ROTATION, config_rotation_of, encode_unroutable,
};
use tracing::warn;

/// What a server issues connection IDs under: a QUIC-LB config and its server ID in it.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub params: ConfigParams,
    pub key: Option<Key>,
    pub server_id: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("quinn needs one CID length: this config's is {new}, the issuer's {current}")]
    LengthChange { current: usize, new: usize },
    #[error("connection IDs of {0} octets are too short: quinn servers need at least 8")]
    TooShort(usize),
}

/// Where nonces come from.
#[derive(Debug)]
enum Nonces {
    /// Encrypted configs: a big-endian counter from a random start.
    Counter {
        next: Vec<u8>,
        start: Vec<u8>,
        exhausted: bool,
    },
    /// Plaintext configs: fresh random octets.
    Random { len: usize },
}

impl Nonces {
    fn new(params: &ConfigParams, encrypted: bool) -> Self {
        let len = params.nonce_len as usize;
        if !encrypted {
            return Nonces::Random { len };
        }
        let mut start = vec![0u8; len];
        rand::rng().fill_bytes(&mut start);
        Nonces::Counter {
            next: start.clone(),
            start,
            exhausted: false,
        }
    }

    /// The next nonce; `None` once a counter has used every value.
    fn next(&mut self) -> Option<Vec<u8>> {
        match self {
            Nonces::Random { len } => {
                let mut nonce = vec![0u8; *len];
                rand::rng().fill_bytes(&mut nonce);
                Some(nonce)
            }
            Nonces::Counter {
                next,
                start,
                exhausted,
            } => {
                if *exhausted {
                    return None;
                }
                let nonce = next.clone();
                // Big-endian increment with wrap-around.
                for octet in next.iter_mut().rev() {
                    *octet = octet.wrapping_add(1);
                    if *octet != 0 {
                        break;
                    }
                }
                *exhausted = next == start;
                if *exhausted {
                    warn!(
                        "every nonce of this QUIC-LB config is used: issuing unroutable connection IDs"
                    );
                }
                Some(nonce)
            }
        }
    }
}

struct Issuing {
    encoder: Encoder<Aes128>,
    server_id: Vec<u8>,
    nonces: Nonces,
}

impl Issuing {
    fn new(config: IssuerConfig) -> Result<Self, IssuerError> {
        let encrypted = config.key.is_some();
        let nonces = Nonces::new(&config.params, encrypted);
        let encoder = Encoder::new(Config::new(
            config.params,
            config.key.as_ref().map(Key::aes128),
        )?);
        // Check the server ID's length once, here, rather than on every CID.
        let nonce = vec![0u8; config.params.nonce_len as usize];
        encoder.encode(&config.server_id, &nonce, &mut rand::rng())?;
        Ok(Self {
            encoder,
            server_id: config.server_id,
            nonces,
        })
    }
}

struct State {
    issuing: Issuing,
    /// Codepoints this issuer has used: their CIDs are ours (validate).
    codepoints: BTreeSet<u8>,
}

/// Issues QUIC-LB connection IDs for one server. Cheap to clone: clones share the state.
#[derive(Clone)]
pub struct CidIssuer {
    state: Arc<Mutex<State>>,
    /// Outside the lock: [`rotate`](Self::rotate) refuses a config of another length, and
    /// quinn asks for it on every incoming datagram.
    cid_len: usize,
    lifetime: Option<Duration>,
}

impl CidIssuer {
    pub fn new(config: IssuerConfig) -> Result<Self, IssuerError> {
        let cid_len = config.params.cid_len();
        if cid_len < 8 {
            return Err(IssuerError::TooShort(cid_len));
        }
        let codepoints = BTreeSet::from([config.params.config_rotation]);
        Ok(Self {
            state: Arc::new(Mutex::new(State {
                issuing: Issuing::new(config)?,
                codepoints,
            })),
            cid_len,
            lifetime: None,
        })
    }

    /// Retire each CID after `lifetime` (quinn then issues new ones, which is how a
    /// connection moves to a new config after [`rotate`](Self::rotate)).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues every new CID under `config` from now on. CIDs issued before stay valid.
    pub fn rotate(&self, config: IssuerConfig) -> Result<(), IssuerError> {
        let new = config.params.cid_len();
        if new != self.cid_len {
            return Err(IssuerError::LengthChange {
                current: self.cid_len,
                new,
            });
        }
        let codepoint = config.params.config_rotation;
        let issuing = Issuing::new(config)?;
        let mut state = self.lock();
        state.issuing = issuing;
        state.codepoints.insert(codepoint);
        Ok(())
    }

    /// One new CID, for the server's own use: a CID handed to a client (in application data,
    /// encrypted) for its next connection to come back here.
    pub fn issue(&self) -> ConnectionId {
        let mut state = self.lock();
        let issuing = &mut state.issuing;
        let cid = match issuing.nonces.next() {
            Some(nonce) => issuing
                .encoder
                .encode(&issuing.server_id, &nonce, &mut rand::rng())
                .expect("lengths checked when the config was set"),
            None => encode_unroutable(self.cid_len, &mut rand::rng())
                .expect("length checked at creation"),
        };
        ConnectionId::new(cid.as_slice())
    }

    /// What quinn's `EndpointConfig::cid_generator` takes.
    pub fn factory(&self) -> impl Fn() -> Box<dyn ConnectionIdGenerator> + Send + Sync + 'static {
        let issuer = self.clone();
        move || Box::new(issuer.clone()) as Box<dyn ConnectionIdGenerator>
    }
}

impl ConnectionIdGenerator for CidIssuer {
    fn generate_cid(&mut self) -> ConnectionId {
        self.issue()
    }

    /// A CID of ours has our length and a codepoint we used (or 0b111, when exhausted).
    fn validate(&self, cid: &ConnectionId) -> Result<(), InvalidCid> {
        let codepoint = cid.first().map(|&octet| config_rotation_of(octet));
        match codepoint {
            Some(c)
                if cid.len() == self.cid_len
                    && (c == UNROUTABLE_CONFIG_ROTATION || self.lock().codepoints.contains(&c)) =>
            {
                Ok(())
            }
            _ => Err(InvalidCid),
        }
    }

    fn cid_len(&self) -> usize {
        self.cid_len
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        self.lifetime
    }
}

/// NEW_TOKEN frames per connection: one more than the client's first use, so that a second
/// attempt (another port, a lost first try) also comes home.
const NEW_TOKENS_PER_CONNECTION: u32 = 2;

/// Makes `config` issue routable tokens under a token key of this server's own (see the
/// crate docs), and send NEW_TOKEN frames. Replaces the config's validation token settings
/// with quinn's defaults (a two-week lifetime, its token log) and two NEW_TOKEN frames per
/// connection: set others after this call.
pub fn routable_tokens(config: &mut ServerConfig, issuer: &CidIssuer) {
    config.token_key(Arc::new(RoutableTokenKey::new(issuer.clone())));
    let mut validation = ValidationTokenConfig::default();
    validation.sent(NEW_TOKENS_PER_CONNECTION);
    config.validation_token_config(validation);
}

/// quinn's token key with a routable block in front of every token: quinn seals a token
/// with the key that [`aead_from_hkdf`](HandshakeTokenKey::aead_from_hkdf) derives from the
/// token's random nonce, and appends the nonce; this key's sealing puts a CID of `issuer`
/// first and authenticates it with the rest.
pub struct RoutableTokenKey {
    issuer: CidIssuer,
    inner: Arc<dyn HandshakeTokenKey>,
}

impl RoutableTokenKey {
    /// Under a random key of this server's own: its tokens open only here, and a restart
    /// makes the outstanding ones worthless (they still route; the server then treats them
    /// as no token).
    pub fn new(issuer: CidIssuer) -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let key = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(&secret);
        Self::with_key(issuer, Arc::new(key))
    }

    /// Under `inner`, e.g. a key kept across restarts.
    pub fn with_key(issuer: CidIssuer, inner: Arc<dyn HandshakeTokenKey>) -> Self {
        Self { issuer, inner }
    }
}

impl HandshakeTokenKey for RoutableTokenKey {
    fn aead_from_hkdf(&self, random_bytes: &[u8]) -> Box<dyn AeadKey> {
        Box::new(RoutableAead {
            issuer: self.issuer.clone(),
            inner: self.inner.aead_from_hkdf(random_bytes),
        })
    }
}

struct RoutableAead {
    issuer: CidIssuer,
    inner: Box<dyn AeadKey>,
}

/// The block as associated data, in front of the caller's own.
fn with_block(block: &[u8], additional_data: &[u8]) -> Vec<u8> {
    [block, additional_data].concat()
}

impl AeadKey for RoutableAead {
    fn seal(&self, data: &mut Vec<u8>, additional_data: &[u8]) -> Result<(), CryptoError> {
        let block = self.issuer.issue();
        self.inner
            .seal(data, &with_block(&block, additional_data))?;
        data.splice(0..0, block.iter().copied());
        Ok(())
    }

    fn open<'a>(
        &self,
        data: &'a mut [u8],
        additional_data: &[u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let (block, sealed) = data
            .split_at_mut_checked(self.issuer.cid_len)
            .ok_or(CryptoError)?;
        // Not a block of ours (another length, a codepoint we never used): not our token.
        self.issuer
            .validate(&ConnectionId::new(block))
            .map_err(|InvalidCid| CryptoError)?;
        self.inner.open(sealed, &with_block(block, additional_data))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use router_common::quic_lb::{DecodeError, Decoder};

    use super::*;

    fn key(octet: u8) -> Key {
        Key::from_slice(&[octet; 16]).unwrap()
    }

    /// quinn's token layout: the sealed payload, then the random nonce the key came from.
    fn mint(key: &RoutableTokenKey, payload: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let mut token = payload.to_vec();
        key.aead_from_hkdf(&nonce).seal(&mut token, &[]).unwrap();
        token.extend_from_slice(&nonce);
        token
    }

    /// What quinn does with a token it receives: the payload, or `None` (no token).
    fn accept(key: &RoutableTokenKey, token: &[u8]) -> Option<Vec<u8>> {
        let (sealed, nonce) = token.split_at_checked(token.len().checked_sub(16)?)?;
        let mut sealed = sealed.to_vec();
        let aead = key.aead_from_hkdf(nonce);
        aead.open(&mut sealed, &[])
            .ok()
            .map(|payload| payload.to_vec())
    }

    fn token_key(params: ConfigParams, key: Option<Key>, server_id: u8) -> RoutableTokenKey {
        let issuer = CidIssuer::new(IssuerConfig {
            params,
            key,
            server_id: vec![server_id; params.server_id_len as usize],
        })
        .unwrap();
        RoutableTokenKey::new(issuer)
    }

    fn token_decoder(params: ConfigParams, key: Option<Key>) -> Decoder<Aes128> {
        let mut decoder = Decoder::new();
        decoder.insert(Config::new(params, key.as_ref().map(Key::aes128)).unwrap());
        decoder
    }

    #[test]
    fn a_token_opens_where_it_was_issued_and_its_block_names_the_server() {
        let params = ConfigParams::new(1, 2, 6);
        let tokens = token_key(params, Some(key(9)), 0x33);
        let token = mint(&tokens, b"validation payload");
        let (codepoint, server_id) = token_decoder(params, Some(key(9)))
            .token_server_id(&token)
            .unwrap();
        assert_eq!((codepoint, server_id.as_slice()), (1, &[0x33, 0x33][..]));
        assert_eq!(accept(&tokens, &token).unwrap(), b"validation payload");
    }

    #[test]
    fn a_token_of_another_server_or_with_a_changed_block_is_no_token() {
        let params = ConfigParams::new(0, 2, 6);
        let ours = token_key(params, Some(key(1)), 1);
        let theirs = token_key(params, Some(key(1)), 2);
        let token = mint(&theirs, b"payload");
        assert_eq!(accept(&ours, &token), None, "another server's token");
        let mut changed = mint(&ours, b"payload");
        changed[3] ^= 1;
        assert_eq!(accept(&ours, &changed), None, "a changed block");
        let mut other_codepoint = mint(&ours, b"payload");
        other_codepoint[0] ^= 0x20;
        assert_eq!(accept(&ours, &other_codepoint), None, "another codepoint");
        assert_eq!(accept(&ours, &[0u8; 20]), None, "garbage");
        assert_eq!(accept(&ours, &[]), None, "empty");
    }

    #[test]
    fn token_blocks_and_cids_never_share_a_nonce() {
        let params = ConfigParams::new(2, 3, 5);
        let issuer = CidIssuer::new(IssuerConfig {
            params,
            key: Some(key(2)),
            server_id: vec![7; 3],
        })
        .unwrap();
        let tokens = RoutableTokenKey::new(issuer.clone());
        let decoder = token_decoder(params, Some(key(2)));
        let mut nonces = HashSet::new();
        for _ in 0..2000 {
            let token = mint(&tokens, b"p");
            let (block, _) = decoder.token_block(&token).unwrap();
            let from_token = decoder.decode(block).unwrap();
            assert_eq!(from_token.server_id.as_slice(), &[7; 3]);
            assert!(nonces.insert(from_token.nonce), "a token repeated a nonce");
            let cid = decoder.decode(&issuer.issue()).unwrap();
            assert!(nonces.insert(cid.nonce), "a CID repeated a token's nonce");
        }
    }

    /// Runs of six octets that two tokens have in common (two random tokens share one about
    /// once in a hundred billion pairs).
    fn common_windows(a: &[u8], b: &[u8]) -> usize {
        let windows: HashSet<&[u8]> = a.windows(6).collect();
        b.windows(6).filter(|w| windows.contains(w)).count()
    }

    #[test]
    fn two_tokens_for_one_client_share_no_octet_pattern_under_an_encrypted_config() {
        let params = ConfigParams::new(0, 2, 6);
        let tokens = token_key(params, Some(key(3)), 5);
        for _ in 0..100 {
            let (a, b) = (mint(&tokens, b"same client"), mint(&tokens, b"same client"));
            assert_eq!(common_windows(&a, &b), 0, "{a:02x?} and {b:02x?}");
        }
        // A plaintext config shows its server ID, as its CIDs do: the first octet and the
        // server ID are the same in every token.
        let plain = token_key(params, None, 5);
        let (a, b) = (mint(&plain, b"same client"), mint(&plain, b"same client"));
        assert_eq!(a[..3], b[..3]);
    }

    #[test]
    fn every_cid_decodes_to_the_server_id_and_none_repeats() {
        for (params, key) in [
            (ConfigParams::new(0, 2, 6), None),
            (ConfigParams::new(1, 4, 12), Some(key(1))),
            (ConfigParams::new(2, 3, 5), Some(key(2))),
        ] {
            let issuer = CidIssuer::new(IssuerConfig {
                params,
                key: key.clone(),
                server_id: vec![0x5a; params.server_id_len as usize],
            })
            .unwrap();
            let mut decoder = Decoder::new();
            decoder.insert(Config::new(params, key.as_ref().map(Key::aes128)).unwrap());
            let mut seen = HashSet::new();
            let mut generator = issuer.clone();
            for i in 0..5000 {
                let cid = if i % 2 == 0 {
                    generator.generate_cid()
                } else {
                    issuer.issue()
                };
                assert_eq!(cid.len(), params.cid_len());
                assert!(generator.validate(&cid).is_ok());
                let decoded = decoder.decode(&cid).unwrap();
                assert_eq!(
                    decoded.server_id.as_slice(),
                    &vec![0x5a; params.server_id_len as usize][..]
                );
                assert!(seen.insert(decoded.nonce), "nonce repeated");
            }
        }
    }

    #[test]
    fn an_exhausted_counter_issues_unroutable_cids() {
        let params = ConfigParams::new(3, 4, 4);
        let issuer = CidIssuer::new(IssuerConfig {
            params,
            key: Some(key(3)),
            server_id: vec![1, 2, 3, 4],
        })
        .unwrap();
        // Run the 32-bit counter round to its start.
        {
            let mut state = issuer.lock();
            if let Nonces::Counter { next, start, .. } = &mut state.issuing.nonces {
                *start = vec![0, 0, 0, 0];
                *next = vec![0xff, 0xff, 0xff, 0xfe];
            }
        }
        let mut decoder = Decoder::new();
        decoder.insert(Config::new(params, Some(key(3).aes128())).unwrap());
        assert!(decoder.decode(&issuer.issue()).is_ok()); // ...fe
        assert!(decoder.decode(&issuer.issue()).is_ok()); // ...ff, then the count is back at 0
        for _ in 0..3 {
            let cid = issuer.issue();
            assert_eq!(cid.len(), params.cid_len());
            assert_eq!(decoder.decode(&cid).unwrap_err(), DecodeError::Unroutable);
        }
    }

    #[test]
    fn rotation_keeps_the_length_and_validates_old_cids() {
        let issuer = CidIssuer::new(IssuerConfig {
            params: ConfigParams::new(0, 3, 5),
            key: Some(key(4)),
            server_id: vec![7; 3],
        })
        .unwrap();
        let old = issuer.issue();
        issuer
            .rotate(IssuerConfig {
                params: ConfigParams::new(1, 2, 6),
                key: Some(key(5)),
                server_id: vec![8; 2],
            })
            .unwrap();
        let new = issuer.issue();
        assert_eq!(new[0] >> 5, 1);
        assert!(issuer.validate(&old).is_ok() && issuer.validate(&new).is_ok());
        assert!(
            issuer.validate(&ConnectionId::new(&[0x40; 9])).is_err(),
            "codepoint 2 was never used"
        );
        assert_eq!(
            issuer
                .rotate(IssuerConfig {
                    params: ConfigParams::new(2, 3, 6),
                    key: None,
                    server_id: vec![1; 3]
                })
                .unwrap_err(),
            IssuerError::LengthChange {
                current: 9,
                new: 10
            }
        );
        assert_eq!(
            CidIssuer::new(IssuerConfig {
                params: ConfigParams::new(0, 1, 4),
                key: None,
                server_id: vec![1]
            })
            .err(),
            Some(IssuerError::TooShort(6))
        );
        assert!(matches!(
            CidIssuer::new(IssuerConfig {
                params: ConfigParams::new(0, 2, 4),
                key: None,
                server_id: vec![1]
            })
            .err(),
            Some(IssuerError::TooShort(7))
        ));
        assert!(matches!(
            CidIssuer::new(IssuerConfig {
                params: ConfigParams::new(0, 3, 5),
                key: None,
                server_id: vec![1]
            })
            .err(),
            Some(IssuerError::Encode(EncodeError::ServerIdLength {
                expected: 3,
                actual: 1
            }))
        ));
    }
}
