//! Local workers: the `SO_REUSEPORT` program of a listener's socket group on the router's own
//! host. It finds the server that a datagram's DCID names with the same code and maps as the
//! XDP program, and gives the datagram to that worker's socket in `WORKER_SOCKETS`. When the
//! DCID names no server (a new connection, an unroutable CID) or one without a socket here,
//! it leaves the choice to the kernel (its 4-tuple hash).

use aya_ebpf::{
    bindings::{sk_action::SK_PASS, sk_reuseport_md},
    macros::sk_reuseport,
    programs::SkReuseportContext,
};
use router_common::maps::{LocalOutcome, ServerIdKey, worker_socket_index};

use crate::{
    cid::{CidRoute, route_by_cid},
    maps::{CONTROL, WORKER_SOCKETS},
    quic::parse_header,
    stats,
};

const UDP_HLEN: usize = 8;
const ETH_P_IPV6_BE: u32 = 0x86dd_u16.to_be() as u32;

#[sk_reuseport]
pub fn select_worker(ctx: SkReuseportContext) -> u32 {
    stats::count_local(try_select_worker(&ctx));
    // Without a selection the kernel picks by its hash.
    SK_PASS
}

#[inline(always)]
fn try_select_worker(ctx: &SkReuseportContext) -> LocalOutcome {
    // SAFETY: the program's context, valid for the whole run.
    let md: &sk_reuseport_md = unsafe { &*ctx.md };
    let Some(payload_len) = (md.len as usize).checked_sub(UDP_HLEN) else {
        return LocalOutcome::KernelChoice;
    };
    let Ok(header) = parse_header(ctx, UDP_HLEN, payload_len) else {
        return LocalOutcome::KernelChoice;
    };
    let epoch = CONTROL.get(0).map_or(0, |control| control.epoch);
    let mut key = ServerIdKey::default();
    let CidRoute::Server(backend) = route_by_cid(ctx, epoch, &header, &mut key) else {
        return LocalOutcome::KernelChoice;
    };
    let index = worker_socket_index(backend, md.eth_protocol == ETH_P_IPV6_BE);
    match WORKER_SOCKETS.select_reuseport(ctx, index) {
        Ok(()) => LocalOutcome::Worker,
        Err(_) => LocalOutcome::NotRegistered,
    }
}
