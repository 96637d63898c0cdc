//! The answer to a packet that would exceed the path's MTU once encapsulated: the packet
//! becomes, in place, an ICMP "fragmentation needed" (IPv4) or ICMPv6 "packet too big" from
//! the VIP to the client, quoting the packet's start, sent back out the interface it came in on
//! (docs/data-path.md, "Path MTU").

use aya_ebpf::{
    helpers::generated::{bpf_csum_diff, bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use router_common::counters::Outcome;
use router_ebpf::{
    headers::{
        ETH_HLEN, ICMP_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPV4_HLEN, IPV6_HLEN, VLAN_HLEN,
        fold_checksum, ipv4_checksum,
    },
    parse::{Aligned, Packet, packet_len, ptr_at, write_array},
};

const VLAN_ETH_HLEN: usize = ETH_HLEN + VLAN_HLEN;
/// The octets of the packet quoted: with the ICMP header, the most one checksum helper call
/// covers (512); the answer stays within IPv4's 576 and IPv6's 1280.
const QUOTE_LEN: usize = 504;
/// The ICMP message: its header and the quote.
const MESSAGE_LEN: usize = ICMP_HLEN + QUOTE_LEN;

/// Turns the frame (its IP packet at `l3`, IPv6 if `v6`) into the answer carrying `mtu`, to
/// send back. Refuses (the caller drops) an ICMP packet (no error about an error), a frame
/// to or from a group MAC or from an address that is no host's (RFC 1122 §3.2.2, RFC 4443
/// §2.4 (e)), and a packet too short to quote. A subprogram.
#[inline(never)]
pub fn answer(ctx: &XdpContext, l3: usize, v6: bool, mtu: u32) -> Result<(), Outcome> {
    if packet_len(ctx) < l3 + QUOTE_LEN {
        return Err(Outcome::TooBig);
    }
    let macs: [u8; 12] = ctx.load_array(0)?;
    if macs[0] & 1 != 0 || macs[6] & 1 != 0 {
        return Err(Outcome::TooBig);
    }
    let mut icmp_header = Aligned([0u8; ICMP_HLEN]);
    let icmp = &mut icmp_header.0;
    // The packet's IP header stays, at the quote's start, behind the answer's headers: the
    // answer's addresses are its own, swapped (from the VIP to the client).
    let ip_len = if v6 {
        let head: [u8; 8] = ctx.load_array(l3)?;
        let client: [u8; 16] = ctx.load_array(l3 + 8)?;
        if head[6] == IPPROTO_ICMPV6 || !ipv6_host(&client) {
            return Err(Outcome::TooBig);
        }
        let quoted = move_behind_answer_headers(ctx, l3, IPV6_HLEN)?;
        let mut fixed = Aligned([0x60, 0, 0, 0, 0, 0, IPPROTO_ICMPV6, 64]);
        fixed.0[4..6].copy_from_slice(&(MESSAGE_LEN as u16).to_be_bytes());
        write_array(ctx, l3, &fixed.0)?;
        let vip = Aligned(ctx.load_array::<16>(quoted + 24)?);
        write_array(ctx, l3 + 8, &vip.0)?;
        let client = Aligned(ctx.load_array::<16>(quoted + 8)?);
        write_array(ctx, l3 + 24, &client.0)?;
        // Packet Too Big, code 0, the MTU in 32 bits.
        icmp[0] = 2;
        icmp[4..8].copy_from_slice(&mtu.to_be_bytes());
        IPV6_HLEN
    } else {
        let packet: [u8; IPV4_HLEN] = ctx.load_array(l3)?;
        // Not from this network (0/8), loopback (127/8), multicast, reserved or broadcast.
        let client = packet[12];
        if packet[9] == IPPROTO_ICMP || client == 0 || client == 127 || client >= 224 {
            return Err(Outcome::TooBig);
        }
        move_behind_answer_headers(ctx, l3, IPV4_HLEN)?;
        let mut header = Aligned([0u8; IPV4_HLEN]);
        let ip = &mut header.0;
        ip[0] = 0x45;
        // Internetwork control precedence, as hosts send ICMP.
        ip[1] = 0xc0;
        ip[2..4].copy_from_slice(&((IPV4_HLEN + MESSAGE_LEN) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = IPPROTO_ICMP;
        ip[12..16].copy_from_slice(&packet[16..20]);
        ip[16..20].copy_from_slice(&packet[12..16]);
        let checksum = ipv4_checksum(ip);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        write_array(ctx, l3, ip)?;
        // Destination unreachable, fragmentation needed, the next-hop MTU in 16 bits.
        icmp[0] = 3;
        icmp[1] = 4;
        icmp[6..8].copy_from_slice(&(mtu.min(0xffff) as u16).to_be_bytes());
        IPV4_HLEN
    };
    let at = l3 + ip_len;
    write_array(ctx, at, icmp)?;
    let seed = if v6 {
        // The pseudo-header: the addresses as they stand in the header, then the length
        // and the next header.
        let addresses = ptr_at::<32>(ctx, l3 + 8)?;
        let mut rest = Aligned([0u8; 8]);
        rest.0[..4].copy_from_slice(&(MESSAGE_LEN as u32).to_be_bytes());
        rest.0[7] = IPPROTO_ICMPV6;
        // SAFETY: 32 octets of packet data (checked by ptr_at) and 8 on the stack.
        unsafe {
            let sum = bpf_csum_diff(core::ptr::null_mut(), 0, addresses.cast(), 32, 0);
            bpf_csum_diff(
                core::ptr::null_mut(),
                0,
                rest.0.as_mut_ptr().cast(),
                8,
                sum as u32,
            ) as u32
        }
    } else {
        0
    };
    let message = ptr_at::<MESSAGE_LEN>(ctx, at)?;
    // SAFETY: the message's octets of packet data, checked by ptr_at; no "from" octets.
    let sum = unsafe {
        bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            message.cast(),
            MESSAGE_LEN as u32,
            seed,
        )
    };
    write_array(
        ctx,
        at + 2,
        &Aligned(fold_checksum(sum as u32).to_ne_bytes()).0,
    )
}

/// Whether an IPv6 source is a host's: not multicast, and not unspecified, loopback,
/// IPv4-compatible or IPv4-mapped (`::/96`, `::ffff:0:0/96`).
#[inline(always)]
fn ipv6_host(address: &[u8; 16]) -> bool {
    let ipv4_inside = address[..10] == [0; 10] && matches!(address[10..12], [0, 0] | [0xff, 0xff]);
    address[0] != 0xff && !ipv4_inside
}

/// Makes room for the answer's IP and ICMP headers between the link layer (`l3` octets,
/// moved, its addresses swapped: the answer goes back to the sender) and the packet, and
/// cuts the packet to the quote. Returns where the quote (the packet) starts.
#[inline(always)]
fn move_behind_answer_headers(
    ctx: &XdpContext,
    l3: usize,
    ip_len: usize,
) -> Result<usize, Outcome> {
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
    Ok(l3 + grow)
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
