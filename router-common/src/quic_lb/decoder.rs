//! Load balancer side: connection ID -> config rotation, server ID, nonce.

use super::{
    BLOCK_LEN, BlockCipher, CONFIG_ROTATIONS, Config, Mode, Nonce, ServerId,
    UNROUTABLE_CONFIG_ROTATION, config_rotation_of, four_pass,
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

    /// The configuration that `cid` names, and the encoded part (server ID + nonce).
    fn select<'a>(&self, cid: &'a [u8]) -> Result<(&Config<C>, &'a [u8]), DecodeError> {
        let first = *cid.first().ok_or(DecodeError::Empty)?;
        let config_rotation = config_rotation_of(first);
        if config_rotation == UNROUTABLE_CONFIG_ROTATION {
            return Err(DecodeError::Unroutable);
        }
        let config = self.configs[config_rotation as usize]
            .as_ref()
            .ok_or(DecodeError::UnknownConfigRotation(config_rotation))?;
        let needed = 1 + config.params().plaintext_len();
        let encoded = cid.get(1..needed).ok_or(DecodeError::TooShort {
            config_rotation,
            len: cid.len(),
            needed,
        })?;
        Ok((config, encoded))
    }

    /// The config rotation and server ID of `cid`: what a load balancer needs. Four-pass
    /// configurations stop after three passes when the server ID allows it.
    pub fn server_id(&self, cid: &[u8]) -> Result<(u8, ServerId), DecodeError> {
        let (config, encoded) = self.select(cid)?;
        let params = config.params();
        let sid_len = params.server_id_len as usize;
        let mut server_id = ServerId::zeroed(sid_len);
        match (config.mode(), config.cipher()) {
            (Mode::FourPass, Some(cipher)) => {
                four_pass::decrypt_server_id(cipher, encoded, server_id.as_mut_slice());
            }
            _ => {
                let plaintext = plaintext_of(config, encoded);
                server_id
                    .as_mut_slice()
                    .copy_from_slice(&plaintext[..sid_len]);
            }
        }
        Ok((params.config_rotation, server_id))
    }

    /// Everything `cid` carries, the nonce included (always four passes in four-pass mode).
    pub fn decode(&self, cid: &[u8]) -> Result<Decoded, DecodeError> {
        let (config, encoded) = self.select(cid)?;
        let params = config.params();
        let plaintext = plaintext_of(config, encoded);
        let (server_id, nonce) = plaintext[..encoded.len()].split_at(params.server_id_len as usize);
        Ok(Decoded {
            config_rotation: params.config_rotation,
            server_id: ServerId::from_slice(server_id).expect("server ID length is validated"),
            nonce: Nonce::from_slice(nonce).expect("nonce length is validated"),
            mode: config.mode(),
        })
    }
}

/// Server ID || nonce recovered from `encoded` (its length is the config's plaintext length).
fn plaintext_of<C: BlockCipher>(config: &Config<C>, encoded: &[u8]) -> [u8; 19] {
    let mut plaintext = [0u8; 19];
    let plaintext_part = &mut plaintext[..encoded.len()];
    plaintext_part.copy_from_slice(encoded);
    match (config.mode(), config.cipher()) {
        (Mode::SinglePass, Some(cipher)) => {
            let block: &mut [u8; BLOCK_LEN] = plaintext_part
                .try_into()
                .expect("single-pass plaintext is one block");
            cipher.decrypt_block(block);
        }
        (Mode::FourPass, Some(cipher)) => four_pass::decrypt(cipher, plaintext_part),
        _ => {}
    }
    plaintext
}
