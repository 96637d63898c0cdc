//! Load balancer side: connection ID -> config rotation, server ID, nonce.

use super::{
    BLOCK_LEN, BlockCipher, CONFIG_ROTATIONS, Config, MAX_PLAINTEXT_LEN, Mode, Nonce, PlaintextBuf,
    ServerId, UNROUTABLE_CONFIG_ROTATION, config_rotation_of, four_pass,
};

/// What a connection ID carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub config_rotation: u8,
    pub server_id: ServerId,
    pub nonce: Nonce,
    pub mode: Mode,
}

/// Why a connection ID is unroutable (draft-21 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the connection ID is empty")]
    Empty,
    #[error("config rotation codepoint 7 (0b111) marks an unroutable connection ID")]
    Unroutable,
    #[error("no configuration for config rotation codepoint {0}")]
    UnknownConfigRotation(u8),
    #[error(
        "connection ID of {len} octets is too short: config rotation {config_rotation} needs at least {needed}"
    )]
    TooShort {
        config_rotation: u8,
        len: usize,
        needed: usize,
    },
}

/// Decodes connection IDs under up to seven configurations, one per codepoint.
#[derive(Debug, Clone)]
pub struct Decoder<C> {
    configs: [Option<Config<C>>; CONFIG_ROTATIONS],
}

impl<C: BlockCipher> Default for Decoder<C> {
    fn default() -> Self {
        Self {
            configs: [const { None }; CONFIG_ROTATIONS],
        }
    }
}

impl<C: BlockCipher> Decoder<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `config` at its codepoint; returns the one it replaces.
    pub fn insert(&mut self, config: Config<C>) -> Option<Config<C>> {
        let slot = config.params().config_rotation as usize;
        self.configs[slot].replace(config)
    }

    /// Removes the configuration at `config_rotation`.
    pub fn remove(&mut self, config_rotation: u8) -> Option<Config<C>> {
        self.configs.get_mut(config_rotation as usize)?.take()
    }

    /// The configuration that a connection ID starting with `first_octet` names.
    pub(crate) fn config_of(&self, first_octet: u8) -> Result<&Config<C>, DecodeError> {
        let config_rotation = config_rotation_of(first_octet);
        if config_rotation == UNROUTABLE_CONFIG_ROTATION {
            return Err(DecodeError::Unroutable);
        }
        self.configs[config_rotation as usize]
            .as_ref()
            .ok_or(DecodeError::UnknownConfigRotation(config_rotation))
    }

    /// The configuration that `cid` names, and its encoded part (server ID + nonce).
    fn select(&self, cid: &[u8]) -> Result<(&Config<C>, PlaintextBuf), DecodeError> {
        let first = *cid.first().ok_or(DecodeError::Empty)?;
        let config_rotation = config_rotation_of(first);
        let config = self.config_of(first)?;
        let needed = 1 + config.params().plaintext_len();
        let encoded = cid.get(1..needed).ok_or(DecodeError::TooShort {
            config_rotation,
            len: cid.len(),
            needed,
        })?;
        let mut buf = [0u8; MAX_PLAINTEXT_LEN];
        buf[..encoded.len()].copy_from_slice(encoded);
        Ok((config, buf))
    }

    /// The config rotation and server ID of `cid`: what a load balancer needs. Four-pass
    /// configurations stop after three passes when the server ID allows it.
    pub fn server_id(&self, cid: &[u8]) -> Result<(u8, ServerId), DecodeError> {
        let (config, encoded) = self.select(cid)?;
        let params = config.params();
        let sid_len = params.server_id_len as usize;
        let head = decode_server_id(config.cipher(), &encoded, params.plaintext_len(), sid_len);
        let server_id =
            ServerId::from_slice(&head.to_be_bytes()[..sid_len]).expect("validated length");
        Ok((params.config_rotation, server_id))
    }

    /// Everything `cid` carries, the nonce included (always four passes in four-pass mode).
    pub fn decode(&self, cid: &[u8]) -> Result<Decoded, DecodeError> {
        let (config, mut buf) = self.select(cid)?;
        let params = config.params();
        let len = params.plaintext_len();
        match (config.mode(), config.cipher()) {
            (Mode::SinglePass, Some(cipher)) => decrypt_single_pass(cipher, &mut buf),
            (Mode::FourPass, Some(cipher)) => buf = four_pass::decrypt(cipher, &buf, len),
            _ => {}
        }
        let (server_id, nonce) = buf[..len].split_at(params.server_id_len as usize);
        Ok(Decoded {
            config_rotation: params.config_rotation,
            server_id: ServerId::from_slice(server_id).expect("validated length"),
            nonce: Nonce::from_slice(nonce).expect("validated length"),
            mode: config.mode(),
        })
    }
}

/// Recovers the server ID from the encoded part of a connection ID (its first
/// `plaintext_len` octets): plaintext without a cipher, single-pass when the plaintext is one
/// block, four-pass otherwise, stopping after three passes where draft-21 allows. The server
/// ID is in the most significant `server_id_len` octets of the result, a big-endian `u128`,
/// and every other octet is zero. The XDP program runs this same function for encrypted
/// CIDs; a plaintext server ID it copies as it lies (router-ebpf `cid::copy_prefix`), which
/// the differential test checks, as it checks this function, against an independent model
/// for every server ID length.
#[inline(always)]
pub fn decode_server_id<C: BlockCipher>(
    cipher: Option<&C>,
    encoded: &PlaintextBuf,
    plaintext_len: usize,
    server_id_len: usize,
) -> u128 {
    let mut head = [0u8; BLOCK_LEN];
    head.copy_from_slice(&encoded[..BLOCK_LEN]);
    let head = match (cipher, Mode::of(cipher.is_some(), plaintext_len)) {
        (Some(cipher), Mode::SinglePass) => {
            cipher.decrypt_block(&mut head);
            u128::from_be_bytes(head)
        }
        (Some(cipher), Mode::FourPass) => {
            four_pass::decrypt_server_id(cipher, encoded, plaintext_len, server_id_len)
        }
        _ => u128::from_be_bytes(head),
    };
    head & !four_pass::shr_octets(u128::MAX, server_id_len)
}

/// Single-pass: the first 16 octets are one AES-128-ECB block.
#[inline(always)]
fn decrypt_single_pass<C: BlockCipher>(cipher: &C, buf: &mut PlaintextBuf) {
    if let Some(block) = buf.first_chunk_mut::<BLOCK_LEN>() {
        cipher.decrypt_block(block);
    }
}
