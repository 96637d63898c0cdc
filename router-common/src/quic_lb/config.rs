//! One QUIC-LB configuration: the parameters of a config rotation codepoint and its cipher.

use super::{BLOCK_LEN, BlockCipher, CONFIG_ROTATIONS, MAX_CID_LEN, UNROUTABLE_CONFIG_ROTATION};

/// How a configuration protects the server ID (draft-21 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum Mode {
    /// No key: the server ID is in the clear.
    Plaintext,
    /// A key and server ID + nonce of exactly 16 octets: one AES-128-ECB block.
    SinglePass,
    /// A key and any other length: the four-pass Feistel network.
    FourPass,
}

impl Mode {
    /// The mode of a configuration with or without a key and `plaintext_len` octets of server
    /// ID and nonce.
    #[inline(always)]
    pub const fn of(encrypted: bool, plaintext_len: usize) -> Self {
        match (encrypted, plaintext_len == BLOCK_LEN) {
            (false, _) => Mode::Plaintext,
            (true, true) => Mode::SinglePass,
            (true, false) => Mode::FourPass,
        }
    }

    /// The name operators see: `plaintext`, `single-pass` or `four-pass`.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Plaintext => "plaintext",
            Mode::SinglePass => "single-pass",
            Mode::FourPass => "four-pass",
        }
    }
}

impl core::fmt::Display for Mode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The parameters of one configuration, without its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigParams {
    /// Config rotation codepoint, 0..=6.
    pub config_rotation: u8,
    /// Server ID length in octets, 1..=15.
    pub server_id_len: u8,
    /// Nonce length in octets, 4..=18; server ID + nonce at most 19.
    pub nonce_len: u8,
    /// Whether the low five bits of the first octet carry the CID length minus one.
    pub length_self_description: bool,
    /// Octets the server appends after the encoded part for its own use (same for every CID).
    pub server_use_len: u8,
}

/// Why a configuration is invalid. One variant per rule of draft-21.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config rotation codepoint 7 (0b111) is reserved for unroutable connection IDs")]
    ReservedConfigRotation,
    #[error("config rotation codepoint {0} is out of range 0..=6")]
    ConfigRotationOutOfRange(u8),
    #[error("server ID length {0} is out of range 1..=15")]
    ServerIdLenOutOfRange(u8),
    #[error("nonce length {0} is out of range 4..=18")]
    NonceLenOutOfRange(u8),
    #[error("server ID length {server_id_len} + nonce length {nonce_len} exceeds 19 octets")]
    PlaintextTooLong { server_id_len: u8, nonce_len: u8 },
    #[error(
        "connection ID length {cid_len} (first octet, server ID, nonce, server-use octets) exceeds 20"
    )]
    CidTooLong { cid_len: usize },
}

impl ConfigParams {
    /// Parameters with the defaults of the config file: the first octet self-describes the
    /// CID length, and servers append no octets of their own.
    pub const fn new(config_rotation: u8, server_id_len: u8, nonce_len: u8) -> Self {
        Self {
            config_rotation,
            server_id_len,
            nonce_len,
            length_self_description: true,
            server_use_len: 0,
        }
    }

    /// Checks every rule of draft-21 §3 and §5.2 on these parameters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.config_rotation {
            UNROUTABLE_CONFIG_ROTATION => return Err(ConfigError::ReservedConfigRotation),
            cr if cr as usize >= CONFIG_ROTATIONS => {
                return Err(ConfigError::ConfigRotationOutOfRange(cr));
            }
            _ => {}
        }
        if !(1..=15).contains(&self.server_id_len) {
            return Err(ConfigError::ServerIdLenOutOfRange(self.server_id_len));
        }
        if !(4..=18).contains(&self.nonce_len) {
            return Err(ConfigError::NonceLenOutOfRange(self.nonce_len));
        }
        if self.plaintext_len() > MAX_CID_LEN - 1 {
            return Err(ConfigError::PlaintextTooLong {
                server_id_len: self.server_id_len,
                nonce_len: self.nonce_len,
            });
        }
        if self.cid_len() > MAX_CID_LEN {
            return Err(ConfigError::CidTooLong {
                cid_len: self.cid_len(),
            });
        }
        Ok(())
    }

    /// Server ID + nonce: the part that is encrypted.
    pub const fn plaintext_len(&self) -> usize {
        self.server_id_len as usize + self.nonce_len as usize
    }

    /// The length of every connection ID this configuration issues.
    pub const fn cid_len(&self) -> usize {
        1 + self.plaintext_len() + self.server_use_len as usize
    }

    /// The first octet: the codepoint, then the length (minus one) or five bits of `entropy`.
    pub const fn first_octet(&self, entropy: u8) -> u8 {
        let low = if self.length_self_description {
            (self.cid_len() - 1) as u8
        } else {
            entropy
        };
        (self.config_rotation << 5) | (low & 0x1f)
    }
}

/// A validated configuration with its cipher (`None` for plaintext).
#[derive(Clone)]
pub struct Config<C> {
    params: ConfigParams,
    cipher: Option<C>,
}

impl<C: BlockCipher> Config<C> {
    pub fn new(params: ConfigParams, cipher: Option<C>) -> Result<Self, ConfigError> {
        params.validate()?;
        Ok(Self { params, cipher })
    }

    pub fn params(&self) -> &ConfigParams {
        &self.params
    }

    pub(crate) fn cipher(&self) -> Option<&C> {
        self.cipher.as_ref()
    }

    pub fn mode(&self) -> Mode {
        Mode::of(self.cipher.is_some(), self.params.plaintext_len())
    }
}

/// Never shows the cipher: it holds the key schedule.
impl<C> core::fmt::Debug for Config<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Config")
            .field("params", &self.params)
            .field("encrypted", &self.cipher.is_some())
            .finish()
    }
}
