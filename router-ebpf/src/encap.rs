//! Delivery across L3 (docs/data-path.md): the client's IP packet, unchanged, inside
//! an outer IPv4 or IPv6 header (IP-in-IP), or an outer header, UDP and a GUE header, to the
//! backend's tunnel address. The outer source address (and GUE's source port) vary with the
//! flow's hash; DSCP and ECN are copied from the inner header; the outer IPv4 header is
//! checksummed, GUE's UDP checksum is zero.

use aya_ebpf::{helpers::generated::bpf_xdp_adjust_head, programs::XdpContext};
use router_common::{
    counters::Outcome,
    maps::{BackendEntry, DELIVERY_GUE, EncapConfig},
};
use router_ebpf::parse::{Packet, link_layer, write_array};

const ETH_HLEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
/// UDP and the GUE header.
const GUE_LEN: usize = 12;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_UDP: u8 = 17;

/// Puts the frame's IP packet inside the outer headers `entry` calls for, behind a new
/// Ethernet header from `entry`'s MACs. `hash` is the flow's.
#[inline(never)]
pub fn encapsulate(
    ctx: &XdpContext,
    entry: &BackendEntry,
    config: &EncapConfig,
    hash: u32,
) -> Result<(), Outcome> {
    let (l3, ethertype) = link_layer(ctx)?;
    let inner_v6 = match ethertype {
        ETH_P_IPV4 => false,
        ETH_P_IPV6 => true,
        _ => return Err(Outcome::NotListener),
    };
    let first: [u8; 6] = ctx.load_array(l3)?;
    let (tos, inner_len) = if inner_v6 {
        (
            first[0] << 4 | first[1] >> 4,
            IPV6_HLEN + u16::from_be_bytes([first[4], first[5]]) as usize,
        )
    } else {
        (first[1], u16::from_be_bytes([first[2], first[3]]) as usize)
    };
    let gue = entry.delivery == DELIVERY_GUE;
    let outer_v6 = entry.tunnel_family == 6;
    let protocol = match (gue, inner_v6) {
        (true, _) => IPPROTO_UDP,
        (false, true) => IPPROTO_IPV6,
        (false, false) => IPPROTO_IPIP,
    };
    let ip_len = if outer_v6 { IPV6_HLEN } else { IPV4_HLEN };
    let extra = if gue { GUE_LEN } else { 0 };
    let grow = ETH_HLEN + ip_len + extra - l3;
    // SAFETY: the program's context; the helper checks the new start against the headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(grow as i32)) } != 0 {
        return Err(Outcome::RedirectFailed);
    }
    let mut eth = [0u8; ETH_HLEN];
    eth[..12].copy_from_slice(entry.ethernet_addresses());
    let outer_ethertype = if outer_v6 { ETH_P_IPV6 } else { ETH_P_IPV4 };
    eth[12..].copy_from_slice(&outer_ethertype.to_be_bytes());
    write_array(ctx, 0, &eth)?;
    let payload_len = extra + inner_len;
    if outer_v6 {
        let mut ip = [0u8; IPV6_HLEN];
        ip[0] = 0x60 | tos >> 4;
        // Traffic class's low half, then a flow label from the hash.
        ip[1] = (tos & 0x0f) << 4 | (hash >> 16) as u8 & 0x0f;
        ip[2..4].copy_from_slice(&(hash as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
        ip[6] = protocol;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&config.source6);
        let host = hash.to_be_bytes();
        for i in 0..4 {
            ip[20 + i] ^= host[i] & config.source6_hosts[i];
        }
        ip[24..40].copy_from_slice(&entry.tunnel_address);
        write_array(ctx, ETH_HLEN, &ip)?;
    } else {
        let mut ip = [0u8; IPV4_HLEN];
        ip[0] = 0x45;
        ip[1] = tos;
        ip[2..4].copy_from_slice(&((IPV4_HLEN + payload_len) as u16).to_be_bytes());
        // Don't fragment: a packet too big for the path is answered, not cut.
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = protocol;
        let host = hash.to_be_bytes();
        for i in 0..4 {
            ip[12 + i] = config.source4[i] | host[i] & config.source4_hosts[i];
        }
        ip[16..20].copy_from_slice(&entry.tunnel_address[..4]);
        let checksum = ipv4_checksum(&ip);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        write_array(ctx, ETH_HLEN, &ip)?;
    }
    if gue {
        let mut udp = [0u8; GUE_LEN];
        // A source port from the hash, in the dynamic range.
        udp[0..2].copy_from_slice(&(0xc000 | hash as u16 & 0x3fff).to_be_bytes());
        udp[2..4].copy_from_slice(&config.gue_port_be.to_ne_bytes());
        udp[4..6].copy_from_slice(&(GUE_LEN as u16 + inner_len as u16).to_be_bytes());
        // GUE version 0, no options, the inner packet's protocol.
        udp[9] = if inner_v6 { IPPROTO_IPV6 } else { IPPROTO_IPIP };
        write_array(ctx, ETH_HLEN + ip_len, &udp)?;
    }
    Ok(())
}

/// The IPv4 header checksum of `header` (its checksum field zero).
#[inline(always)]
fn ipv4_checksum(header: &[u8; IPV4_HLEN]) -> u16 {
    let mut sum = 0u32;
    for pair in header.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
