//! Header lengths and protocol numbers of Ethernet, IP, UDP and the tunnels, and the IPv4
//! header checksum: one home for every program that parses or builds headers.

pub const ETH_HLEN: usize = 14;
pub const VLAN_HLEN: usize = 4;
pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
pub const UDP_HLEN: usize = 8;
pub const ICMP_HLEN: usize = 8;
/// GUE's header without options.
pub const GUE_HLEN: usize = 4;
pub const IPPROTO_ICMP: u8 = 1;
/// IPv4 inside IP (IP-in-IP), and IPv4 inside GUE.
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_UDP: u8 = 17;
/// IPv6 inside IP, and IPv6 inside GUE.
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_ICMPV6: u8 = 58;

/// The IPv4 header checksum of `header` (its checksum field zero).
#[inline(always)]
pub fn ipv4_checksum(header: &[u8; IPV4_HLEN]) -> u16 {
    let mut sum = 0u32;
    for pair in header.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    fold_checksum(sum)
}

/// A 32-bit ones' complement sum folded to 16 bits and complemented: the Internet
/// checksum, in the byte order the sum was taken in.
#[inline(always)]
pub fn fold_checksum(sum: u32) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
