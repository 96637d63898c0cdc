//! Routing by what the server handed out: an Initial's token, whose routable block names the
//! server that issued it (router-common's `quic_lb::token` format), and the token flows that
//! let the rest of that connection attempt (0-RTT packets carry no token) follow it.
//!
//! Precedence for a packet: its token, then its attempt's token flow, then its DCID. A token
//! came from the server over an encrypted channel; a client's random DCID names a server
//! only by chance (about one time in 2^(8 x server ID length) per server ID). A token that
//! names a draining backend is as if absent: a draining backend takes no new connection.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use router_common::{
    counters::Outcome,
    maps::{Control, NO_BACKEND, TOKEN_FLOW_LIFETIME_NS, TokenFlow, TokenFlowKey, backend_slot},
    quic_lb::MAX_CID_LEN,
};
use router_ebpf::parse::{Datagram, Packet};

use crate::{
    cid::{copy_prefix, read_dcid, route_by_cid, route_by_token},
    maps::{BACKENDS, TOKEN_FLOW_EPOCH, TOKEN_FLOWS},
    quic::Header,
};

/// The backend of the server that the packet's token, its attempt's token flow or its DCID
/// names, and the outcome that says which; or, as [`route_by_cid`] says, why none does.
/// `SERVER_ID_KEY` holds the server ID that was decoded last.
#[inline(always)]
pub fn route_by_server_id(
    ctx: &impl Packet,
    epoch: u32,
    header: &Header,
    datagram: &Datagram,
) -> Result<(u32, Outcome), Outcome> {
    if header.token_len > 0
        && let Ok(backend) = route_by_token(ctx, epoch, header.token_offset, header.token_len)
        && takes_new_connections(epoch, backend)
    {
        remember_flow(
            ctx,
            datagram,
            header.dcid_offset,
            header.dcid_len,
            u64::from(epoch) << 32 | u64::from(backend),
        );
        return Ok((backend, Outcome::RoutedByToken));
    }
    if header.initial_or_0rtt {
        let backend = follow_flow(ctx, datagram, header.dcid_offset, header.dcid_len, epoch);
        if backend != NO_BACKEND {
            return Ok((backend, Outcome::RoutedByTokenFlow));
        }
    }
    route_by_cid(ctx, epoch, header).map(|backend| (backend, Outcome::RoutedByServerId))
}

/// Whether `backend` takes new connections (it is not draining). A token starts a new
/// connection; only its own connections' packets, which name it by CID, still go to a
/// draining backend.
#[inline(always)]
fn takes_new_connections(epoch: u32, backend: u32) -> bool {
    let generation = Control { epoch }.generation();
    BACKENDS
        .get(backend_slot(generation, backend))
        .is_some_and(|entry| entry.draining == 0)
}

/// The flow key of the packet's attempt: client address and port, DCID (at most 20 octets,
/// as long headers of QUIC v1 and v2 have).
#[inline(always)]
fn flow_key(
    ctx: &impl Packet,
    datagram: &Datagram,
    dcid_offset: usize,
    dcid_len: usize,
) -> TokenFlowKey {
    let dcid_len = if dcid_len > MAX_CID_LEN {
        MAX_CID_LEN
    } else {
        dcid_len
    };
    let mut key = TokenFlowKey {
        addr: datagram.src,
        port_be: datagram.src_port_be,
        family: datagram.family,
        dcid_len: dcid_len as u8,
        dcid: [0; MAX_CID_LEN],
    };
    copy_prefix(
        &mut key.dcid,
        &read_dcid(ctx, dcid_offset, dcid_len),
        dcid_len,
    );
    key
}

/// Remembers where the attempt's Initial went. `epoch_and_backend` is `epoch << 32 |
/// backend`: a sixth argument is not allowed. A BPF subprogram, so that the key's octets take
/// no room in the caller's frame (the server ID decoder's call chain needs it).
#[inline(never)]
fn remember_flow(
    ctx: &impl Packet,
    datagram: &Datagram,
    dcid_offset: usize,
    dcid_len: usize,
    epoch_and_backend: u64,
) -> u32 {
    let key = flow_key(ctx, datagram, dcid_offset, dcid_len);
    let flow = TokenFlow {
        backend: epoch_and_backend as u32,
        epoch: (epoch_and_backend >> 32) as u32,
        // SAFETY: a helper without arguments.
        expires_ns: unsafe { bpf_ktime_get_ns() } + TOKEN_FLOW_LIFETIME_NS,
    };
    // A failed insert costs the attempt's 0-RTT packets their token route, nothing more.
    if TOKEN_FLOWS.insert(key, flow, 0).is_ok()
        && let Some(latest) = TOKEN_FLOW_EPOCH.get_ptr_mut(0)
    {
        // SAFETY: a pointer to the map's value, valid for this program run; a 32-bit store,
        // made only when it changes the value (flows are made at Initial rates, read by
        // every token-less Initial).
        unsafe {
            if *latest != flow.epoch {
                *latest = flow.epoch;
            }
        }
    }
    0
}

/// The backend the attempt's Initial went to, if it was routed by its token under this
/// epoch and the flow has not expired; else NO_BACKEND. A BPF subprogram, as
/// [`remember_flow`] is.
#[inline(never)]
fn follow_flow(
    ctx: &impl Packet,
    datagram: &Datagram,
    dcid_offset: usize,
    dcid_len: usize,
    epoch: u32,
) -> u32 {
    if TOKEN_FLOW_EPOCH
        .get(0)
        .is_none_or(|&latest| latest != epoch)
    {
        return NO_BACKEND;
    }
    let key = flow_key(ctx, datagram, dcid_offset, dcid_len);
    // SAFETY: a pointer to the map's value, valid for this program run.
    let Some(flow) = TOKEN_FLOWS.get_ptr(key).map(|flow| unsafe { *flow }) else {
        return NO_BACKEND;
    };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if flow.epoch == epoch && now < flow.expires_ns {
        flow.backend
    } else {
        NO_BACKEND
    }
}
