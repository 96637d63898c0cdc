//! Minting and decoding QUIC-LB connection IDs for operators (`quic-router cid`).
//!
//! ```
//! use router_common::quic_lb::{ConfigParams, Key};
//! use router_user::cid::{EncodeRequest, decode, encode};
//!
//! let key = Key::from_slice(&[7; 16]).unwrap();
//! let request = EncodeRequest {
//!     params: ConfigParams::new(1, 3, 5),
//!     server_id: &[0x31, 0x44, 0x1a],
//!     nonce: None,
//!     key: Some(&key),
//! };
//! let (cid, minted) = encode(&request, &mut rand::rng()).unwrap();
//! let decoded = decode(cid.as_slice(), 3, 5, Some(&key)).unwrap();
//! assert_eq!(decoded, minted);
//! assert_eq!((decoded.server_id.as_str(), decoded.mode), ("31441a", "four-pass"));
//! ```

use rand::RngCore;
use router_common::quic_lb::{
    Aes128, Config, ConfigError, ConfigParams, ConnectionId, DecodeError, Decoder, EncodeError,
    Encoder, Key, MAX_CID_LEN, Mode, UNROUTABLE_CONFIG_ROTATION, config_rotation_of,
};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum CidError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("a connection ID is 1..=20 octets, got {0}")]
    Length(usize),
}

/// What a connection ID carries, as operators see it: hex in lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CidFields {
    pub config_rotation: u8,
    pub server_id: String,
    pub nonce: String,
    pub mode: &'static str,
}

impl std::fmt::Display for CidFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "config_rotation={} server_id={} nonce={} mode={}",
            self.config_rotation, self.server_id, self.nonce, self.mode
        )
    }
}

fn config(params: ConfigParams, key: Option<&Key>) -> Result<Config<Aes128>, ConfigError> {
    Config::new(params, key.map(Key::aes128))
}

/// Decodes `cid` under the config its codepoint names, with the given lengths and key.
pub fn decode(
    cid: &[u8],
    server_id_len: u8,
    nonce_len: u8,
    key: Option<&Key>,
) -> Result<CidFields, CidError> {
    if cid.is_empty() || cid.len() > MAX_CID_LEN {
        return Err(CidError::Length(cid.len()));
    }
    let config_rotation = config_rotation_of(cid[0]);
    if config_rotation == UNROUTABLE_CONFIG_ROTATION {
        return Err(DecodeError::Unroutable.into());
    }
    let params = ConfigParams {
        config_rotation,
        server_id_len,
        nonce_len,
        length_self_description: false,
        server_use_len: 0,
    };
    let mut decoder = Decoder::new();
    decoder.insert(config(params, key)?);
    let decoded = decoder.decode(cid)?;
    Ok(CidFields {
        config_rotation: decoded.config_rotation,
        server_id: decoded.server_id.to_string(),
        nonce: decoded.nonce.to_string(),
        mode: decoded.mode.name(),
    })
}

/// What to put in a new connection ID; a random nonce of `nonce_len` when `nonce` is `None`.
pub struct EncodeRequest<'a> {
    pub params: ConfigParams,
    pub server_id: &'a [u8],
    pub nonce: Option<&'a [u8]>,
    pub key: Option<&'a Key>,
}

/// Mints a connection ID; returns it with the fields it carries.
pub fn encode(
    request: &EncodeRequest<'_>,
    rng: &mut impl RngCore,
) -> Result<(ConnectionId, CidFields), CidError> {
    let config = config(request.params, request.key)?;
    let mode: Mode = config.mode();
    let mut random_nonce = [0u8; 18];
    let nonce = match request.nonce {
        Some(nonce) => nonce,
        None => {
            let nonce = &mut random_nonce[..request.params.nonce_len as usize];
            rng.fill_bytes(nonce);
            nonce
        }
    };
    let cid = Encoder::new(config).encode(request.server_id, nonce, rng)?;
    let fields = CidFields {
        config_rotation: request.params.config_rotation,
        server_id: hex::encode(request.server_id),
        nonce: hex::encode(nonce),
        mode: mode.name(),
    };
    Ok((cid, fields))
}
