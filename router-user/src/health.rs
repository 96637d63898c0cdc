//! Backend health probes: a datagram every QUIC server answers without any support from it.
//! A long header with a reserved version (0x?a?a?a?a, RFC 9000 §15) draws a Version
//! Negotiation packet (§6.1) that echoes the probe's connection IDs, swapped; the datagram is
//! padded to 1200 octets, the least a server answers an unknown version for (§14.1). The
//! controller sends it to a backend's VIP and port the way its packets go, so that an answer
//! says the path and the server are up.

/// The version the probes carry: reserved for forcing version negotiation.
pub const PROBE_VERSION: u32 = 0x1a2a_3a4a;
/// A probe datagram's length: the least a server answers an unknown version for.
pub const PROBE_LEN: usize = 1200;
/// The length of each of a probe's connection IDs.
const CID_LEN: usize = 8;

/// One probe: its connection IDs tell its answer from any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    dcid: [u8; CID_LEN],
    scid: [u8; CID_LEN],
}

impl Probe {
    /// A probe with fresh random connection IDs.
    pub fn new() -> Self {
        Self {
            dcid: rand::random(),
            scid: rand::random(),
        }
    }

    /// The UDP payload to send: a long header (the fixed bit set, a random type), the
    /// reserved version, both connection IDs, and padding to [`PROBE_LEN`].
    pub fn datagram(&self) -> Vec<u8> {
        let mut datagram = Vec::with_capacity(PROBE_LEN);
        datagram.push(0xc0);
        datagram.extend_from_slice(&PROBE_VERSION.to_be_bytes());
        datagram.push(CID_LEN as u8);
        datagram.extend_from_slice(&self.dcid);
        datagram.push(CID_LEN as u8);
        datagram.extend_from_slice(&self.scid);
        datagram.resize(PROBE_LEN, 0);
        datagram
    }

    /// Whether `reply` (a UDP payload) is the Version Negotiation packet that answers this
    /// probe: a long header of version 0 whose destination CID is the probe's source CID
    /// and whose source CID is the probe's destination CID, listing at least one version
    /// (and not the probe's).
    pub fn answered_by(&self, reply: &[u8]) -> bool {
        let Some((&first, rest)) = reply.split_first() else {
            return false;
        };
        if first & 0x80 == 0 || rest.get(..4) != Some(&[0; 4]) {
            return false;
        }
        let rest = &rest[4..];
        let Some((dcid, rest)) = length_prefixed(rest) else {
            return false;
        };
        let Some((scid, versions)) = length_prefixed(rest) else {
            return false;
        };
        dcid == self.scid
            && scid == self.dcid
            && !versions.is_empty()
            && versions.len() % 4 == 0
            && versions
                .chunks_exact(4)
                .all(|v| v != PROBE_VERSION.to_be_bytes())
    }
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

/// A one-octet length and that many octets, and what follows.
fn length_prefixed(octets: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = octets.split_first()?;
    let len = usize::from(len);
    (rest.len() >= len).then(|| rest.split_at(len))
}
