//! Server side: server ID + nonce -> connection ID.

use rand_core::RngCore;

use super::{
    BLOCK_LEN, BlockCipher, Config, ConnectionId, MAX_CID_LEN, MAX_PLAINTEXT_LEN, Mode,
    UNROUTABLE_CONFIG_ROTATION, four_pass,
};

/// Why a connection ID could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("server ID is {actual} octets, the config needs {expected}")]
    ServerIdLength { expected: usize, actual: usize },
    #[error("nonce is {actual} octets, the config needs {expected}")]
    NonceLength { expected: usize, actual: usize },
    #[error("an unroutable connection ID is 8..=20 octets, not {0}")]
    UnroutableLength(usize),
}

/// Encodes connection IDs under one configuration.
#[derive(Debug, Clone)]
pub struct Encoder<C> {
    config: Config<C>,
}

impl<C: BlockCipher> Encoder<C> {
    pub fn new(config: Config<C>) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &Config<C> {
        &self.config
    }

    /// The connection ID for `server_id` and `nonce`. `rng` fills the first octet's low bits
    /// when the length is not self-described, and the server-use octets.
    pub fn encode<R: RngCore + ?Sized>(
        &self,
        server_id: &[u8],
        nonce: &[u8],
        rng: &mut R,
    ) -> Result<ConnectionId, EncodeError> {
        let params = self.config.params();
        let (sid_len, nonce_len) = (params.server_id_len as usize, params.nonce_len as usize);
        if server_id.len() != sid_len {
            return Err(EncodeError::ServerIdLength {
                expected: sid_len,
                actual: server_id.len(),
            });
        }
        if nonce.len() != nonce_len {
            return Err(EncodeError::NonceLength {
                expected: nonce_len,
                actual: nonce.len(),
            });
        }

        let plaintext_len = sid_len + nonce_len;
        let mut plaintext = [0u8; MAX_PLAINTEXT_LEN];
        plaintext[..sid_len].copy_from_slice(server_id);
        plaintext[sid_len..plaintext_len].copy_from_slice(nonce);
        match (self.config.mode(), self.config.cipher()) {
            (Mode::SinglePass, Some(cipher)) => {
                if let Some(block) = plaintext.first_chunk_mut::<BLOCK_LEN>() {
                    cipher.encrypt_block(block);
                }
            }
            (Mode::FourPass, Some(cipher)) => {
                plaintext = four_pass::encrypt(cipher, &plaintext, plaintext_len);
            }
            _ => {}
        }

        let mut cid = ConnectionId::zeroed(params.cid_len());
        let bytes = cid.as_mut_slice();
        bytes[0] = params.first_octet(rng.next_u32() as u8);
        bytes[1..=plaintext_len].copy_from_slice(&plaintext[..plaintext_len]);
        rng.fill_bytes(&mut bytes[1 + plaintext_len..]);
        Ok(cid)
    }
}

/// A connection ID with the reserved codepoint 0b111: what a server with no active
/// configuration issues (draft-21 §3.2). It self-describes its length; the rest is random.
/// The draft recommends at least 8 octets, which is enforced here.
pub fn encode_unroutable<R: RngCore + ?Sized>(
    len: usize,
    rng: &mut R,
) -> Result<ConnectionId, EncodeError> {
    if !(8..=MAX_CID_LEN).contains(&len) {
        return Err(EncodeError::UnroutableLength(len));
    }
    let mut cid = ConnectionId::zeroed(len);
    let bytes = cid.as_mut_slice();
    bytes[0] = (UNROUTABLE_CONFIG_ROTATION << 5) | (len - 1) as u8;
    rng.fill_bytes(&mut bytes[1..]);
    Ok(cid)
}
