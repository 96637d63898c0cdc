//! The quic-router XDP program: finds each QUIC packet's server from its destination
//! connection ID (QUIC-LB, draft-ietf-quic-load-balancers-21) and redirects it there, with a
//! consistent-hashing fallback for connection IDs that name no server.
//!
//! Split by concern: `parse` (Ethernet, VLAN, IP, UDP), `quic` (QUIC headers), `cid` (server
//! IDs, decoded with router-common's codec), `route` (fallback and delivery), `stats`
//! (counters). `local` is the `SO_REUSEPORT` program that gives a local worker's datagrams
//! to its socket. The maps are in `maps`; their layouts are documented in router-common.
//! `bench` holds the programs that only the benchmark loads: the floors it measures the
//! router against, and the sink that counts what reaches a backend.
#![no_std]
#![no_main]

mod bench;
mod cid;
mod local;
mod maps;
mod parse;
mod quic;
mod route;
mod stats;

use aya_ebpf::{macros::xdp, programs::XdpContext};
use router_common::maps::Outcome;

#[xdp]
pub fn quic_router(ctx: XdpContext) -> u32 {
    match route::try_route(&ctx) {
        Ok(action) => action,
        Err(outcome) => stats::finish_unrouted(&ctx, outcome),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// Whether an early exit passes the packet to the stack or drops it.
#[inline(always)]
const fn action_of(outcome: Outcome) -> u32 {
    use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
    match outcome {
        Outcome::NotListener | Outcome::Fragment | Outcome::Ipv6Extension => XDP_PASS,
        _ => XDP_DROP,
    }
}
