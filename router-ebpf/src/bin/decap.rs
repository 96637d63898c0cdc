//! The decapsulator for backends (`quic-router decap`): IP-in-IP (IPv4 or IPv6 inside IPv4 or
//! IPv6, protocols 4 and 41) and GUE (UDP to the configured port; a version 0 header, options
//! skipped, or version 1: the inner IP header right after UDP) addressed to one of the host's
//! tunnel addresses from a router prefix lose their outer headers, and the inner packet goes
//! to the stack as if it had arrived so (its Ethernet addresses kept). Everything else passes
//! untouched; tunnel packets from elsewhere, malformed ones and tunnels inside tunnels are
//! dropped. The contract (maps, outcomes) is router_common::decap.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    helpers::generated::bpf_xdp_adjust_head,
    macros::{map, xdp},
    maps::{Array, HashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use router_common::decap::{
    DecapConfig, DecapOutcome, SOURCE_FAMILY_BITS, SourcePrefix, TunnelAddress, specs,
};
use router_ebpf::{
    counters::bump,
    headers::{
        ETH_HLEN, ETH_P_IPV4, ETH_P_IPV6, GUE_HLEN, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_UDP,
        IPV4_HLEN, IPV6_HLEN, UDP_HLEN, VLAN_HLEN,
    },
    parse::{Aligned, Packet, link_layer, packet_len, write_array},
};

/// How the decapsulator runs (GUE's port).
#[map]
static DECAP_CONFIG: Array<DecapConfig> =
    Array::with_max_entries(specs::DECAP_CONFIG.default_entries(), 0);

/// The host's tunnel addresses.
#[map]
static DECAP_ADDRESSES: HashMap<TunnelAddress, u8> =
    HashMap::with_max_entries(specs::DECAP_ADDRESSES.default_entries(), 0);

/// The prefixes encapsulated packets may come from: the routers'.
#[map]
static DECAP_SOURCES: LpmTrie<SourcePrefix, u8> =
    LpmTrie::with_max_entries(specs::DECAP_SOURCES.default_entries(), 0);

/// Packets by `DecapOutcome`, per CPU.
#[map]
static DECAP_STATS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(specs::DECAP_STATS.default_entries(), 0);

/// GUE's control bit (a control message, not a packet to deliver).
const GUE_CONTROL: u8 = 0x20;

#[xdp]
pub fn quic_decap(ctx: XdpContext) -> u32 {
    let outcome = match try_decap(&ctx) {
        Ok(outcome) | Err(outcome) => outcome,
    };
    bump(&DECAP_STATS, outcome as u32);
    if outcome.passes() { XDP_PASS } else { XDP_DROP }
}

/// The outer IP header: its addresses and where its payload is.
struct Outer {
    family: u8,
    src: [u8; 16],
    dst: [u8; 16],
    protocol: u8,
    payload: usize,
    end: usize,
}

/// What the decapsulator did (`Ok`: the outer headers are gone) or why it did not.
fn try_decap(ctx: &XdpContext) -> Result<DecapOutcome, DecapOutcome> {
    use DecapOutcome::*;
    let (l3, ethertype) = link_layer(ctx).map_err(|_| NotTunnel)?;
    let outer = match ethertype {
        ETH_P_IPV4 => outer_ipv4(ctx, l3)?,
        ETH_P_IPV6 => outer_ipv6(ctx, l3)?,
        _ => return Err(NotTunnel),
    };
    let gue_port_be = DECAP_CONFIG.get(0).map_or(0, |config| config.gue_port_be);
    // GUE: its UDP length, read with the port.
    let gue_udp_len = match outer.protocol {
        IPPROTO_IPIP | IPPROTO_IPV6 => None,
        IPPROTO_UDP if gue_port_be != 0 => {
            let udp: [u8; UDP_HLEN] = ctx.load_array(outer.payload).map_err(|_| NotTunnel)?;
            if u16::from_ne_bytes([udp[2], udp[3]]) != gue_port_be {
                return Err(NotTunnel);
            }
            Some(be16([udp[4], udp[5]]) as usize)
        }
        _ => return Err(NotTunnel),
    };
    let tunnel_address = TunnelAddress {
        addr: outer.dst,
        family: outer.family,
        _pad: [0; 3],
    };
    if DECAP_ADDRESSES.get_ptr(tunnel_address).is_none() {
        return Err(NotTunnel);
    }
    let source = Key::new(
        SOURCE_FAMILY_BITS + if outer.family == 4 { 32 } else { 128 },
        SourcePrefix {
            family: outer.family,
            addr: outer.src,
        },
    );
    if DECAP_SOURCES.get(&source).is_none() {
        return Err(ForeignSource);
    }
    let (inner, inner_end, ipv6) = match gue_udp_len {
        Some(udp_len) => gue_payload(ctx, &outer, udp_len)?,
        None => (outer.payload, outer.end, outer.protocol == IPPROTO_IPV6),
    };
    check_inner(ctx, inner, inner_end, ipv6, gue_port_be)?;
    strip(ctx, l3, inner, ipv6)?;
    Ok(if gue_udp_len.is_some() {
        DecapsulatedGue
    } else {
        DecapsulatedIpip
    })
}

fn outer_ipv4(ctx: &XdpContext, l3: usize) -> Result<Outer, DecapOutcome> {
    use DecapOutcome::*;
    let ip: [u8; IPV4_HLEN] = ctx.load_array(l3).map_err(|_| NotTunnel)?;
    let header_len = ((ip[0] & 0x0f) as usize) * 4;
    if ip[0] >> 4 != 4 || header_len < IPV4_HLEN {
        return Err(NotTunnel);
    }
    if !matches!(ip[9], IPPROTO_IPIP | IPPROTO_IPV6 | IPPROTO_UDP) {
        return Err(NotTunnel);
    }
    // More Fragments, or a fragment offset.
    if be16([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(OuterFragment);
    }
    let total_len = be16([ip[2], ip[3]]) as usize;
    if total_len < header_len || l3 + total_len > packet_len(ctx) {
        return Err(Malformed);
    }
    let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
    src[..4].copy_from_slice(&ip[12..16]);
    dst[..4].copy_from_slice(&ip[16..20]);
    Ok(Outer {
        family: 4,
        src,
        dst,
        protocol: ip[9],
        payload: l3 + header_len,
        end: l3 + total_len,
    })
}

fn outer_ipv6(ctx: &XdpContext, l3: usize) -> Result<Outer, DecapOutcome> {
    use DecapOutcome::*;
    let ip: [u8; IPV6_HLEN] = ctx.load_array(l3).map_err(|_| NotTunnel)?;
    if ip[0] >> 4 != 6 {
        return Err(NotTunnel);
    }
    match ip[6] {
        IPPROTO_IPIP | IPPROTO_IPV6 | IPPROTO_UDP => {}
        // Fragment header.
        44 => return Err(OuterFragment),
        // Extension headers and everything else: not a tunnel this program takes.
        _ => return Err(NotTunnel),
    }
    let end = l3 + IPV6_HLEN + be16([ip[4], ip[5]]) as usize;
    if end > packet_len(ctx) {
        return Err(Malformed);
    }
    let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
    src.copy_from_slice(&ip[8..24]);
    dst.copy_from_slice(&ip[24..40]);
    Ok(Outer {
        family: 6,
        src,
        dst,
        protocol: ip[6],
        payload: l3 + IPV6_HLEN,
        end,
    })
}

/// The inner packet of a GUE datagram of UDP length `udp_len`: its offset, where the UDP
/// payload ends, and whether it is IPv6.
fn gue_payload(
    ctx: &XdpContext,
    outer: &Outer,
    udp_len: usize,
) -> Result<(usize, usize, bool), DecapOutcome> {
    use DecapOutcome::Malformed;
    let end = outer.payload + udp_len;
    if udp_len < UDP_HLEN + GUE_HLEN || end > outer.end {
        return Err(Malformed);
    }
    let gue = outer.payload + UDP_HLEN;
    let head: [u8; 2] = ctx.load_array(gue).map_err(|_| Malformed)?;
    match head[0] >> 6 {
        // Version 0: a header, optional fields of `hlen` words, then the payload.
        0 => {
            if head[0] & GUE_CONTROL != 0 {
                return Err(Malformed);
            }
            let inner = gue + GUE_HLEN + 4 * (head[0] & 0x1f) as usize;
            match head[1] {
                IPPROTO_IPIP => Ok((inner, end, false)),
                IPPROTO_IPV6 => Ok((inner, end, true)),
                _ => Err(Malformed),
            }
        }
        // Version 1: the inner IP header itself, its version telling the family.
        1 => match head[0] >> 4 {
            4 => Ok((gue, end, false)),
            6 => Ok((gue, end, true)),
            _ => Err(Malformed),
        },
        _ => Err(Malformed),
    }
}

/// Checks the inner packet at `inner` (it must end by `end`): an IP header of the family
/// announced, lengths that fit, and no tunnel inside.
fn check_inner(
    ctx: &XdpContext,
    inner: usize,
    end: usize,
    ipv6: bool,
    gue_port_be: u16,
) -> Result<(), DecapOutcome> {
    use DecapOutcome::*;
    let (protocol, transport, inner_end) = if ipv6 {
        let ip: [u8; IPV6_HLEN] = ctx.load_array(inner).map_err(|_| Malformed)?;
        if ip[0] >> 4 != 6 {
            return Err(Malformed);
        }
        (
            ip[6],
            inner + IPV6_HLEN,
            inner + IPV6_HLEN + be16([ip[4], ip[5]]) as usize,
        )
    } else {
        let ip: [u8; IPV4_HLEN] = ctx.load_array(inner).map_err(|_| Malformed)?;
        let header_len = ((ip[0] & 0x0f) as usize) * 4;
        let total_len = be16([ip[2], ip[3]]) as usize;
        if ip[0] >> 4 != 4 || header_len < IPV4_HLEN || total_len < header_len {
            return Err(Malformed);
        }
        // A later fragment has no transport header to look into.
        let protocol = if be16([ip[6], ip[7]]) & 0x1fff == 0 {
            ip[9]
        } else {
            0
        };
        (protocol, inner + header_len, inner + total_len)
    };
    if inner_end > end {
        return Err(Malformed);
    }
    match protocol {
        IPPROTO_IPIP | IPPROTO_IPV6 => Err(NestedTunnel),
        IPPROTO_UDP if gue_port_be != 0 => match ctx.load_array::<4>(transport) {
            Ok(ports) if u16::from_ne_bytes([ports[2], ports[3]]) == gue_port_be => {
                Err(NestedTunnel)
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Removes everything between the link-layer header (`l3` octets: MACs, an optional VLAN tag,
/// the EtherType) and the inner packet at `inner`, keeping the addresses and tag, with the
/// inner packet's EtherType.
fn strip(ctx: &XdpContext, l3: usize, inner: usize, ipv6: bool) -> Result<(), DecapOutcome> {
    use DecapOutcome::Malformed;
    // Read before the move, written after it from aligned stack buffers (`write_array`
    // stores whole words from them).
    let ethertype = if ipv6 { ETH_P_IPV6 } else { ETH_P_IPV4 };
    if l3 == ETH_HLEN {
        let mut eth = Aligned(ctx.load_array::<ETH_HLEN>(0).map_err(|_| Malformed)?);
        shift_head(ctx, l3, inner)?;
        eth.0[ETH_HLEN - 2..].copy_from_slice(&ethertype.to_be_bytes());
        write_array(ctx, 0, &eth.0).map_err(|_| Malformed)
    } else {
        let mut tagged = Aligned(
            ctx.load_array::<{ ETH_HLEN + VLAN_HLEN }>(0)
                .map_err(|_| Malformed)?,
        );
        shift_head(ctx, l3, inner)?;
        tagged.0[ETH_HLEN + VLAN_HLEN - 2..].copy_from_slice(&ethertype.to_be_bytes());
        write_array(ctx, 0, &tagged.0).map_err(|_| Malformed)
    }
}

/// Moves the frame's start forward by what lies between the link layer and the inner packet.
#[inline(always)]
fn shift_head(ctx: &XdpContext, l3: usize, inner: usize) -> Result<(), DecapOutcome> {
    // SAFETY: the program's context; the helper checks the new start against the frame.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, (inner - l3) as i32) } != 0 {
        return Err(DecapOutcome::Malformed);
    }
    Ok(())
}

#[inline(always)]
fn be16(octets: [u8; 2]) -> u16 {
    u16::from_be_bytes(octets)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
