//! The fallback algorithm's hash of a packet's 4-tuple. Draft-21 §4.3 asks for an algorithm
//! that uses only the 4-tuple and none of the QUIC header's version-specific bits.
//!
//! Multiply-xorshift over 64-bit words (the addresses as two words each, the ports as one),
//! finished with SplitMix64's mixer: about forty BPF instructions where MurmurHash3 over 36
//! octets took two hundred (an Initial's cost went from above a short header's to about
//! its; `cargo xtask bench`). The table is indexed by the hash modulo a prime.

/// An address as the hash sees it: IPv4 in the first four octets and zeros after.
pub type FlowAddr = [u8; 16];

/// `addr` as the maps hold addresses: its family (4 or 6) and its [`FlowAddr`].
pub fn flow_addr(addr: core::net::IpAddr) -> (u8, FlowAddr) {
    let mut octets = [0u8; 16];
    match addr {
        core::net::IpAddr::V4(v4) => {
            octets[..4].copy_from_slice(&v4.octets());
            (4, octets)
        }
        core::net::IpAddr::V6(v6) => (6, v6.octets()),
    }
}

const SEED: u64 = 0x5155_4943_2d4c_4221; // "QUIC-LB!"
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline(always)]
fn absorb(hash: u64, word: u64) -> u64 {
    let hash = (hash ^ word).wrapping_mul(MULTIPLIER);
    hash ^ (hash >> 32)
}

#[inline(always)]
fn absorb_addr(hash: u64, addr: &FlowAddr) -> u64 {
    let (low, high) = addr.split_at(8);
    let word = |half: &[u8]| u64::from_le_bytes(half.try_into().unwrap_or([0; 8]));
    absorb(absorb(hash, word(low)), word(high))
}

/// The hash of a 4-tuple; ports as they are in the packet (network byte order).
#[inline(always)]
pub fn flow_hash(src: &FlowAddr, dst: &FlowAddr, src_port_be: u16, dst_port_be: u16) -> u32 {
    let ports = u64::from(src_port_be) << 16 | u64::from(dst_port_be);
    let mut hash = absorb_addr(absorb_addr(absorb(SEED, ports), src), dst);
    // SplitMix64's finaliser, so that every input bit reaches the low 32.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    (hash ^ (hash >> 31)) as u32
}
