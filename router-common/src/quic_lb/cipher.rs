//! The block cipher the codec runs on, and the QUIC-LB key.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::BLOCK_LEN;

/// AES-128-ECB on one block, in place.
///
/// User space implements it with RustCrypto's `aes` (feature `aes`); the XDP program with
/// table-based AES over key schedules that user space computes.
pub trait BlockCipher {
    fn encrypt_block(&self, block: &mut [u8; BLOCK_LEN]);
    fn decrypt_block(&self, block: &mut [u8; BLOCK_LEN]);
}

#[cfg(feature = "aes")]
impl BlockCipher for aes::Aes128 {
    #[inline]
    fn encrypt_block(&self, block: &mut [u8; BLOCK_LEN]) {
        aes::cipher::BlockEncrypt::encrypt_block(self, block.into());
    }

    #[inline]
    fn decrypt_block(&self, block: &mut [u8; BLOCK_LEN]) {
        aes::cipher::BlockDecrypt::decrypt_block(self, block.into());
    }
}

/// A 16-octet QUIC-LB key. It is never printed (its `Debug` is redacted) and is wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; BLOCK_LEN]);

/// A key of the wrong length. Carries the length only, never the key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a QUIC-LB key is 16 octets, got {0}")]
pub struct KeyError(pub usize);

impl Key {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let bytes: [u8; BLOCK_LEN] = bytes.try_into().map_err(|_| KeyError(bytes.len()))?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; BLOCK_LEN] {
        &self.0
    }

    /// The RustCrypto AES-128 cipher for this key.
    #[cfg(feature = "aes")]
    pub fn aes128(&self) -> aes::Aes128 {
        use aes::cipher::KeyInit;
        aes::Aes128::new(&self.0.into())
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}
