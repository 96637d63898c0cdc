//! The answer to a packet that would exceed the path's MTU once encapsulated: the packet
//! becomes, in place, an ICMP "fragmentation needed" (IPv4) or ICMPv6 "packet too big" from
//! the VIP to the client, quoting the packet's start, sent back where it came from
//! (docs/data-path.md, "Path MTU").

use aya_ebpf::{
    helpers::generated::{bpf_csum_diff, bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use router_common::counters::Outcome;
use router_ebpf::headers::{
    ETH_HLEN, ICMP_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPV4_HLEN, IPV6_HLEN, VLAN_HLEN,
    ipv4_checksum,
};
use router_ebpf::parse::{Aligned, Packet, packet_len, write_array};

const VLAN_ETH_HLEN: usize = ETH_HLEN + VLAN_HLEN;
/// The octets of the packet quoted: with the ICMP header, the most one checksum helper call
/// covers (512); the answer stays within IPv4's 576 and IPv6's 1280.
const QUOTE_LEN: usize = 504;

/// Turns the frame (its IP packet at `l3`, IPv6 if `v6`) into the answer carrying `mtu`, to
/// send back. Refuses (the caller drops) an ICMP packet (no error about an error),
/// one from an address that is no host's, and one too short to quote. A subprogram.
#[inline(never)]
pub fn answer(ctx: &XdpContext, l3: usize, v6: bool, mtu: u32) -> Result<(), Outcome> {
    if packet_len(ctx) < l3 + QUOTE_LEN {
        return Err(Outcome::TooBig);
    }
    let message_len = ICMP_HLEN + QUOTE_LEN;
    let mut icmp_header = Aligned([0u8; ICMP_HLEN]);
    let icmp = &mut icmp_header.0;
    // The new IP header is the packet's own with the addresses swapped: from the VIP to
    // the client. Built whole before the packet moves.
    let ip_len = if v6 {
        let mut header = Aligned(ctx.load_array::<IPV6_HLEN>(l3)?);
        let ip = &mut header.0;
        let client = &ip[8..24];
        if ip[6] == IPPROTO_ICMPV6 || client[0] == 0xff || client == [0; 16] {
            return Err(Outcome::TooBig);
        }
        for i in 8..24 {
            ip.swap(i, i + 16);
        }
        ip[..4].copy_from_slice(&[0x60, 0, 0, 0]);
        ip[4..6].copy_from_slice(&(message_len as u16).to_be_bytes());
        ip[6] = IPPROTO_ICMPV6;
        ip[7] = 64;
        move_behind_answer_headers(ctx, l3, IPV6_HLEN)?;
        write_array(ctx, l3, ip)?;
        // Packet Too Big, code 0, the MTU in 32 bits.
        icmp[0] = 2;
        icmp[4..8].copy_from_slice(&mtu.to_be_bytes());
        IPV6_HLEN
    } else {
        let mut header = Aligned(ctx.load_array::<IPV4_HLEN>(l3)?);
        let ip = &mut header.0;
        let client = ip[12];
        if ip[9] == IPPROTO_ICMP || client == 0 || client == 127 || client >= 224 {
            return Err(Outcome::TooBig);
        }
        for i in 12..16 {
            ip.swap(i, i + 4);
        }
        ip[0] = 0x45;
        // Internetwork control precedence, as hosts send ICMP.
        ip[1] = 0xc0;
        ip[2..4].copy_from_slice(&((IPV4_HLEN + message_len) as u16).to_be_bytes());
        ip[4..8].copy_from_slice(&[0; 4]);
        ip[8] = 64;
        ip[9] = IPPROTO_ICMP;
        ip[10..12].copy_from_slice(&[0; 2]);
        let checksum = ipv4_checksum(ip);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        move_behind_answer_headers(ctx, l3, IPV4_HLEN)?;
        write_array(ctx, l3, ip)?;
        // Destination unreachable, fragmentation needed, the next-hop MTU in 16 bits.
        icmp[0] = 3;
        icmp[1] = 4;
        icmp[6..8].copy_from_slice(&(mtu.min(0xffff) as u16).to_be_bytes());
        IPV4_HLEN
    };
    let at = l3 + ip_len;
    write_array(ctx, at, icmp)?;
    let start = ctx.data() + l3;
    if start + ip_len + message_len > ctx.data_end() {
        return Err(Outcome::TooBig);
    }
    let seed = if v6 {
        // The pseudo-header: the addresses as they stand in the header, then the length
        // and the next header.
        let mut rest = [0u8; 8];
        rest[..4].copy_from_slice(&(message_len as u32).to_be_bytes());
        rest[7] = IPPROTO_ICMPV6;
        // SAFETY: 32 octets of packet data (checked above) and 8 on the stack.
        unsafe {
            let addresses = bpf_csum_diff(core::ptr::null_mut(), 0, (start + 8) as *mut u32, 32, 0);
            bpf_csum_diff(
                core::ptr::null_mut(),
                0,
                rest.as_mut_ptr().cast(),
                8,
                addresses as u32,
            ) as u32
        }
    } else {
        0
    };
    // SAFETY: `message_len` octets of packet data, checked above; no "from" octets.
    let sum = unsafe {
        bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            (start + ip_len) as *mut u32,
            message_len as u32,
            seed,
        )
    };
    write_array(ctx, at + 2, &Aligned(fold(sum as u64).to_ne_bytes()).0)
}

/// Makes room for the answer's IP and ICMP headers between the link layer (`l3` octets,
/// moved, its addresses swapped: the answer goes back to the sender) and the packet, and
/// cuts the packet to the quote.
#[inline(always)]
fn move_behind_answer_headers(ctx: &XdpContext, l3: usize, ip_len: usize) -> Result<(), Outcome> {
    let grow = ip_len + ICMP_HLEN;
    // SAFETY: the program's context; the helper checks the new start against the headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(grow as i32)) } != 0 {
        return Err(Outcome::TooBig);
    }
    if l3 == ETH_HLEN {
        move_link_layer::<ETH_HLEN>(ctx, grow)?;
    } else {
        move_link_layer::<VLAN_ETH_HLEN>(ctx, grow)?;
    }
    let end = l3 + grow + QUOTE_LEN;
    // SAFETY: the program's context; the helper checks the new length.
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, end as i32 - packet_len(ctx) as i32) } != 0 {
        return Err(Outcome::TooBig);
    }
    Ok(())
}

/// Moves the `N` octets of Ethernet (and VLAN) header from `from` to the frame's start, the
/// addresses swapped: the answer goes back to the sender.
#[inline(always)]
fn move_link_layer<const N: usize>(ctx: &XdpContext, from: usize) -> Result<(), Outcome> {
    let mut header = Aligned(ctx.load_array::<N>(from)?);
    for i in 0..6 {
        header.0.swap(i, i + 6);
    }
    write_array(ctx, 0, &header.0)
}

/// A partial sum folded to 16 bits and complemented: the checksum, in the order the sum's
/// octets were read.
#[inline(always)]
fn fold(sum: u64) -> u16 {
    let mut sum = (sum & 0xffff_ffff) as u32 as u64;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
