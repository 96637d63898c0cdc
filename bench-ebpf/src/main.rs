//! Programs for the benchmarks (`cargo xtask bench`) and their tests, loaded by nothing else:
//! the floors that the router's cost and rate are measured next to, the traffic generator,
//! and the sink that counts, at a backend's interface, what the forwarder delivered there.
//! They parse with the router's own code (`router_ebpf::parse`).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    helpers::generated::bpf_xdp_adjust_head,
    macros::{map, xdp},
    maps::{Array, DevMap, PerCpuArray},
    programs::XdpContext,
};
use bench_ebpf::{BENCH_MARKER_OFFSET, FLOOR_SLOTS, SinkCounter};
use router_ebpf::{
    counters::bump,
    headers::{
        ETH_HLEN, ETH_P_IPV4, GUE_HLEN, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_UDP, IPV4_HLEN,
        UDP_HLEN, ipv4_checksum,
    },
    parse::{
        Aligned, Datagram, Packet, link_layer, packet_len, parse, parse_datagram, write_array,
    },
};

/// The floor's redirect targets.
#[map]
static FLOOR_PORTS: DevMap = DevMap::with_max_entries(FLOOR_SLOTS, 0);

/// The Ethernet addresses the floor writes (destination, source), per slot.
#[map]
static FLOOR_MACS: Array<[u8; 12]> = Array::with_max_entries(FLOOR_SLOTS, 0);

/// The interface the generator sends through (slot 0).
#[map]
static GENERATOR_PORT: DevMap = DevMap::with_max_entries(1, 0);

/// The index of the backend a sink counts for (slot 0).
#[map]
static SINK_BACKEND: Array<u32> = Array::with_max_entries(1, 0);

/// A sink's counters, by [`SinkCounter`].
#[map]
static SINK_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SinkCounter::COUNT, 0);

/// Does nothing: the cost of running an XDP program at all.
#[xdp]
pub fn floor_pass(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

/// Parses Ethernet, IP and UDP with the router's code (inlined: what the floor does not use
/// of the datagram, LLVM leaves out), writes the Ethernet addresses and redirects every UDP
/// datagram through a devmap: the least a redirecting router does. The
/// slot is the source port modulo [`FLOOR_SLOTS`], one array lookup like a hash table's.
#[xdp]
pub fn floor_redirect(ctx: XdpContext) -> u32 {
    let Ok(datagram) = parse(&ctx) else {
        return XDP_PASS;
    };
    let slot = u32::from(u16::from_be(datagram.src_port_be)) % FLOOR_SLOTS;
    let Some(addresses) = FLOOR_MACS.get(slot) else {
        return XDP_DROP;
    };
    if write_array(&ctx, 0, addresses).is_err() {
        return XDP_DROP;
    }
    FLOOR_PORTS
        .redirect(slot, u64::from(XDP_DROP))
        .unwrap_or(XDP_DROP)
}

/// What [`floor_redirect`] does, with the packet put inside an outer IPv4 header, UDP and
/// a GUE header first (fixed addresses, the source port from the inner one, the IPv4
/// checksum): the least an encapsulating router does.
#[xdp]
pub fn floor_encap(ctx: XdpContext) -> u32 {
    let Ok(datagram) = parse(&ctx) else {
        return XDP_PASS;
    };
    let slot = u32::from(u16::from_be(datagram.src_port_be)) % FLOOR_SLOTS;
    match encapsulate(&ctx, slot, datagram.src_port_be, datagram.family == 6) {
        Ok(()) => FLOOR_PORTS
            .redirect(slot, u64::from(XDP_DROP))
            .unwrap_or(XDP_DROP),
        Err(_) => XDP_DROP,
    }
}

/// The outer headers of [`floor_encap`].
#[inline(always)]
fn encapsulate(
    ctx: &XdpContext,
    slot: u32,
    src_port_be: u16,
    inner_v6: bool,
) -> Result<(), router_common::counters::Outcome> {
    use router_common::counters::Outcome;
    let (l3, _) = link_layer(ctx)?;
    let inner_len = packet_len(ctx) - l3;
    let outer = IPV4_HLEN + UDP_HLEN + GUE_HLEN;
    // SAFETY: the program's context; the helper checks the new start against the headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -((ETH_HLEN + outer - l3) as i32)) } != 0 {
        return Err(Outcome::RedirectFailed);
    }
    let addresses = FLOOR_MACS.get(slot).ok_or(Outcome::RedirectFailed)?;
    let mut eth = Aligned([0u8; ETH_HLEN]);
    eth.0[..12].copy_from_slice(addresses);
    eth.0[12..].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
    write_array(ctx, 0, &eth.0)?;
    let mut headers = Aligned([0u8; IPV4_HLEN + UDP_HLEN + GUE_HLEN]);
    let ip = &mut headers.0;
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((outer + inner_len) as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    ip[12..16].copy_from_slice(&[198, 18, 100, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 5, 2]);
    let mut header = [0u8; IPV4_HLEN];
    header.copy_from_slice(&ip[..IPV4_HLEN]);
    ip[10..12].copy_from_slice(&ipv4_checksum(&header).to_be_bytes());
    let udp = &mut ip[IPV4_HLEN..];
    udp[0..2].copy_from_slice(&src_port_be.to_ne_bytes());
    udp[2..4].copy_from_slice(&FLOOR_GUE_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&((UDP_HLEN + GUE_HLEN + inner_len) as u16).to_be_bytes());
    udp[UDP_HLEN + 1] = if inner_v6 { IPPROTO_IPV6 } else { IPPROTO_IPIP };
    write_array(ctx, ETH_HLEN, &headers.0)
}

/// [`floor_encap`]'s GUE port.
const FLOOR_GUE_PORT: u16 = 6080;

/// The benchmark's traffic generator: BPF_PROG_TEST_RUN runs it in live-frames mode on the
/// frames the benchmark builds, and each one leaves through [`GENERATOR_PORT`]'s interface
/// as a NIC would deliver it: no socket, no skb on the sending side.
#[xdp]
pub fn bench_generate(_ctx: XdpContext) -> u32 {
    GENERATOR_PORT.redirect(0, 0).unwrap_or(XDP_DROP)
}

/// Counts and drops the UDP datagrams that reach a backend's interface: every one, and those
/// whose marker octet names another backend than [`SINK_BACKEND`]. Counting here, not in a
/// socket, keeps the backend's own stack from bounding the rate measured.
#[xdp]
pub fn bench_sink(ctx: XdpContext) -> u32 {
    let mut datagram = Datagram::default();
    if parse_datagram(&ctx, &mut datagram).is_err() {
        return XDP_PASS;
    }
    bump(&SINK_COUNTS, SinkCounter::Delivered as u32);
    // Scalars before comparing: LLVM would otherwise test both Options at once by OR-ing a
    // map pointer, which the verifier rejects.
    let expected = SINK_BACKEND.get(0).map_or(u32::MAX, |&index| index);
    let marker = match ctx.load_byte(datagram.payload_offset + BENCH_MARKER_OFFSET) {
        Ok(marker) => u32::from(marker),
        Err(_) => u32::MAX - 1,
    };
    if marker != expected {
        bump(&SINK_COUNTS, SinkCounter::Misrouted as u32);
    }
    XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
