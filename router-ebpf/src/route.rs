//! Routing: by server ID when the token (Initials) or the DCID names a known server, else by
//! the fallback hash of the 4-tuple (draft-21 §4.2); delivery by rewriting the Ethernet addresses and redirecting
//! through the devmap, or, for a worker on this host, by passing the packet to the stack.
//! IP, UDP and QUIC bytes are never changed.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_REDIRECT},
    programs::XdpContext,
};
use router_common::{
    counters::Outcome,
    flow_hash::flow_hash,
    maps::{
        BackendEntry, Control, DELIVERY_L2, LISTENER_HASH_INITIALS, LOCAL_WORKER_IFINDEX,
        ListenerKey, NO_BACKEND, PortMatch, backend_slot, fallback_slot, listener_port_slot,
    },
};
use router_ebpf::parse::{Datagram, Packet as _, packet_len, parse_datagram, write_array};

use crate::{
    encap::{Handoff, encapsulate_and_redirect},
    maps::{
        BACKENDS, CONTROL, ENCAP_CONFIG, FALLBACK, INGRESS, LISTENER_PORTS, LISTENERS, TX_PORTS,
    },
    quic::parse_header,
    stats,
    token::route_by_server_id,
};

/// The XDP action for a packet that leaves early, unrouted: what is not ours to route
/// (not for a listener, or headers the router does not look past) goes to the stack
/// untouched; what is for a listener but cannot be routed is dropped.
#[inline(always)]
pub const fn unrouted_action(outcome: Outcome) -> u32 {
    match outcome {
        Outcome::NotListener | Outcome::Fragment | Outcome::Ipv6Extension | Outcome::OtherHost => {
            XDP_PASS
        }
        _ => XDP_DROP,
    }
}

/// Counts, traces and logs an early exit; returns its action.
#[inline(always)]
pub fn finish_unrouted(ctx: &XdpContext, outcome: Outcome) -> u32 {
    stats::count(outcome);
    stats::trace(outcome, NO_BACKEND, false);
    stats::log(ctx, outcome, NO_BACKEND);
    unrouted_action(outcome)
}

#[inline(always)]
pub fn try_route(ctx: &XdpContext) -> Result<u32, Outcome> {
    // SAFETY: the program's context, valid for this run.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    // The frame's destination is read only where an interface is guarded.
    if let Some(ingress) = INGRESS.get(0).filter(|ingress| ingress.guards(ifindex))
        && !ingress.takes(&ctx.load_array(0)?)
    {
        return Err(Outcome::OtherHost);
    }
    let epoch = CONTROL.get(0).map_or(0, |control| control.epoch);
    let generation = Control { epoch }.generation();
    let mut datagram = Datagram::default();
    parse_datagram(ctx, &mut datagram)?;
    // Traffic for a port's one listener of its family, and most traffic that is not for a
    // listener, is told by one array lookup by port.
    let port = u32::from(u16::from_be(datagram.dst_port_be));
    let ports = LISTENER_PORTS
        .get(listener_port_slot(generation, port))
        .ok_or(Outcome::NotListener)?;
    let listener_flags = match ports.listener(&datagram.dst, datagram.family == 6) {
        PortMatch::Listener(flags) => flags,
        PortMatch::Several => listener_of_several(&datagram, generation)?,
        PortMatch::None => return Err(Outcome::NotListener),
    };
    // An ICMP error about a datagram a listener sent goes where the fallback hash sends its
    // peer's datagrams: the server of a connection that started so (docs/data-path.md).
    if datagram.icmp_error {
        return match fallback(generation, &datagram) {
            NO_BACKEND => Err(Outcome::NoBackend),
            backend => deliver(
                ctx,
                &datagram,
                generation,
                backend,
                Outcome::IcmpToBackend,
                false,
            ),
        };
    }
    let payload_len = datagram.payload_len.ok_or(Outcome::MalformedQuic)?;
    let header = parse_header(ctx, datagram.payload_offset, payload_len)?;

    // An Initial or 0-RTT whose DCID names no server is a new connection: that is what the
    // fallback is for, and it is counted apart from the anomalies.
    let unrouted = |outcome| {
        if header.initial_or_0rtt {
            Outcome::InitialHashed
        } else {
            outcome
        }
    };
    let hash_initials = header.initial_or_0rtt && listener_flags & LISTENER_HASH_INITIALS != 0;
    let route = if hash_initials {
        Err(Outcome::InitialHashed)
    } else {
        route_by_server_id(ctx, epoch, &header, &datagram)
    };
    let (outcome, backend, decoded) = match route {
        // A token flow decodes nothing: `explain` shows no server ID for it.
        Ok((backend, outcome)) => (
            outcome,
            Some(backend),
            outcome != Outcome::RoutedByTokenFlow,
        ),
        Err(Outcome::UnknownServerId) => (unrouted(Outcome::UnknownServerId), None, true),
        Err(outcome) => (unrouted(outcome), None, false),
    };
    let backend = match backend {
        Some(backend) => backend,
        None => match fallback(generation, &datagram) {
            NO_BACKEND => return Err(Outcome::NoBackend),
            backend => backend,
        },
    };
    deliver(ctx, &datagram, generation, backend, outcome, decoded)
}

/// The flags of the listener for the datagram's destination, on a port with several
/// listeners of its family.
#[inline(always)]
fn listener_of_several(datagram: &Datagram, generation: u32) -> Result<u8, Outcome> {
    let listener = ListenerKey {
        addr: datagram.dst,
        port_be: datagram.dst_port_be,
        family: datagram.family,
        generation: generation as u8,
    };
    // SAFETY: a pointer to the map's value, valid for this program run.
    match LISTENERS.get_ptr(listener) {
        Some(flags) => Ok(unsafe { *flags }),
        None => Err(Outcome::NotListener),
    }
}

/// The backend that the fallback table gives the datagram's 4-tuple, or NO_BACKEND.
///
/// A BPF subprogram (not inlined): the hash's registers would otherwise be spilled into the
/// frame of the caller, which has to stay small for the server ID decoder's call chain.
#[inline(never)]
fn fallback(generation: u32, datagram: &Datagram) -> u32 {
    fallback_backend(generation, datagram)
}

/// The fallback table's backend for a datagram's 4-tuple, or NO_BACKEND. The socket
/// selection for local workers takes the same, so that both agree.
#[inline(always)]
pub fn fallback_backend(generation: u32, datagram: &Datagram) -> u32 {
    let hash = flow_hash(
        &datagram.src,
        &datagram.dst,
        datagram.src_port_be,
        datagram.dst_port_be,
    );
    FALLBACK
        .get(fallback_slot(generation, hash))
        .copied()
        .unwrap_or(NO_BACKEND)
}

#[inline(always)]
fn deliver(
    ctx: &XdpContext,
    datagram: &Datagram,
    generation: u32,
    backend: u32,
    outcome: Outcome,
    decoded: bool,
) -> Result<u32, Outcome> {
    // Indices come from the maps, below the largest limit: the slot cannot wrap around.
    let entry = BACKENDS
        .get(backend_slot(generation, backend))
        .ok_or(Outcome::RedirectFailed)?;
    if entry.ifindex == 0 {
        return Err(Outcome::RedirectFailed);
    }
    // A worker on this host: the stack delivers, and the SO_REUSEPORT program picks the
    // worker's socket by the same DCID.
    let (action, outcome) = if entry.ifindex == LOCAL_WORKER_IFINDEX {
        (XDP_PASS, outcome)
    } else if entry.delivery == DELIVERY_L2 {
        (redirect(ctx, entry)?, outcome)
    } else {
        match wrap_for_backend(ctx, entry, datagram, generation) {
            Handoff::Redirected => (XDP_REDIRECT, outcome),
            Handoff::Unresolved => (XDP_PASS, Outcome::NextHopUnresolved),
            Handoff::UnresolvedTagged => (XDP_DROP, Outcome::NextHopUnresolved),
            Handoff::TooBigAnswered => (XDP_REDIRECT, Outcome::TooBig),
            Handoff::TooBigDropped => (XDP_DROP, Outcome::TooBig),
            Handoff::Failed => return Err(Outcome::RedirectFailed),
        }
    };
    stats::count(outcome);
    // What did not leave for the backend is not counted as delivered to it.
    if action != XDP_DROP && outcome != Outcome::TooBig {
        stats::count_backend(backend, packet_len(ctx) as u64);
    }
    stats::trace(outcome, backend, decoded);
    stats::log(ctx, outcome, backend);
    Ok(action)
}

/// Wraps the packet for a backend behind a tunnel (`encap`), with the flow's hash.
#[inline(always)]
fn wrap_for_backend(
    ctx: &XdpContext,
    entry: &BackendEntry,
    datagram: &Datagram,
    generation: u32,
) -> Handoff {
    let Some(config) = ENCAP_CONFIG.get(generation) else {
        return Handoff::Failed;
    };
    let hash = flow_hash(
        &datagram.src,
        &datagram.dst,
        datagram.src_port_be,
        datagram.dst_port_be,
    );
    encapsulate_and_redirect(ctx, entry, config, hash)
}

/// Writes the next hop's and the egress interface's MACs and redirects to the interface.
#[inline(always)]
fn redirect(ctx: &XdpContext, entry: &BackendEntry) -> Result<u32, Outcome> {
    write_array(ctx, 0, entry.ethernet_addresses())?;

    TX_PORTS
        .redirect(entry.ifindex, u64::from(XDP_DROP))
        .map_err(|_| Outcome::RedirectFailed)
}
