//! Routable tokens: address-validation tokens (NEW_TOKEN frames and Retry packets, RFC 9000
//! §8.1) that a QUIC-LB router can route by.
//!
//! A client sends its token back, in cleartext, in the Initial of its next connection
//! (RFC 9000 §17.2.2), whatever DCID it chose. A token that starts with the issuing server's
//! ID, encoded as that server's connection IDs are, therefore brings the client back to the
//! server that issued it, with no change to the client:
//!
//! ```text
//! Routable Token {
//!   Routable Block (8..160),   // a QUIC-LB connection ID, exactly the config's CID length
//!   Opaque Token (..),         // the server's own token, under a key of its own
//! }
//! ```
//!
//! The block is a connection ID in every respect: the first octet's codepoint bits select the
//! config, the server ID and nonce are encrypted as the config says, and the nonce comes from
//! the same never-repeating sequence as the server's CIDs (so block and CID never share a
//! nonce). The router decodes it as it decodes a short header's DCID: the block is the
//! config's CID length, and a token shorter than that names no server. The opaque part is the
//! server's business; a server authenticates the block with it (as associated data), so a
//! block cannot be moved onto another token.
//!
//! A router cannot tell a routable token from any other: a token from a server without the
//! prefix may name a server by chance, as a client's random DCID may. Precedence and the
//! odds are the router's concern (the XDP program and the docs say them).
//!
//! draft-ietf-quic-retry-offload gives the token's first bit another meaning (Retry offload
//! token or not) and, in its shared-state mode, a key shared by the offload and every server.
//! This format keeps the first octet a QUIC-LB first octet instead: the router decodes tokens
//! with the code that decodes CIDs, and no token key is shared. Behind a no-shared-state Retry
//! offload, servers would use codepoints 4..=6 (first bit 1) for their NEW_TOKEN tokens.

use super::{BlockCipher, DecodeError, Decoder, ServerId, config_rotation_of};

impl<C: BlockCipher> Decoder<C> {
    /// Splits `token` into its routable block and the server's opaque token: the block is the
    /// CID length of the config its first octet selects.
    pub fn token_block<'a>(&self, token: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
        let first = *token.first().ok_or(DecodeError::Empty)?;
        let config = self.config_of(first)?;
        let block_len = config.params().cid_len();
        token
            .split_at_checked(block_len)
            .ok_or(DecodeError::TooShort {
                config_rotation: config_rotation_of(first),
                len: token.len(),
                needed: block_len,
            })
    }

    /// The config rotation and server ID that a token's routable block carries.
    pub fn token_server_id(&self, token: &[u8]) -> Result<(u8, ServerId), DecodeError> {
        let (block, _) = self.token_block(token)?;
        self.server_id(block)
    }
}
