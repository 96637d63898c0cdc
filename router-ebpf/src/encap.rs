//! Delivery across L3 (docs/data-path.md): the client's IP packet, unchanged, inside
//! an outer IPv4 or IPv6 header (IP-in-IP), or an outer header, UDP and a GUE header, to the
//! backend's tunnel address. The outer source address (and GUE's source port) vary with the
//! flow's hash; DSCP and ECN are copied from the inner header; the outer IPv4 header is
//! checksummed, GUE's UDP checksum is zero. The next hop is configured, or the kernel's
//! routes and neighbours give it; a packet that would not fit the egress MTU once wrapped
//! is answered (`too_big`).

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_SUCCESS,
        bpf_check_mtu_ret::BPF_MTU_CHK_RET_SUCCESS, bpf_fib_lookup as FibLookup,
    },
    helpers::generated::{
        bpf_check_mtu, bpf_fib_lookup, bpf_ktime_get_ns, bpf_redirect, bpf_xdp_adjust_head,
        bpf_xdp_adjust_tail,
    },
    programs::XdpContext,
};
use router_common::{
    counters::Outcome,
    maps::{BackendEntry, DELIVERY_GUE, EncapConfig, ROUTED_IFINDEX, gue_source_port},
};
use router_ebpf::{
    headers::{
        ETH_HLEN, ETH_P_IPV4, ETH_P_IPV6, GUE_HLEN, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_UDP,
        IPV4_HLEN, IPV6_HLEN, UDP_HLEN, ipv4_checksum,
    },
    parse::{Aligned, Packet, link_layer, packet_len, write_array},
};

use crate::{
    maps::{ICMP_BUDGET, TX_PORTS},
    too_big,
};

/// UDP and the GUE header.
const GUE_LEN: usize = UDP_HLEN + GUE_HLEN;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// What became of a packet for a backend behind a tunnel: one scalar, for a subprogram.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// Wrapped and redirected to the next hop.
    Redirected,
    /// Too big once wrapped: turned into an ICMP answer to the client, redirected back.
    TooBigAnswered,
    /// Too big once wrapped, and not to be answered: to drop.
    TooBigDropped,
    /// Wrapped, but the kernel gave no next hop: to pass to the stack.
    Unresolved,
    /// The kernel gave no next hop for a frame that came in with an 802.1Q tag: to drop
    /// (wrapped, it would reach the stack untagged, on the wrong interface).
    UnresolvedTagged,
    /// Not wrapped or not sent (inconsistent lengths, no headroom, no config, an interface
    /// gone): to drop.
    Failed,
}

/// The inner packet and the outer headers it gets.
struct Wrapping {
    /// The offset of the inner IP header.
    l3: usize,
    inner_v6: bool,
    /// The inner packet's DSCP and ECN.
    tos: u8,
    /// The inner IP packet's length.
    inner_len: usize,
    gue: bool,
    outer_v6: bool,
    /// The flow's hash.
    hash: u32,
    /// The outer source address (IPv4 in the first four octets).
    source: [u8; 16],
    /// GUE's destination port, network byte order.
    gue_port_be: u16,
}

impl Wrapping {
    #[inline(always)]
    fn new(
        ctx: &XdpContext,
        entry: &BackendEntry,
        config: &EncapConfig,
        hash: u32,
    ) -> Result<Self, Outcome> {
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
        // What is wrapped is the IP packet as its header gives it, whole, in 16 bits once
        // wrapped: an ICMP error's datagram has not been checked against the frame.
        let frame_len = packet_len(ctx);
        if l3 + inner_len > frame_len || inner_len + IPV6_HLEN + GUE_LEN > 0xffff {
            return Err(Outcome::RedirectFailed);
        }
        // Octets after it (Ethernet padding, or worse) do not go into the tunnel.
        if l3 + inner_len < frame_len {
            let trim = (l3 + inner_len) as i32 - frame_len as i32;
            // SAFETY: the program's context; the helper checks the new length.
            if unsafe { bpf_xdp_adjust_tail(ctx.ctx, trim) } != 0 {
                return Err(Outcome::RedirectFailed);
            }
        }
        let outer_v6 = entry.tunnel_family == 6;
        let source = config.outer_source(outer_v6, hash);
        Ok(Self {
            l3,
            inner_v6,
            tos,
            inner_len,
            gue: entry.delivery == DELIVERY_GUE,
            outer_v6,
            hash,
            source,
            gue_port_be: config.gue_port_be,
        })
    }

    /// The outer IP header's length.
    #[inline(always)]
    fn outer_ip_len(&self) -> usize {
        if self.outer_v6 { IPV6_HLEN } else { IPV4_HLEN }
    }

    /// The octets after the outer IP header before the inner packet: UDP and GUE, or none.
    #[inline(always)]
    fn tunnel_header_len(&self) -> usize {
        if self.gue { GUE_LEN } else { 0 }
    }

    /// The octets the outer headers add.
    #[inline(always)]
    fn overhead(&self) -> usize {
        self.outer_ip_len() + self.tunnel_header_len()
    }
}

/// Wraps the packet for `entry` and hands it to the next hop: the configured one
/// (`entry`'s interface and MACs) or, for [`ROUTED_IFINDEX`], the one the kernel's routes and
/// neighbours give the outer destination. A packet that would exceed the egress MTU once
/// wrapped is answered instead ([`too_big`]). A subprogram: the lookup and the outer
/// headers are built in a frame of their own.
#[inline(never)]
pub fn encapsulate_and_redirect(
    ctx: &XdpContext,
    entry: &BackendEntry,
    config: &EncapConfig,
    hash: u32,
) -> Handoff {
    let Ok(wrapping) = Wrapping::new(ctx, entry, config, hash) else {
        return Handoff::Failed;
    };
    let outer_len = wrapping.inner_len + wrapping.overhead();
    let mut hop = NextHop {
        macs: *entry.ethernet_addresses(),
        ifindex: entry.ifindex,
        mtu: 0,
    };
    let resolved = if entry.ifindex == ROUTED_IFINDEX {
        match next_hop(ctx, entry, &wrapping, outer_len, &mut hop) {
            Route::Found => true,
            Route::TooBig => return answer_too_big(ctx, &wrapping, hop.mtu),
            Route::Unresolved if wrapping.l3 != ETH_HLEN => return Handoff::UnresolvedTagged,
            Route::Unresolved => {
                // For the stack: the frame's own addresses (this host's as the destination),
                // or it would not take the packet in to forward it.
                if let Ok(macs) = ctx.load_array(0) {
                    hop.macs = macs;
                }
                false
            }
        }
    } else {
        // Given a length (L3), the helper compares it with the interface's MTU and gives
        // the MTU back; an error (the interface gone) writes nothing.
        hop.mtu = outer_len as u32;
        // SAFETY: the program's context and a u32 on the stack.
        let fits = unsafe { bpf_check_mtu(ctx.ctx.cast(), hop.ifindex, &mut hop.mtu, 0, 0) };
        if fits < 0 {
            return Handoff::Failed;
        }
        if fits != BPF_MTU_CHK_RET_SUCCESS as i64 {
            return answer_too_big(ctx, &wrapping, hop.mtu);
        }
        true
    };
    if encapsulate(ctx, &wrapping, entry, &hop.macs).is_err() {
        return Handoff::Failed;
    }
    if !resolved {
        return Handoff::Unresolved;
    }
    if entry.ifindex == ROUTED_IFINDEX {
        // SAFETY: a helper that only records the target (with no flags: XDP_REDIRECT).
        unsafe { bpf_redirect(hop.ifindex, 0) };
        return Handoff::Redirected;
    }
    match TX_PORTS.redirect(hop.ifindex, 0) {
        Ok(_) => Handoff::Redirected,
        Err(_) => Handoff::Failed,
    }
}

/// Where the wrapped packet goes: the next hop's and the egress interface's MACs, the
/// interface, and the way's MTU when it is too small.
struct NextHop {
    macs: [u8; 12],
    ifindex: u32,
    mtu: u32,
}

/// What the kernel's routes said.
#[repr(u32)]
enum Route {
    /// `NextHop` is filled in.
    Found,
    /// The packet exceeds the route's MTU, in `NextHop::mtu`.
    TooBig,
    /// No route, no neighbour entry or forwarding off.
    Unresolved,
}

/// The next hop the kernel's FIB gives the outer destination for a wrapped packet of
/// `outer_len` octets, as for a packet that came in where this one did. A subprogram: the
/// lookup's parameters take a frame of their own.
#[inline(never)]
fn next_hop(
    ctx: &XdpContext,
    entry: &BackendEntry,
    wrapping: &Wrapping,
    outer_len: usize,
    hop: &mut NextHop,
) -> Route {
    // SAFETY: plain old data; all zeroes is a valid value of each union.
    let mut params: FibLookup = unsafe { core::mem::zeroed() };
    // Union fields are written whole: the one the family uses.
    if wrapping.outer_v6 {
        params.family = AF_INET6;
        params.__bindgen_anon_3.ipv6_src = words(&wrapping.source);
        params.__bindgen_anon_4.ipv6_dst = words(&entry.tunnel_address);
    } else {
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = words(&wrapping.source)[0];
        params.__bindgen_anon_4.ipv4_dst = words(&entry.tunnel_address)[0];
    }
    // Within 16 bits: `Wrapping::new` checked.
    params.__bindgen_anon_1.tot_len = outer_len as u16;
    // SAFETY: the context as the helper's first argument (so `ingress_ifindex`).
    params.ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    // SAFETY: the program's context and the parameters on the stack, with their size.
    let found = unsafe {
        bpf_fib_lookup(
            ctx.ctx.cast(),
            &mut params,
            core::mem::size_of::<FibLookup>() as i32,
            0,
        )
    };
    if found == BPF_FIB_LKUP_RET_FRAG_NEEDED as i64 {
        // SAFETY: the helper wrote the union's MTU on this result.
        hop.mtu = u32::from(unsafe { params.__bindgen_anon_1.mtu_result });
        return Route::TooBig;
    }
    if found != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        return Route::Unresolved;
    }
    hop.macs[..6].copy_from_slice(&params.dmac);
    hop.macs[6..].copy_from_slice(&params.smac);
    hop.ifindex = params.ifindex;
    Route::Found
}

/// Four network-order words of an address, as the FIB lookup takes them.
#[inline(always)]
fn words(address: &[u8; 16]) -> [u32; 4] {
    let mut words = [0u32; 4];
    for (i, word) in words.iter_mut().enumerate() {
        *word = u32::from_ne_bytes([
            address[4 * i],
            address[4 * i + 1],
            address[4 * i + 2],
            address[4 * i + 3],
        ]);
    }
    words
}

/// Answers a packet that would exceed `mtu` once wrapped, with the MTU left inside the
/// tunnel, while this CPU's budget of answers lasts.
#[inline(always)]
fn answer_too_big(ctx: &XdpContext, wrapping: &Wrapping, mtu: u32) -> Handoff {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: this CPU's entry; XDP runs with bottom halves off, so nothing else on this
    // CPU writes it meanwhile.
    let budget = ICMP_BUDGET
        .get_ptr_mut(0)
        .map(|budget| unsafe { &mut *budget });
    if !budget.is_some_and(|budget| budget.take(now)) {
        return Handoff::TooBigDropped;
    }
    let inner_mtu = mtu.saturating_sub(wrapping.overhead() as u32);
    if too_big::answer(ctx, wrapping.l3, wrapping.inner_v6, inner_mtu).is_err() {
        return Handoff::TooBigDropped;
    }
    // Back out the interface it came in on: redirected, as everything the router sends (a
    // veth peer takes redirected frames with GRO alone; XDP_TX needs a program there).
    // SAFETY: the context's field, and a helper that only records the target.
    unsafe { bpf_redirect((*ctx.ctx).ingress_ifindex, 0) };
    Handoff::TooBigAnswered
}

/// Puts the frame's IP packet inside the outer headers `wrapping` describes, behind a new
/// Ethernet header with `macs` (destination, source).
#[inline(never)]
fn encapsulate(
    ctx: &XdpContext,
    wrapping: &Wrapping,
    entry: &BackendEntry,
    macs: &[u8; 12],
) -> Result<(), Outcome> {
    let protocol = match (wrapping.gue, wrapping.inner_v6) {
        (true, _) => IPPROTO_UDP,
        (false, true) => IPPROTO_IPV6,
        (false, false) => IPPROTO_IPIP,
    };
    let ip_len = wrapping.outer_ip_len();
    let extra = wrapping.tunnel_header_len();
    let grow = ETH_HLEN + ip_len + extra - wrapping.l3;
    // SAFETY: the program's context; the helper checks the new start against the headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(grow as i32)) } != 0 {
        return Err(Outcome::RedirectFailed);
    }
    let mut eth_header = Aligned([0u8; ETH_HLEN]);
    let eth = &mut eth_header.0;
    eth[..12].copy_from_slice(macs);
    let outer_ethertype = if wrapping.outer_v6 {
        ETH_P_IPV6
    } else {
        ETH_P_IPV4
    };
    eth[12..].copy_from_slice(&outer_ethertype.to_be_bytes());
    write_array(ctx, 0, eth)?;
    let payload_len = extra + wrapping.inner_len;
    let (tos, hash) = (wrapping.tos, wrapping.hash);
    if wrapping.outer_v6 {
        let mut header = Aligned([0u8; IPV6_HLEN]);
        let ip = &mut header.0;
        ip[0] = 0x60 | tos >> 4;
        // Traffic class's low half, then a flow label from the hash.
        ip[1] = (tos & 0x0f) << 4 | (hash >> 16) as u8 & 0x0f;
        ip[2..4].copy_from_slice(&(hash as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
        ip[6] = protocol;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&wrapping.source);
        ip[24..40].copy_from_slice(&entry.tunnel_address);
        write_array(ctx, ETH_HLEN, ip)?;
    } else {
        let mut header = Aligned([0u8; IPV4_HLEN]);
        let ip = &mut header.0;
        ip[0] = 0x45;
        ip[1] = tos;
        ip[2..4].copy_from_slice(&((IPV4_HLEN + payload_len) as u16).to_be_bytes());
        // Don't fragment: a packet too big for the path is answered, not cut.
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = protocol;
        ip[12..16].copy_from_slice(&wrapping.source[..4]);
        ip[16..20].copy_from_slice(&entry.tunnel_address[..4]);
        let checksum = ipv4_checksum(ip);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        write_array(ctx, ETH_HLEN, ip)?;
    }
    if wrapping.gue {
        let mut header = Aligned([0u8; GUE_LEN]);
        let udp = &mut header.0;
        udp[0..2].copy_from_slice(&gue_source_port(hash).to_be_bytes());
        udp[2..4].copy_from_slice(&wrapping.gue_port_be.to_ne_bytes());
        udp[4..6].copy_from_slice(&(GUE_LEN as u16 + wrapping.inner_len as u16).to_be_bytes());
        // GUE version 0, no options, the inner packet's protocol.
        udp[9] = if wrapping.inner_v6 {
            IPPROTO_IPV6
        } else {
            IPPROTO_IPIP
        };
        write_array(ctx, ETH_HLEN + ip_len, udp)?;
    }
    Ok(())
}
