//! Local workers: the `SO_REUSEPORT` program of a listener's socket group on the router's own
//! host. It finds the server that a datagram's token or DCID names with the same code and
//! maps as the XDP program, and gives the datagram to that worker's socket in `WORKER_SOCKETS`. When the
//! DCID names no server (a new connection, an unroutable CID), it takes the fallback table's
//! backend for the 4-tuple, as the XDP program does, so that weights and draining hold for
//! workers too. When that backend has no socket here, the kernel chooses (its 4-tuple hash).

use aya_ebpf::{
    bindings::{sk_action::SK_PASS, sk_reuseport_md},
    macros::sk_reuseport,
    programs::SkReuseportContext,
};
use router_common::{
    counters::{LocalOutcome, Outcome},
    flow_hash::FlowAddr,
    maps::{Control, NO_BACKEND, worker_socket_slot},
};
use router_ebpf::{
    counters::bump,
    headers::UDP_HLEN,
    parse::{Datagram, Packet as _, load_network},
};

use crate::{
    maps::{CONTROL, LOCAL_STATS, WORKER_SOCKETS},
    quic::parse_header,
    route::fallback_backend,
    token::route_by_server_id,
};

const ETH_P_IPV6_BE: u32 = 0x86dd_u16.to_be() as u32;

#[sk_reuseport]
pub fn select_worker(ctx: SkReuseportContext) -> u32 {
    bump(&LOCAL_STATS, try_select_worker(&ctx) as u32);
    // Without a selection the kernel picks by its hash.
    SK_PASS
}

#[inline(always)]
fn try_select_worker(ctx: &SkReuseportContext) -> LocalOutcome {
    // SAFETY: the program's context, valid for the whole run.
    let md: &sk_reuseport_md = unsafe { &*ctx.md };
    let ipv6 = md.eth_protocol == ETH_P_IPV6_BE;
    let epoch = CONTROL.get(0).map_or(0, |control| control.epoch);
    let Some(datagram) = datagram_of(ctx, md.len as usize, ipv6) else {
        return LocalOutcome::KernelChoice;
    };
    let routed = datagram
        .payload_len
        .and_then(|payload_len| parse_header(ctx, UDP_HLEN, payload_len).ok())
        .and_then(|header| route_by_server_id(ctx, epoch, &header, &datagram).ok());
    if let Some((backend, outcome)) = routed {
        return match (select(ctx, backend, ipv6), outcome) {
            (false, _) => LocalOutcome::NotRegistered,
            (true, Outcome::RoutedByServerId) => LocalOutcome::Worker,
            (true, _) => LocalOutcome::Token,
        };
    }
    let generation = Control { epoch }.generation();
    let backend = fallback_backend(generation, &datagram);
    if backend != NO_BACKEND && select(ctx, backend, ipv6) {
        LocalOutcome::Fallback
    } else {
        LocalOutcome::KernelChoice
    }
}

/// Selects `backend`'s socket for the family; false if it has none in this group.
#[inline(always)]
fn select(ctx: &SkReuseportContext, backend: u32, ipv6: bool) -> bool {
    WORKER_SOCKETS
        .select_reuseport(ctx, worker_socket_slot(backend, ipv6))
        .is_ok()
}

/// The datagram (`len` octets from its UDP header on) as the XDP program's parser gives it:
/// the addresses from the IP header, the ports from the UDP header.
#[inline(always)]
fn datagram_of(ctx: &SkReuseportContext, len: usize, ipv6: bool) -> Option<Datagram> {
    let (mut src, mut dst): (FlowAddr, FlowAddr) = ([0; 16], [0; 16]);
    if ipv6 {
        let addresses: [u8; 32] = load_network(ctx, IPV6_ADDRESSES).ok()?;
        src.copy_from_slice(&addresses[..16]);
        dst.copy_from_slice(&addresses[16..]);
    } else {
        let addresses: [u8; 8] = load_network(ctx, IPV4_ADDRESSES).ok()?;
        src[..4].copy_from_slice(&addresses[..4]);
        dst[..4].copy_from_slice(&addresses[4..]);
    }
    let ports: [u8; 4] = ctx.load_array(0).ok()?;
    Some(Datagram {
        family: if ipv6 { 6 } else { 4 },
        src,
        dst,
        src_port_be: u16::from_ne_bytes([ports[0], ports[1]]),
        dst_port_be: u16::from_ne_bytes([ports[2], ports[3]]),
        payload_offset: UDP_HLEN,
        payload_len: len.checked_sub(UDP_HLEN),
        icmp_error: false,
    })
}

/// Offsets of the source and destination addresses in the IP header.
const IPV4_ADDRESSES: usize = 12;
const IPV6_ADDRESSES: usize = 8;
