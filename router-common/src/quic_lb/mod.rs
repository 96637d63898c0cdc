//! QUIC-LB connection IDs, draft-ietf-quic-load-balancers-21.
//!
//! Three types, as in QUICHE's load balancer: [`Config`] (the parameters and the cipher of one
//! config rotation codepoint), [`Encoder`] (server side: server ID + nonce -> connection ID) and
//! [`Decoder`] (load balancer side: connection ID -> config rotation, server ID, nonce).
//! The block cipher is a trait ([`BlockCipher`]) so that the same code runs on RustCrypto's
//! AES in user space and on the table-based AES of the XDP program. Routable tokens (a
//! server ID block in front of an address-validation token) are decoded as CIDs are: see
//! [`Decoder::token_block`].

mod bytes;
mod cipher;
mod config;
mod decoder;
mod encoder;
mod four_pass;
mod table_aes;
mod token;

/// RustCrypto's AES-128, the user-space [`BlockCipher`].
#[cfg(feature = "aes")]
pub use aes::Aes128;
pub use bytes::{BoundedBytes, ConnectionId, Nonce, ServerId};
pub use cipher::{BlockCipher, Key, KeyError};
pub use config::{Config, ConfigError, ConfigParams, Mode};
pub use decoder::{DecodeError, Decoded, Decoder, decode_server_id};
pub use encoder::{EncodeError, Encoder, encode_unroutable};
pub use table_aes::AesRoundKeys;

/// QUIC version 1 limits connection IDs to 20 octets.
pub const MAX_CID_LEN: usize = 20;
/// The config rotation codepoint that marks a connection ID as unroutable (draft-21 §3.2).
pub const UNROUTABLE_CONFIG_ROTATION: u8 = 0b111;
/// Number of usable config rotation codepoints (0..=6).
pub const CONFIG_ROTATIONS: usize = 7;
/// AES-128 block size; also the plaintext length that selects single-pass encryption.
pub const BLOCK_LEN: usize = 16;
/// Server ID + nonce is at most 19 octets (a 20-octet CID minus its first octet).
pub const MAX_PLAINTEXT_LEN: usize = MAX_CID_LEN - 1;
/// The longest server ID.
pub const MAX_SERVER_ID_LEN: usize = 15;

/// Server ID || nonce (plaintext) or its encoded form, in the first `len` octets.
pub type PlaintextBuf = [u8; MAX_PLAINTEXT_LEN];

/// The config rotation codepoint of a connection ID: the three most significant bits of its
/// first octet.
#[inline(always)]
pub const fn config_rotation_of(first_octet: u8) -> u8 {
    first_octet >> 5
}
