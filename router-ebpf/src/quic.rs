//! QUIC headers, as far as routing needs them: where the destination connection ID is,
//! whether the packet is an Initial or 0-RTT, and where an Initial's token is.

use router_common::{counters::Outcome, quic_lb::MAX_CID_LEN};
use router_ebpf::parse::Packet;

const QUIC_V1: u32 = 0x0000_0001;
/// RFC 9369.
const QUIC_V2: u32 = 0x6b33_43cf;
/// First octet, version, DCID length.
const LONG_PREFIX_LEN: usize = 6;

/// The destination connection ID of a packet.
pub struct Header {
    /// Offset of the DCID's first octet in the packet.
    pub dcid_offset: usize,
    /// Long header: the DCID length field. Short header: every octet after the first, of
    /// which the config that the codepoint selects takes its CID length.
    pub dcid_len: usize,
    pub short: bool,
    /// A QUIC v1 or v2 Initial or 0-RTT packet: its DCID may be the client's choice.
    pub initial_or_0rtt: bool,
    /// An Initial's token: its offset in the packet and its length (0: none, or not an
    /// Initial).
    pub token_offset: usize,
    pub token_len: usize,
}

/// Reads the header of the QUIC packet at `offset` (`len` octets of UDP payload).
///
/// Long headers follow the version-invariant layout (RFC 8999) whatever their version; only
/// QUIC v1 and v2 packets are checked against their own rules (connection IDs of at most
/// 20 octets). An unknown version or a
/// Version Negotiation packet is never malformed for that reason alone (draft-21 §8).
#[inline(always)]
pub fn parse_header(ctx: &impl Packet, offset: usize, len: usize) -> Result<Header, Outcome> {
    let malformed = |_| Outcome::MalformedQuic;
    // First octet, version, DCID length, DCID, SCID length: a long header has at least 7.
    if len < LONG_PREFIX_LEN + 1 {
        if len == 0 {
            return Err(Outcome::MalformedQuic);
        }
        if ctx.load_byte(offset).map_err(malformed)? & 0x80 != 0 {
            return Err(Outcome::MalformedQuic);
        }
        return Ok(short_header(offset, len));
    }
    let prefix: [u8; LONG_PREFIX_LEN] = ctx.load_array(offset).map_err(malformed)?;
    let first = prefix[0];
    if first & 0x80 == 0 {
        return Ok(short_header(offset, len));
    }
    let version = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
    let dcid_len = prefix[5] as usize;
    if LONG_PREFIX_LEN + dcid_len + 1 > len {
        return Err(Outcome::MalformedQuic);
    }
    let scid_len = ctx
        .load_byte(offset + LONG_PREFIX_LEN + dcid_len)
        .map_err(malformed)? as usize;
    if LONG_PREFIX_LEN + dcid_len + 1 + scid_len > len {
        return Err(Outcome::MalformedQuic);
    }
    let packet_type = (first >> 4) & 0x03;
    let (initial, initial_or_0rtt) = match version {
        // Initial 0b00, 0-RTT 0b01.
        QUIC_V1 => (packet_type == 0, packet_type <= 1),
        // Initial 0b01, 0-RTT 0b10.
        QUIC_V2 => (packet_type == 1, packet_type == 1 || packet_type == 2),
        _ => (false, false),
    };
    // The v1/v2 limit on connection ID lengths. Not the fixed bit: a peer that supports
    // greasing it (RFC 9287) may clear it, in a resumed connection's Initial too.
    if (version == QUIC_V1 || version == QUIC_V2)
        && (dcid_len > MAX_CID_LEN || scid_len > MAX_CID_LEN)
    {
        return Err(Outcome::MalformedQuic);
    }
    let (token_offset, token_len) = if initial {
        let token_field = LONG_PREFIX_LEN + dcid_len + 1 + scid_len;
        token(ctx, offset + token_field, len - token_field)?
    } else {
        (0, 0)
    };
    Ok(Header {
        dcid_offset: offset + LONG_PREFIX_LEN,
        dcid_len,
        short: false,
        initial_or_0rtt,
        token_offset,
        token_len,
    })
}

/// The token of an Initial whose Token Length field is at `offset`, `left` octets before the
/// packet ends: its offset and length. A length that runs past the packet is malformed.
#[inline(always)]
fn token(ctx: &impl Packet, offset: usize, left: usize) -> Result<(usize, usize), Outcome> {
    let malformed = |_| Outcome::MalformedQuic;
    if left == 0 {
        return Err(Outcome::MalformedQuic);
    }
    // A variable-length integer (RFC 9000 §16): the first two bits give its size. Constant
    // sizes and masks, so that the verifier knows the bounds of what follows.
    let first = ctx.load_byte(offset).map_err(malformed)?;
    let (size, token_len) = match first >> 6 {
        0 => (1, u64::from(first)),
        1 => {
            let octets = ctx.load_array(offset).map_err(malformed)?;
            (2, u64::from(u16::from_be_bytes(octets) & 0x3fff))
        }
        2 => {
            let octets = ctx.load_array(offset).map_err(malformed)?;
            (4, u64::from(u32::from_be_bytes(octets) & 0x3fff_ffff))
        }
        _ => {
            let octets = ctx.load_array(offset).map_err(malformed)?;
            (8, u64::from_be_bytes(octets) & (u64::MAX >> 2))
        }
    };
    // No token is longer than a UDP payload.
    if size > left || token_len > u64::from(u16::MAX) || token_len as usize > left - size {
        return Err(Outcome::MalformedQuic);
    }
    Ok((offset + size, token_len as usize))
}

#[inline(always)]
fn short_header(offset: usize, len: usize) -> Header {
    Header {
        dcid_offset: offset + 1,
        dcid_len: len - 1,
        short: true,
        initial_or_0rtt: false,
        token_offset: 0,
        token_len: 0,
    }
}
