//! The fallback algorithm's hash of a packet's 4-tuple (MurmurHash3, x86 32-bit, over the
//! addresses and ports). Draft-21 §4.3 asks for an algorithm that uses only the 4-tuple and
//! none of the QUIC header's version-specific bits.

/// An address as the hash sees it: IPv4 in the first four octets and zeros after.
pub type FlowAddr = [u8; 16];

const SEED: u32 = 0x5155_4943; // "QUIC"

#[inline(always)]
fn mix(hash: u32, word: u32) -> u32 {
    let k = word
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (hash ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
fn mix_addr(mut hash: u32, addr: &FlowAddr) -> u32 {
    for i in 0..4 {
        hash = mix(
            hash,
            u32::from_le_bytes([
                addr[4 * i],
                addr[4 * i + 1],
                addr[4 * i + 2],
                addr[4 * i + 3],
            ]),
        );
    }
    hash
}

/// The hash of a 4-tuple; ports as they are in the packet (network byte order).
#[inline(always)]
pub fn flow_hash(src: &FlowAddr, dst: &FlowAddr, src_port_be: u16, dst_port_be: u16) -> u32 {
    let mut hash = mix_addr(mix_addr(SEED, src), dst);
    hash = mix(
        hash,
        (u32::from(src_port_be) << 16) | u32::from(dst_port_be),
    );
    // Finalisation: length in octets, then fmix32.
    hash ^= 36;
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^ (hash >> 16)
}
