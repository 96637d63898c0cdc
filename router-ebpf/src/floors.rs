//! Floors for the benchmarks (`cargo xtask bench`): the router's per-packet cost is measured
//! next to these. Only the bench loads them.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    macros::xdp,
    programs::XdpContext,
};

use crate::{
    maps::{FLOOR_MACS, FLOOR_PORTS},
    parse::{Datagram, parse_datagram, ptr_at},
};

/// Does nothing: the cost of running an XDP program at all.
#[xdp]
pub fn floor_pass(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

/// Parses Ethernet, IP and UDP as the router does, writes the Ethernet addresses and
/// redirects every UDP datagram through a devmap: the least a redirecting router does.
#[xdp]
pub fn floor_redirect(ctx: XdpContext) -> u32 {
    let mut datagram = Datagram::default();
    if parse_datagram(&ctx, &mut datagram).is_err() {
        return XDP_PASS;
    }
    let (Some(addresses), Ok(eth)) = (FLOOR_MACS.get(0), ptr_at::<12>(&ctx, 0)) else {
        return XDP_DROP;
    };
    // SAFETY: ptr_at checked the 12 octets.
    unsafe { eth.write_unaligned(*addresses) };
    FLOOR_PORTS
        .redirect(0, u64::from(XDP_DROP))
        .unwrap_or(XDP_DROP)
}
