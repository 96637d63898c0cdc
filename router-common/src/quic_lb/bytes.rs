//! Fixed-capacity byte strings: connection IDs, server IDs and nonces without a heap.

use core::fmt;

/// Up to `N` octets stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BoundedBytes<const N: usize> {
    bytes: [u8; N],
    len: u8,
}

/// A QUIC connection ID (at most 20 octets).
pub type ConnectionId = BoundedBytes<{ super::MAX_CID_LEN }>;
/// A QUIC-LB server ID (1..=15 octets).
pub type ServerId = BoundedBytes<15>;
/// A QUIC-LB nonce (4..=18 octets).
pub type Nonce = BoundedBytes<18>;

impl<const N: usize> BoundedBytes<N> {
    /// Copies `bytes`; `None` when it is longer than `N`.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > N {
            return None;
        }
        let mut out = Self::zeroed(bytes.len());
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(out)
    }

    /// `len` zero octets. `len` must not exceed `N`.
    pub(crate) const fn zeroed(len: usize) -> Self {
        assert!(len <= N);
        Self {
            bytes: [0; N],
            len: len as u8,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len as usize]
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> AsRef<[u8]> for BoundedBytes<N> {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Lowercase hex, the form operators see everywhere.
impl<const N: usize> fmt::Display for BoundedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice()
            .iter()
            .try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl<const N: usize> fmt::Debug for BoundedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}
