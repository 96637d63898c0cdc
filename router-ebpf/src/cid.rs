//! Server IDs from destination connection IDs, decoded with router-common's codec (the
//! same `decode_server_id` that user space runs) on the table-based AES.

use router_common::{
    maps::{CID_CONFIG_SLOTS, CidConfigEntry, Control, NO_BACKEND, Outcome, ServerIdKey},
    quic_lb::{
        MAX_CID_LEN, MAX_PLAINTEXT_LEN, MAX_SERVER_ID_LEN, config_rotation_of, decode_server_id,
    },
};

use crate::{
    maps::{CID_CACHE, CID_CACHE_KEY, CID_CONFIGS, SERVER_IDS},
    parse::Packet,
    quic::Header,
    stats,
};

/// The server a connection ID names, or why it names none.
pub enum CidRoute {
    /// The backend index that the server ID maps to.
    Server(u32),
    /// An active codepoint, but no backend has the server ID.
    UnknownServerId,
    /// No usable server ID: `UnroutableCodepoint` or `UnroutableLength`.
    Unroutable(Outcome),
}

/// Copies up to 20 octets of the DCID at `offset` (`len` octets long) from the packet, with
/// zeros where it ends.
#[inline(always)]
fn read_dcid(ctx: &impl Packet, offset: usize, len: usize) -> [u8; MAX_CID_LEN] {
    // The usual case: the packet holds 20 octets from the DCID on (QUIC packets carry at
    // least a 16-octet AEAD tag after it), so one bounds check covers a fixed-size copy.
    if let Ok(dcid) = ctx.load_array::<MAX_CID_LEN>(offset) {
        return dcid;
    }
    // Otherwise the DCID runs to the end of the packet, whose lengths the parser checked.
    let mut dcid = [0u8; MAX_CID_LEN];
    let len = if len > MAX_CID_LEN { MAX_CID_LEN } else { len };
    if len > 0 {
        let _ = ctx.load_into(offset, &mut dcid[..len]);
    }
    dcid
}

/// Finds the server that the packet's DCID names. On `Server` and `UnknownServerId`, `key`
/// holds the decoded server ID.
#[inline(always)]
pub fn route_by_cid(
    ctx: &impl Packet,
    epoch: u32,
    header: &Header,
    key: &mut ServerIdKey,
) -> CidRoute {
    // Empty, or longer than QUIC v1 allows (an unknown version): nothing to decode.
    if header.dcid_len == 0 || !header.short && header.dcid_len > MAX_CID_LEN {
        return CidRoute::Unroutable(Outcome::UnroutableLength);
    }
    let epoch_and_short = u64::from(epoch) << 1 | header.short as u64;
    match server_id_route(
        ctx,
        header.dcid_offset,
        header.dcid_len,
        epoch_and_short,
        key,
    ) {
        UNKNOWN_SERVER_ID => CidRoute::UnknownServerId,
        UNROUTABLE_CODEPOINT => CidRoute::Unroutable(Outcome::UnroutableCodepoint),
        UNROUTABLE_LENGTH => CidRoute::Unroutable(Outcome::UnroutableLength),
        backend => CidRoute::Server(backend),
    }
}

/// 1: remember the backends of encrypted CIDs (the default); 0: decode every packet (the
/// loader sets it, for benchmarks of the decoding).
#[unsafe(no_mangle)]
static CID_CACHE_ON: u8 = 1;

// What `server_id_route` returns besides a backend index (which is below MAX_BACKENDS).
const UNKNOWN_SERVER_ID: u32 = u32::MAX - 1;
const UNROUTABLE_CODEPOINT: u32 = u32::MAX - 2;
const UNROUTABLE_LENGTH: u32 = u32::MAX - 3;

/// The route for the DCID at `dcid_offset`, `dcid_len` octets long (a short header's: the
/// rest of the packet). `epoch_and_short` is `epoch << 1 | short`: a `&Header` argument
/// instead would leave the verifier without bounds on the offset read back from it.
///
/// A BPF subprogram of its own (not inlined), so that the codec's buffers have a stack frame
/// of their own (BPF allows 512 octets along a call chain). Its arguments are scalars, the
/// context or stack pointers, at most five, and it returns a scalar (a backend index or one
/// of the codes above), as BPF requires.
#[inline(never)]
fn server_id_route(
    ctx: &impl Packet,
    dcid_offset: usize,
    dcid_len: usize,
    epoch_and_short: u64,
    key: &mut ServerIdKey,
) -> u32 {
    let (epoch, short) = ((epoch_and_short >> 1) as u32, epoch_and_short & 1 != 0);
    let generation = Control { epoch }.generation();
    let dcid = read_dcid(ctx, dcid_offset, dcid_len);
    let config_rotation = config_rotation_of(dcid[0]);
    let Some(config) = CID_CONFIGS.get(generation * CID_CONFIG_SLOTS + u32::from(config_rotation))
    else {
        return UNROUTABLE_CODEPOINT;
    };
    if config.active == 0 {
        return UNROUTABLE_CODEPOINT;
    }
    // A short header's DCID is the config's CID length; a long header names its length,
    // which must hold the encoded part.
    let (cid_len, needed) = if short {
        (config.cid_len as usize, config.cid_len as usize)
    } else {
        (dcid_len, 1 + config.plaintext_len as usize)
    };
    if dcid_len < needed {
        return UNROUTABLE_LENGTH;
    }
    // An encrypted CID seen before goes where it went then, without the AES passes. Not
    // when tracing: `explain` shows what decoding gives.
    // SAFETY: a plain read of a static that the loader may have rewritten before loading.
    let cache_on = unsafe { core::ptr::read_volatile(&CID_CACHE_ON) } != 0;
    let cached = cache_on && config.encrypted != 0 && !stats::tracing();
    if cached {
        let backend = cache_lookup(epoch, &dcid, cid_len);
        if backend != NO_BACKEND {
            return backend;
        }
    }
    key.generation = generation as u8;
    key.config_rotation = config_rotation;
    decode_into_key(config, &dcid, key);
    match SERVER_IDS.get_ptr(key) {
        Some(backend) => {
            // SAFETY: a pointer to the map's value, valid for this program run.
            let backend = unsafe { *backend };
            if cached {
                cache_insert(backend);
            }
            backend
        }
        None => UNKNOWN_SERVER_ID,
    }
}

// The cache's key is built in per-CPU scratch memory rather than on the stack, in a
// subprogram of its own: on the stack it would push the AES call chain past BPF's 512 octets.

/// Builds the cache key of the CID (the first `len` octets of `dcid`, the rest zeroed) under
/// `epoch` in the scratch slot, and returns its cached backend, or NO_BACKEND.
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value the key would be copied onto the stack this avoids"
)]
fn cache_lookup(epoch: u32, dcid: &[u8; MAX_CID_LEN], len: usize) -> u32 {
    let Some(key) = CID_CACHE_KEY.get_ptr_mut(0) else {
        return NO_BACKEND;
    };
    // SAFETY: this CPU's scratch slot; nothing else uses it during this program run.
    let key = unsafe { &mut *key };
    key.epoch = epoch;
    key.len = len as u8;
    for (i, (slot, &octet)) in key.cid.iter_mut().zip(dcid).enumerate() {
        // 0xff below `len`, 0 from it on, without a branch per octet.
        *slot = octet & ((i as isize).wrapping_sub(len as isize) >> (isize::BITS - 1)) as u8;
    }
    match CID_CACHE.get_ptr(&*key) {
        // SAFETY: a pointer to the map's value, valid for this program run.
        Some(backend) => unsafe { *backend },
        None => NO_BACKEND,
    }
}

/// Remembers `backend` under the key `cache_lookup` just built. A full cache evicts its least
/// recently used entry; a failed insert only costs a decode later.
#[inline(never)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value the key and backend would be copied onto the stack"
)]
fn cache_insert(backend: u32) -> u32 {
    if let Some(key) = CID_CACHE_KEY.get_ptr(0) {
        // SAFETY: this CPU's scratch slot, built by cache_lookup in this program run.
        let _ = CID_CACHE.insert(unsafe { &*key }, &backend, 0);
    }
    backend
}

/// Decodes the server ID into `key.server_id`, zero-padded. A subprogram of its own: the
/// codec's buffers get a frame that the cache's call chain does not add up with.
#[inline(never)]
fn decode_into_key(
    config: &CidConfigEntry,
    dcid: &[u8; MAX_CID_LEN],
    key: &mut ServerIdKey,
) -> u32 {
    // A copy, not `dcid.last_chunk()`: decoding from the unaligned tail takes 8 octets more
    // of this frame, and the XDP program's call chain through here is at 512 already.
    let mut encoded = [0u8; MAX_PLAINTEXT_LEN];
    encoded.copy_from_slice(&dcid[1..]);
    let cipher = (config.encrypted != 0).then_some(&config.round_keys);
    let server_id_len = config.server_id_len as usize;
    let head = decode_server_id(
        cipher,
        &encoded,
        config.plaintext_len as usize,
        server_id_len,
    );
    key.server_id
        .copy_from_slice(&head.to_be_bytes()[..MAX_SERVER_ID_LEN]);
    server_id_len as u32
}
