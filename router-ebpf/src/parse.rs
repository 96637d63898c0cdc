//! Ethernet (with up to one 802.1Q tag), IPv4 (options included), IPv6 and UDP.

use crate::headers::{
    ETH_HLEN, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, ICMP_HLEN, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_UDP, IPV4_HLEN, IPV6_HLEN, UDP_HLEN, VLAN_HLEN,
};
use aya_ebpf::{
    bindings::bpf_hdr_start_off::BPF_HDR_START_NET,
    helpers::generated::{bpf_skb_load_bytes, bpf_skb_load_bytes_relative, bpf_xdp_load_bytes},
    programs::{SkReuseportContext, XdpContext},
};
use router_common::{counters::Outcome, flow_hash::FlowAddr};

/// Packet data that the programs read: an XDP frame from its Ethernet header on, or the
/// datagram that an `SO_REUSEPORT` program sees from its UDP header on.
pub trait Packet {
    /// Copies `buf.len()` octets from `offset` through the program type's helper, for lengths
    /// that are not constant.
    fn load_into(&self, offset: usize, buf: &mut [u8]) -> Result<(), Outcome>;

    /// The `N` octets at `offset`.
    fn load_array<const N: usize>(&self, offset: usize) -> Result<[u8; N], Outcome>;

    /// The octet at `offset`.
    #[inline(always)]
    fn load_byte(&self, offset: usize) -> Result<u8, Outcome> {
        let mut octet = [0u8];
        self.load_into(offset, &mut octet)?;
        Ok(octet[0])
    }
}

impl Packet for XdpContext {
    #[inline(always)]
    fn load_into(&self, offset: usize, buf: &mut [u8]) -> Result<(), Outcome> {
        // SAFETY: the helper writes at most `buf.len()` octets into `buf`.
        let status = unsafe {
            bpf_xdp_load_bytes(
                self.ctx,
                offset as u32,
                buf.as_mut_ptr().cast(),
                buf.len() as u32,
            )
        };
        loaded(status)
    }

    /// By direct access: an XDP frame is all readable so.
    #[inline(always)]
    fn load_array<const N: usize>(&self, offset: usize) -> Result<[u8; N], Outcome> {
        let from = ptr_at::<N>(self, offset)? as usize;
        Ok(wide::copy_in(from))
    }

    /// By direct access too, as the second of two octets (see [`ptr_at`]), or the first at
    /// offset 0.
    #[inline(always)]
    fn load_byte(&self, offset: usize) -> Result<u8, Outcome> {
        if offset == 0 {
            return self.load_array::<2>(0).map(|pair| pair[0]);
        }
        // SAFETY: ptr_at checked both octets.
        Ok(unsafe { (*ptr_at::<2>(self, offset - 1)?)[1] })
    }
}

/// A datagram at socket lookup: only the skb's linear part is directly readable, and drivers
/// may leave the UDP payload in page fragments, so every read goes through the helper.
impl Packet for SkReuseportContext {
    #[inline(always)]
    fn load_into(&self, offset: usize, buf: &mut [u8]) -> Result<(), Outcome> {
        // SAFETY: the helper writes at most `buf.len()` octets into `buf`.
        let status = unsafe {
            bpf_skb_load_bytes(
                self.md.cast(),
                offset as u32,
                buf.as_mut_ptr().cast(),
                buf.len() as u32,
            )
        };
        loaded(status)
    }

    #[inline(always)]
    fn load_array<const N: usize>(&self, offset: usize) -> Result<[u8; N], Outcome> {
        let mut octets = [0u8; N];
        self.load_into(offset, &mut octets)?;
        Ok(octets)
    }
}

/// The `N` octets at `offset` in the datagram's network (IP) header, which the UDP-relative
/// offsets of [`Packet`] cannot reach.
#[inline(always)]
pub fn load_network<const N: usize>(
    ctx: &SkReuseportContext,
    offset: usize,
) -> Result<[u8; N], Outcome> {
    let mut octets = [0u8; N];
    // SAFETY: the helper writes at most N octets into `octets`.
    let status = unsafe {
        bpf_skb_load_bytes_relative(
            ctx.md.cast(),
            offset as u32,
            octets.as_mut_ptr().cast(),
            N as u32,
            BPF_HDR_START_NET,
        )
    };
    loaded(status).map(|()| octets)
}

/// The result of a load helper: 0 when all octets were copied.
#[inline(always)]
fn loaded(status: i64) -> Result<(), Outcome> {
    if status == 0 {
        Ok(())
    } else {
        Err(Outcome::NotListener)
    }
}

/// The frame's start and end. Volatile reads: otherwise LLVM hands subprograms these two
/// fields as 32-bit arguments and zero-extends them with shifts, which the verifier rejects
/// as arithmetic on packet pointers.
#[inline(always)]
fn bounds(ctx: &XdpContext) -> (usize, usize) {
    // SAFETY: `ctx.ctx` is the program's context, valid for the whole run.
    unsafe {
        (
            core::ptr::read_volatile(&(*ctx.ctx).data) as usize,
            core::ptr::read_volatile(&(*ctx.ctx).data_end) as usize,
        )
    }
}

/// A pointer to `N` octets at `offset` in the frame, if the frame holds all of them.
///
/// `N` must be at least 2: for one octet LLVM turns `p + 1 > end` into `p >= end`, which the
/// verifier does not accept as a bounds check. Single octets go through
/// [`Packet::load_byte`].
#[inline(always)]
pub fn ptr_at<const N: usize>(ctx: &XdpContext, offset: usize) -> Result<*mut [u8; N], Outcome> {
    const { assert!(N >= 2) };
    let (start, end) = bounds(ctx);
    if start + offset + N > end {
        return Err(Outcome::NotListener);
    }
    Ok((start + offset) as *mut [u8; N])
}

/// A stack buffer with the stack's alignment, so that whole words can be loaded from it and
/// stored into it (the verifier requires aligned stack access): what [`write_array`] writes
/// from the stack.
#[repr(C, align(8))]
pub struct Aligned<const N: usize>(pub [u8; N]);

/// Writes `from` (a map value, or an [`Aligned`] buffer on the stack) into the frame at
/// `offset`, in whole words.
#[inline(always)]
pub fn write_array<const N: usize>(
    ctx: &XdpContext,
    offset: usize,
    from: &[u8; N],
) -> Result<(), Outcome> {
    let to = ptr_at::<N>(ctx, offset)?;
    // SAFETY: ptr_at checked the `N` octets of packet data; `from` has `N` octets.
    unsafe { wide::copy_words::<true>(from.as_ptr() as usize, to.cast(), N) };
    Ok(())
}

/// The frame's length.
#[inline(always)]
pub fn packet_len(ctx: &XdpContext) -> usize {
    let (start, end) = bounds(ctx);
    end - start
}

#[inline(always)]
fn be16(octets: [u8; 2]) -> u16 {
    u16::from_be_bytes(octets)
}

/// A UDP datagram: its 4-tuple and where its payload is.
///
/// `repr(C)` with the addresses first: they start on 8-octet boundaries, so that the flow
/// hash reads them in whole words (the verifier refuses misaligned stack access, and LLVM
/// would otherwise read them octet by octet).
#[derive(Default)]
#[repr(C)]
pub struct Datagram {
    pub src: FlowAddr,
    pub dst: FlowAddr,
    /// Offset of the UDP payload in the packet.
    pub payload_offset: usize,
    /// What the UDP length field gives, if the IP and UDP lengths agree with the packet;
    /// `None` when they do not (checked only once the datagram is known to be for a listener).
    pub payload_len: Option<usize>,
    pub src_port_be: u16,
    pub dst_port_be: u16,
    pub family: u8,
    /// An ICMP or ICMPv6 error about a UDP datagram sent from this datagram's destination
    /// (a listener, if it is one): the 4-tuple is that datagram's reversed, as its peer's
    /// datagrams carry it; there is no payload.
    pub icmp_error: bool,
}

/// Parses up to the UDP header into `datagram`, or an ICMP error's quoted UDP header (see
/// [`Datagram::icmp_error`]); `Err` is why the packet is not ours to route.
///
/// A BPF subprogram of its own, so that the headers it copies do not take room in the frame
/// of the caller, which goes on to call the server ID decoder (BPF allows 512 octets of stack
/// along a call chain).
#[inline(never)]
pub fn parse_datagram(ctx: &XdpContext, datagram: &mut Datagram) -> Result<(), Outcome> {
    // Not `*datagram = parse(ctx)?`: LLVM then stores the low half of a packet pointer into
    // `datagram`, which the verifier refuses ("invalid size of register spill").
    let parsed = match parse(ctx) {
        Err(Outcome::NotListener) => parse_icmp_error(ctx),
        parsed => parsed,
    };
    match parsed {
        Ok(parsed) => {
            *datagram = parsed;
            Ok(())
        }
        Err(outcome) => Err(outcome),
    }
}

/// An ICMP error (destination unreachable, time exceeded, parameter problem; ICMPv6 also
/// packet too big) that quotes the IP and UDP headers of a datagram this host's address
/// sent: that datagram's 4-tuple reversed, as [`Datagram::icmp_error`]. Anything else is
/// [`Outcome::NotListener`].
#[inline(always)]
fn parse_icmp_error(ctx: &XdpContext) -> Result<Datagram, Outcome> {
    let (l3, ethertype) = link_layer(ctx)?;
    // Where the ICMP header is, and whether it is an error that quotes a packet.
    let (icmp, v6) = match ethertype {
        ETH_P_IPV4 => {
            let ip: [u8; IPV4_HLEN] = ctx.load_array(l3)?;
            let header_len = ((ip[0] & 0x0f) as usize) * 4;
            if ip[9] != IPPROTO_ICMP || header_len < IPV4_HLEN || be16([ip[6], ip[7]]) & 0x3fff != 0
            {
                return Err(Outcome::NotListener);
            }
            (l3 + header_len, false)
        }
        ETH_P_IPV6 => {
            let ip: [u8; IPV6_HLEN] = ctx.load_array(l3)?;
            if ip[6] != IPPROTO_ICMPV6 {
                return Err(Outcome::NotListener);
            }
            (l3 + IPV6_HLEN, true)
        }
        _ => return Err(Outcome::NotListener),
    };
    let kind: [u8; 2] = ctx.load_array(icmp)?;
    let error = if v6 {
        matches!(kind[0], 1..=4)
    } else {
        matches!(kind[0], 3 | 11 | 12)
    };
    if !error {
        return Err(Outcome::NotListener);
    }
    // The quoted packet, of the ICMP message's family.
    let quoted = icmp + ICMP_HLEN;
    let (family, src, dst, udp) = if v6 {
        let ip: [u8; IPV6_HLEN] = ctx.load_array(quoted)?;
        if ip[0] >> 4 != 6 || ip[6] != IPPROTO_UDP {
            return Err(Outcome::NotListener);
        }
        let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
        src.copy_from_slice(&ip[8..24]);
        dst.copy_from_slice(&ip[24..40]);
        (6, src, dst, quoted + IPV6_HLEN)
    } else {
        let ip: [u8; IPV4_HLEN] = ctx.load_array(quoted)?;
        let header_len = ((ip[0] & 0x0f) as usize) * 4;
        if ip[0] >> 4 != 4 || header_len < IPV4_HLEN || ip[9] != IPPROTO_UDP {
            return Err(Outcome::NotListener);
        }
        let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
        src[..4].copy_from_slice(&ip[12..16]);
        dst[..4].copy_from_slice(&ip[16..20]);
        (4, src, dst, quoted + header_len)
    };
    let ports: [u8; 4] = ctx.load_array(udp)?;
    Ok(Datagram {
        family,
        // Reversed: the quoted datagram went from the listener to its peer.
        src: dst,
        dst: src,
        src_port_be: u16::from_ne_bytes([ports[2], ports[3]]),
        dst_port_be: u16::from_ne_bytes([ports[0], ports[1]]),
        payload_offset: 0,
        payload_len: None,
        icmp_error: true,
    })
}

/// [`parse_datagram`] inlined into the caller, for programs whose stack can take it (the
/// benchmark's floor): what the caller does not use of the datagram, LLVM leaves out.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Datagram, Outcome> {
    let (l3, ethertype) = link_layer(ctx)?;
    let packet_len = packet_len(ctx);
    match ethertype {
        ETH_P_IPV4 => parse_ipv4(ctx, l3, packet_len),
        ETH_P_IPV6 => parse_ipv6(ctx, l3, packet_len),
        _ => Err(Outcome::NotListener),
    }
}

/// Where the network header starts (after the Ethernet header and up to one 802.1Q tag) and
/// its EtherType.
#[inline(always)]
pub fn link_layer(ctx: &XdpContext) -> Result<(usize, u16), Outcome> {
    let ethertype = be16(ctx.load_array(12)?);
    if ethertype == ETH_P_8021Q {
        Ok((ETH_HLEN + VLAN_HLEN, be16(ctx.load_array(16)?)))
    } else {
        Ok((ETH_HLEN, ethertype))
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, l3: usize, packet_len: usize) -> Result<Datagram, Outcome> {
    let ip: [u8; IPV4_HLEN] = ctx.load_array(l3)?;
    let header_len = ((ip[0] & 0x0f) as usize) * 4;
    if ip[0] >> 4 != 4 || header_len < IPV4_HLEN {
        return Err(Outcome::NotListener);
    }
    // More Fragments, or a fragment offset: only the first fragment has the UDP header.
    if be16([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(Outcome::Fragment);
    }
    if ip[9] != IPPROTO_UDP {
        return Err(Outcome::NotListener);
    }
    let total_len = be16([ip[2], ip[3]]) as usize;
    let ip_end = l3 + total_len;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&ip[12..16]);
    dst[..4].copy_from_slice(&ip[16..20]);
    parse_udp(
        ctx,
        4,
        src,
        dst,
        l3 + header_len,
        ip_end,
        total_len >= header_len + UDP_HLEN && ip_end <= packet_len,
    )
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, l3: usize, packet_len: usize) -> Result<Datagram, Outcome> {
    let ip: [u8; IPV6_HLEN] = ctx.load_array(l3)?;
    if ip[0] >> 4 != 6 {
        return Err(Outcome::NotListener);
    }
    match ip[6] {
        IPPROTO_UDP => {}
        // Fragment header.
        44 => return Err(Outcome::Fragment),
        // Hop-by-hop, routing, destination options, AH, mobility, HIP, shim6, experiments.
        0 | 43 | 60 | 51 | 135 | 139 | 140 | 253 | 254 => return Err(Outcome::Ipv6Extension),
        _ => return Err(Outcome::NotListener),
    }
    let payload_len = be16([ip[4], ip[5]]) as usize;
    let l4 = l3 + IPV6_HLEN;
    let ip_end = l4 + payload_len;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&ip[8..24]);
    dst.copy_from_slice(&ip[24..40]);
    parse_udp(
        ctx,
        6,
        src,
        dst,
        l4,
        ip_end,
        payload_len >= UDP_HLEN && ip_end <= packet_len,
    )
}

#[inline(always)]
fn parse_udp(
    ctx: &XdpContext,
    family: u8,
    src: FlowAddr,
    dst: FlowAddr,
    l4: usize,
    ip_end: usize,
    ip_lengths_ok: bool,
) -> Result<Datagram, Outcome> {
    let udp: [u8; UDP_HLEN] = ctx.load_array(l4)?;
    let udp_len = be16([udp[4], udp[5]]) as usize;
    let payload_len = (ip_lengths_ok && udp_len >= UDP_HLEN && l4 + udp_len <= ip_end)
        .then_some(udp_len - UDP_HLEN);
    Ok(Datagram {
        family,
        src,
        dst,
        // Ports stay in network byte order: that is how listeners and the hash take them.
        src_port_be: u16::from_ne_bytes([udp[0], udp[1]]),
        dst_port_be: u16::from_ne_bytes([udp[2], udp[3]]),
        payload_offset: l4 + UDP_HLEN,
        payload_len,
        icmp_error: false,
    })
}

/// Reads and writes of packet data (and reads of map values) in as few instructions as
/// their length allows.
///
/// Packet data has no alignment to rely on, and BPF promises no unaligned access, so LLVM
/// reads an unaligned `u32` octet by octet: four loads, three shifts, three ORs. The kernel
/// does allow unaligned access to packet data and map values wherever it is cheap (the
/// verifier then checks no alignment: x86-64, arm64), so these accesses are written as one
/// instruction each.
/// On an architecture that needs alignment, the verifier refuses the program at load time.
mod wide {
    use super::Aligned;

    /// The `N` octets at packet address `from`, which the caller bounds-checked.
    #[inline(always)]
    pub fn copy_in<const N: usize>(from: usize) -> [u8; N] {
        let mut words = Aligned([0u8; N]);
        // SAFETY: `words` holds the `N` octets, 8-aligned; the caller checked `from`'s.
        unsafe { copy_words::<false>(from, words.0.as_mut_ptr(), N) };
        words.0
    }

    /// Copies `len` octets from `from` to `to` in whole words: 8-octet words first, then at
    /// most one of each smaller size, so that into an 8-aligned buffer ([`Aligned`](super::Aligned)) every
    /// store is aligned. Into packet data (`INTO_PACKET`) the stores are single instructions
    /// at any alignment; into the program's own buffer they are plain writes, which LLVM can
    /// see through (it keeps the loaded words in registers).
    ///
    /// # Safety
    ///
    /// Both ranges are readable and writable as used, `to` 8-aligned unless `INTO_PACKET`.
    #[inline(always)]
    pub unsafe fn copy_words<const INTO_PACKET: bool>(from: usize, to: *mut u8, len: usize) {
        /// One word at `to + at`.
        #[inline(always)]
        unsafe fn put<const INTO_PACKET: bool, T>(
            to: *mut u8,
            at: usize,
            value: T,
            store: unsafe fn(usize, T),
        ) {
            // SAFETY: as the caller's.
            unsafe {
                if INTO_PACKET {
                    store(to as usize + at, value);
                } else {
                    to.add(at).cast::<T>().write(value);
                }
            }
        }
        let mut at = 0;
        // SAFETY: every access is within the `len` octets of both (the caller's).
        unsafe {
            while at + 8 <= len {
                put::<INTO_PACKET, _>(to, at, load_u64(from + at), store_u64);
                at += 8;
            }
            if at + 4 <= len {
                put::<INTO_PACKET, _>(to, at, load_u32(from + at), store_u32);
                at += 4;
            }
            if at + 2 <= len {
                put::<INTO_PACKET, _>(to, at, load_u16(from + at), store_u16);
                at += 2;
            }
            if at < len {
                *to.add(at) = *((from + at) as *const u8);
            }
        }
    }

    macro_rules! store {
        ($name:ident, $ty:ty, $size:literal) => {
            /// One store instruction at `to` (unaligned only into packet data).
            #[inline(always)]
            unsafe fn $name(to: usize, value: $ty) {
                #[cfg(target_arch = "bpf")]
                // SAFETY: the caller checked that the octets are writable (packet data, or
                // the program's stack at an aligned offset).
                unsafe {
                    core::arch::asm!(
                        concat!("*(", $size, " *)({0} + 0) = {1}"),
                        in(reg) to,
                        in(reg) value,
                        options(nostack, preserves_flags)
                    );
                }
                #[cfg(not(target_arch = "bpf"))]
                // SAFETY: as above; off BPF (the host's build of this library), a plain write.
                unsafe {
                    (to as *mut $ty).write_unaligned(value);
                }
            }
        };
    }
    store!(store_u64, u64, "u64");
    store!(store_u32, u32, "u32");
    store!(store_u16, u16, "u16");

    macro_rules! load {
        ($name:ident, $ty:ty, $size:literal) => {
            /// One load instruction at `from`, whatever its alignment.
            #[inline(always)]
            unsafe fn $name(from: usize) -> $ty {
                let value: $ty;
                #[cfg(target_arch = "bpf")]
                // SAFETY: the caller checked that the octets are packet data.
                unsafe {
                    core::arch::asm!(
                        concat!("{0} = *(", $size, " *)({1} + 0)"),
                        lateout(reg) value,
                        in(reg) from,
                        options(pure, readonly, nostack, preserves_flags)
                    );
                }
                #[cfg(not(target_arch = "bpf"))]
                // SAFETY: as above; off BPF (the host's build of this library), a plain read.
                unsafe {
                    value = (from as *const $ty).read_unaligned();
                }
                value
            }
        };
    }
    load!(load_u64, u64, "u64");
    load!(load_u32, u32, "u32");
    load!(load_u16, u16, "u16");
}
