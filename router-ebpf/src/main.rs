//! The quic-router programs: the XDP program finds each QUIC packet's server from its
//! destination connection ID (QUIC-LB, draft-ietf-quic-load-balancers-21) and redirects it
//! there, with a consistent-hashing fallback for connection IDs that name no server; the
//! `SO_REUSEPORT` program (`local`) gives a local worker's datagrams to its socket.
//!
//! Split by concern: `quic` (QUIC headers), `cid` (server IDs, decoded with router-common's
//! codec), `token` (routing by an Initial's token), `route` (fallback, delivery and the
//! action for unrouted packets), `stats` (counters, tracing, debug log), `maps`. Ethernet, IP
//! and UDP parsing is this crate's library (`router_ebpf::parse`), which the benchmark's programs share.
//!
//! # Subprograms
//!
//! The server-ID decoder needs most of BPF's 512 octets of stack along one call chain, so
//! parsing, decoding and tracing run as subprograms (`#[inline(never)]`) with frames of their
//! own. A BPF subprogram takes at most five arguments, each a scalar or a pointer to the
//! context or the stack, and returns one scalar. Results are `Result<_, Outcome>` all the
//! same: `Result<(), Outcome>` is one scalar already (a niche of `Outcome`), and a subprogram
//! that finds a `u32` returns a `scalar::ScalarResult`, the one encoding of
//! `Result<u32, Outcome>` (rustc would return the `Result` through a pointer, a sixth
//! argument). Arguments that do not fit in five are packed where they are passed
//! (`cid::server_id_route`), and say so there.
#![no_std]
#![no_main]

mod cid;
mod encap;
mod local;
mod maps;
mod quic;
mod route;
mod scalar;
mod stats;
mod token;
mod too_big;

use aya_ebpf::{macros::xdp, programs::XdpContext};

#[xdp]
pub fn quic_router(ctx: XdpContext) -> u32 {
    match route::try_route(&ctx) {
        Ok(action) => action,
        Err(outcome) => route::finish_unrouted(&ctx, outcome),
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
