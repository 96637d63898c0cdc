//! Server IDs from destination connection IDs, decoded with router-common's codec (the
//! same `decode_server_id` that user space runs) on the table-based AES.

use aya_ebpf::programs::XdpContext;
use router_common::{
    maps::{CID_CONFIG_SLOTS, CidConfigEntry, Outcome, ServerIdKey},
    quic_lb::{
        MAX_CID_LEN, MAX_PLAINTEXT_LEN, MAX_SERVER_ID_LEN, config_rotation_of, decode_server_id,
    },
};

use crate::{
    maps::{CID_CONFIGS, SERVER_IDS},
    parse::{load, load_into},
    quic::Header,
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
fn read_dcid(ctx: &XdpContext, offset: usize, len: usize) -> [u8; MAX_CID_LEN] {
    // The usual case: the packet holds 20 octets from the DCID on (QUIC packets carry at
    // least a 16-octet AEAD tag after it), so one bounds check covers a fixed-size copy.
    if let Ok(dcid) = load::<MAX_CID_LEN>(ctx, offset) {
        return dcid;
    }
    // Otherwise the DCID runs to the end of the packet, whose lengths the parser checked.
    let mut dcid = [0u8; MAX_CID_LEN];
    let len = if len > MAX_CID_LEN { MAX_CID_LEN } else { len };
    if len > 0 {
        let _ = load_into(ctx, offset, &mut dcid[..len]);
    }
    dcid
}

/// Finds the server that the packet's DCID names. On `Server` and `UnknownServerId`, `key`
/// holds the decoded server ID.
#[inline(always)]
pub fn route_by_cid(
    ctx: &XdpContext,
    generation: u32,
    header: &Header,
    key: &mut ServerIdKey,
) -> CidRoute {
    // Empty, or longer than QUIC v1 allows (an unknown version): nothing to decode.
    if header.dcid_len == 0 || !header.short && header.dcid_len > MAX_CID_LEN {
        return CidRoute::Unroutable(Outcome::UnroutableLength);
    }
    let short_and_generation = (header.short as u32) << 1 | generation;
    match server_id_route(
        ctx,
        header.dcid_offset,
        header.dcid_len,
        short_and_generation,
        key,
    ) {
        UNKNOWN_SERVER_ID => CidRoute::UnknownServerId,
        UNROUTABLE_CODEPOINT => CidRoute::Unroutable(Outcome::UnroutableCodepoint),
        UNROUTABLE_LENGTH => CidRoute::Unroutable(Outcome::UnroutableLength),
        backend => CidRoute::Server(backend),
    }
}

// What `server_id_route` returns besides a backend index (which is below MAX_BACKENDS).
const UNKNOWN_SERVER_ID: u32 = u32::MAX - 1;
const UNROUTABLE_CODEPOINT: u32 = u32::MAX - 2;
const UNROUTABLE_LENGTH: u32 = u32::MAX - 3;

/// The route for the DCID at `dcid_offset`, `dcid_len` octets long (a short header's: the
/// rest of the packet). `short_and_generation` is `short << 1 | generation`.
///
/// A BPF subprogram of its own (not inlined), so that the codec's buffers have a stack frame
/// of their own (BPF allows 512 octets along a call chain). Its arguments are scalars, the
/// context or stack pointers, at most five, and it returns a scalar (a backend index or one
/// of the codes above), as BPF requires.
#[inline(never)]
fn server_id_route(
    ctx: &XdpContext,
    dcid_offset: usize,
    dcid_len: usize,
    short_and_generation: u32,
    key: &mut ServerIdKey,
) -> u32 {
    let (short, generation) = (short_and_generation & 2 != 0, short_and_generation & 1);
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
    let needed = if short {
        config.cid_len as usize
    } else {
        1 + config.plaintext_len as usize
    };
    if dcid_len < needed {
        return UNROUTABLE_LENGTH;
    }
    key.generation = generation as u8;
    key.config_rotation = config_rotation;
    decode_into_key(config, &dcid, key);
    match SERVER_IDS.get_ptr(key) {
        // SAFETY: a pointer to the map's value, valid for this program run.
        Some(backend) => unsafe { *backend },
        None => UNKNOWN_SERVER_ID,
    }
}

/// Decodes the server ID into `key.server_id`, zero-padded.
#[inline(always)]
fn decode_into_key(config: &CidConfigEntry, dcid: &[u8; MAX_CID_LEN], key: &mut ServerIdKey) {
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
}
