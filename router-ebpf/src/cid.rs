//! Server IDs from destination connection IDs, decoded with router-common's codec (the
//! same `decode_server_id` that user space runs) on the table-based AES.

use router_common::{
    counters::Outcome,
    maps::{
        CidCacheSet, CidCacheWay, CidConfigEntry, Control, MAX_SHORT_SERVER_ID_LEN, NO_BACKEND,
        ServerIdKey, cid_cache_slot, cid_config_slot, short_server_id_slot, specs,
    },
    quic_lb::{
        MAX_CID_LEN, MAX_PLAINTEXT_LEN, MAX_SERVER_ID_LEN, config_rotation_of, decode_server_id,
    },
};

use aya_ebpf::helpers::bpf_get_smp_processor_id;
use router_ebpf::parse::Packet;

use crate::{
    maps::{CID_CACHE, CID_CACHE_PROBE, CID_CONFIGS, SERVER_ID_KEY, SERVER_IDS, SHORT_SERVER_IDS},
    quic::Header,
    scalar::ScalarResult,
    stats,
};

/// Copies up to 20 octets of the DCID at `offset` (`len` octets long) from the packet, with
/// zeros where it ends.
#[inline(always)]
pub fn read_dcid(ctx: &impl Packet, offset: usize, len: usize) -> [u8; MAX_CID_LEN] {
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

/// Copies the first `len` octets of `from` into `to` and zeroes the rest of `to`: a CID or a
/// server ID as a map key.
#[inline(always)]
pub fn copy_prefix<const N: usize>(to: &mut [u8; N], from: &[u8], len: usize) {
    for (i, (slot, &octet)) in to.iter_mut().zip(from).enumerate() {
        // 0xff below `len`, 0 from it on, without a branch per octet.
        *slot = octet & ((i as isize).wrapping_sub(len as isize) >> (isize::BITS - 1)) as u8;
    }
}

/// The backend index of the server that the packet's DCID names, or why there is none:
/// [`Outcome::UnknownServerId`] (then `SERVER_ID_KEY` holds the decoded server ID, as it
/// does after a decode that found one), [`Outcome::UnroutableCodepoint`] or
/// [`Outcome::UnroutableLength`].
#[inline(always)]
pub fn route_by_cid(ctx: &impl Packet, epoch: u32, header: &Header) -> Result<u32, Outcome> {
    // Empty, or longer than QUIC v1 allows (an unknown version): nothing to decode.
    if header.dcid_len == 0 || !header.short && header.dcid_len > MAX_CID_LEN {
        return Err(Outcome::UnroutableLength);
    }
    let epoch_and_config_len = u64::from(epoch) << 1 | header.short as u64;
    server_id_route(
        ctx,
        header.dcid_offset,
        header.dcid_len,
        epoch_and_config_len,
    )
    .get()
}

/// The backend index of the server that the routable block at the front of the token at
/// `offset` (`len` octets, at least one) names, as [`route_by_cid`] gives it: the block is
/// decoded as a short header's DCID is (router-common's `quic_lb::token` format), and a
/// token shorter than the config's CID length is [`Outcome::UnroutableLength`].
#[inline(always)]
pub fn route_by_token(
    ctx: &impl Packet,
    epoch: u32,
    offset: usize,
    len: usize,
) -> Result<u32, Outcome> {
    server_id_route(ctx, offset, len, u64::from(epoch) << 1 | 1).get()
}

/// 1: remember the backends of encrypted CIDs (the default); 0: decode every packet (the
/// loader sets it, for benchmarks of the decoding).
#[unsafe(no_mangle)]
static CID_CACHE_ON: u8 = 1;

/// The CID cache's sets on each CPU, a power of two: the loader sets it from the limits the
/// map is made to.
#[unsafe(no_mangle)]
static CID_CACHE_SETS: u32 = specs::CID_CACHE.default_entries();

/// How far apart the CPUs' regions of the CID cache are: `CID_CACHE_SETS`, or 0 for one
/// cache for all CPUs (benchmarks only). The loader sets it.
#[unsafe(no_mangle)]
static CID_CACHE_STRIDE: u32 = specs::CID_CACHE.default_entries();

/// The route for the CID at `dcid_offset`, `dcid_len` octets long (a short header's DCID or a
/// token: the rest of the packet or of the token). `epoch_and_config_len` is
/// `epoch << 1 | config_len`, where `config_len` says that the config gives the CID's length
/// (a short header's DCID, a token's block) rather than `dcid_len` (a long header's DCID): a
/// sixth argument is not allowed, and a `&Header` instead would leave the verifier without
/// bounds on the offset read back from it.
///
/// A BPF subprogram of its own (not inlined), so that the codec's buffers have a stack frame
/// of their own.
#[inline(never)]
fn server_id_route(
    ctx: &impl Packet,
    dcid_offset: usize,
    dcid_len: usize,
    epoch_and_config_len: u64,
) -> ScalarResult {
    ScalarResult::new(decode_and_look_up(
        ctx,
        dcid_offset,
        dcid_len,
        epoch_and_config_len,
    ))
}

#[inline(always)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value the key would be copied onto the stack that its scratch slot spares"
)]
fn decode_and_look_up(
    ctx: &impl Packet,
    dcid_offset: usize,
    dcid_len: usize,
    epoch_and_config_len: u64,
) -> Result<u32, Outcome> {
    let (epoch, config_len) = (
        (epoch_and_config_len >> 1) as u32,
        epoch_and_config_len & 1 != 0,
    );
    let generation = Control { epoch }.generation();
    let dcid = read_dcid(ctx, dcid_offset, dcid_len);
    let config_rotation = config_rotation_of(dcid[0]);
    let Some(config) = CID_CONFIGS.get(cid_config_slot(generation, u32::from(config_rotation)))
    else {
        return Err(Outcome::UnroutableCodepoint);
    };
    if config.active == 0 {
        return Err(Outcome::UnroutableCodepoint);
    }
    // A short header's DCID and a token's block are the config's CID length; a long header
    // names its DCID's length, which must hold the encoded part.
    let (cid_len, needed) = if config_len {
        (config.cid_len as usize, config.cid_len as usize)
    } else {
        (dcid_len, 1 + config.plaintext_len as usize)
    };
    if dcid_len < needed {
        return Err(Outcome::UnroutableLength);
    }
    // An encrypted CID seen before goes where it went then, without the AES passes. Not
    // when tracing: `explain` shows what decoding gives.
    // SAFETY: a plain read of a static that the loader may have rewritten before loading.
    let cache_on = unsafe { core::ptr::read_volatile(&CID_CACHE_ON) } != 0;
    let cached = cache_on && config.encrypted != 0 && !stats::tracing();
    if cached {
        let backend = cache_lookup(epoch, &dcid, cid_len);
        if backend != NO_BACKEND {
            return Ok(backend);
        }
    }
    let Some(key) = SERVER_ID_KEY.get_ptr_mut(0) else {
        return Err(Outcome::UnknownServerId);
    };
    // SAFETY: this CPU's scratch slot; nothing else uses it during this program run.
    let key = unsafe { &mut *key };
    key.generation = generation as u8;
    key.config_rotation = config_rotation;
    if config.encrypted == 0 {
        // A plaintext CID carries its server ID as is, right after the first octet
        // (draft-21 §5.2): what the codec's decoding would give, without its copies.
        copy_prefix(
            &mut key.server_id,
            &dcid[1..],
            config.server_id_len as usize,
        );
    } else {
        decode_into_key(config, &dcid, key);
    }
    let backend = if config.server_id_len <= MAX_SHORT_SERVER_ID_LEN {
        let slot = short_server_id_slot(generation, u32::from(config_rotation), &key.server_id);
        match SHORT_SERVER_IDS.get(slot) {
            Some(&backend_plus_one) if backend_plus_one != 0 => backend_plus_one - 1,
            _ => return Err(Outcome::UnknownServerId),
        }
    } else {
        match SERVER_IDS.get_ptr(&*key) {
            // SAFETY: a pointer to the map's value, valid for this program run.
            Some(backend) => unsafe { *backend },
            None => return Err(Outcome::UnknownServerId),
        }
    };
    if cached {
        cache_insert(backend);
    }
    Ok(backend)
}

// The cache's probe (the packet's CID as an entry) is built in per-CPU scratch memory rather
// than on the stack, in a subprogram of its own: on the stack it would push the AES call
// chain past BPF's 512 octets.

/// The CID's set on this CPU.
#[inline(always)]
fn cache_set(probe: &CidCacheWay) -> Option<*mut CidCacheSet> {
    // SAFETY: plain reads of statics that the loader may have rewritten before loading; a
    // helper without arguments.
    let (sets, stride, cpu) = unsafe {
        (
            core::ptr::read_volatile(&CID_CACHE_SETS),
            core::ptr::read_volatile(&CID_CACHE_STRIDE),
            bpf_get_smp_processor_id(),
        )
    };
    CID_CACHE.get_ptr_mut(cid_cache_slot(cpu, stride, probe.set(sets)))
}

/// Builds the probe of the CID (the first `len` octets of `dcid`, the rest zeroed) under
/// `epoch` in the scratch slot, and returns its cached backend, or NO_BACKEND.
#[inline(never)]
fn cache_lookup(epoch: u32, dcid: &[u8; MAX_CID_LEN], len: usize) -> u32 {
    let Some(probe) = CID_CACHE_PROBE.get_ptr_mut(0) else {
        return NO_BACKEND;
    };
    // SAFETY: this CPU's scratch slot; nothing else uses it during this program run.
    let probe = unsafe { &mut *probe };
    probe.epoch = epoch;
    probe.len = len as u8;
    probe._pad = [0; 3];
    copy_prefix(&mut probe.cid, dcid, len);
    match cache_set(probe) {
        // SAFETY: this CPU's set, valid for this program run; no other CPU touches it.
        Some(set) => unsafe { (*set).find(probe) }.unwrap_or(NO_BACKEND),
        None => NO_BACKEND,
    }
}

/// Remembers `backend` for the CID that `cache_lookup` just probed, in its set's first
/// entry (the first moves second).
#[inline(never)]
fn cache_insert(backend: u32) -> u32 {
    if let Some(probe) = CID_CACHE_PROBE.get_ptr_mut(0) {
        // SAFETY: this CPU's scratch slot, built by cache_lookup in this program run.
        let probe = unsafe { &mut *probe };
        probe.backend = backend;
        if let Some(set) = cache_set(probe) {
            // SAFETY: this CPU's set, valid for this program run; no other CPU touches it,
            // and nothing else runs on this one until the program ends.
            unsafe { (*set).insert(probe) };
        }
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
