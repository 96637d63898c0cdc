//! The decapsulator's contract (`quic-router decap`, for backends behind a router that
//! encapsulates): its maps, their layouts, and what it counts. Its XDP program takes IP-in-IP
//! (IPv4 in IPv4, IPv6 in IPv6) and GUE (an outer UDP datagram to a configured port, carrying
//! IPv4 or IPv6) addressed to one of the host's tunnel addresses from a configured router
//! prefix, strips the outer headers and passes the inner packet to the stack.
//!
//! | map | kind | key | value |
//! |---|---|---|---|
//! | `DECAP_CONFIG` | array, 1 | 0 | [`DecapConfig`] |
//! | `DECAP_ADDRESSES` | hash | [`TunnelAddress`] | `u8` 1: the host's tunnel addresses |
//! | `DECAP_SOURCES` | LPM trie | [`SourcePrefix`] with a prefix length of 8 + the prefix's | `u8` 1: where encapsulated packets may come from |
//! | `DECAP_STATS` | per-CPU array | [`DecapOutcome`] | `u64` packets |

use crate::{
    counter_list,
    maps::{Entries, MapKind, MapSpec, U32, U64, spec},
};

/// Tunnel addresses a host may have (both families together).
pub const MAX_TUNNEL_ADDRESSES: u32 = 64;
/// Router prefixes encapsulated packets may come from.
pub const MAX_SOURCE_PREFIXES: u32 = 256;

/// `BPF_F_NO_PREALLOC`: LPM tries must be made with it.
const BPF_F_NO_PREALLOC: u32 = 1;

/// How the decapsulator runs.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecapConfig {
    /// The GUE port in network byte order; 0: GUE off (IP-in-IP only).
    pub gue_port_be: u16,
    pub _pad: [u8; 2],
}

/// One of the host's tunnel addresses: IPv4 in the first four octets (the rest zero), or
/// IPv6; network byte order.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TunnelAddress {
    pub addr: [u8; 16],
    /// 4 or 6.
    pub family: u8,
    pub _pad: [u8; 3],
}

/// The data of a `DECAP_SOURCES` key: the family's octet first, so that one trie holds both
/// families (a prefix of `n` bits has a key prefix length of `8 + n`).
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourcePrefix {
    /// 4 or 6.
    pub family: u8,
    /// IPv4 in the first four octets, or IPv6; network byte order.
    pub addr: [u8; 16],
}

/// Bits of a `DECAP_SOURCES` key before the address: the family's octet.
pub const SOURCE_FAMILY_BITS: u32 = 8;

counter_list! {
    /// What the decapsulator did with a packet.
    pub enum DecapOutcome {
        /// IP-in-IP for a tunnel address from a router prefix: the outer IP header stripped,
        /// the inner packet passed to the stack.
        DecapsulatedIpip => "decapsulated_ipip",
        /// GUE for a tunnel address from a router prefix: the outer IP, UDP and GUE headers
        /// stripped, the inner packet passed to the stack.
        DecapsulatedGue => "decapsulated_gue",
        /// Not IP-in-IP or GUE for a tunnel address (or IPv6 with extension headers): passed
        /// to the stack untouched.
        NotTunnel => "not_tunnel",
        /// An outer fragment, which cannot be stripped without reassembly: passed to the
        /// stack untouched.
        OuterFragment => "outer_fragment",
        /// IP-in-IP or GUE for a tunnel address from outside the router prefixes: dropped
        /// (the host is no open relay).
        ForeignSource => "foreign_source",
        /// Outer, GUE or inner headers truncated or inconsistent, a GUE control message, a
        /// GUE payload that is not IPv4 or IPv6: dropped.
        Malformed => "malformed",
        /// The inner packet is itself IP-in-IP or GUE: dropped.
        NestedTunnel => "nested_tunnel",
    }
}

impl DecapOutcome {
    /// Whether the packet goes on to the stack (else it is dropped).
    pub const fn passes(self) -> bool {
        !matches!(
            self,
            Self::ForeignSource | Self::Malformed | Self::NestedTunnel
        )
    }
}

pub mod specs {
    use super::*;

    pub const DECAP_CONFIG: MapSpec = spec(
        "DECAP_CONFIG",
        MapKind::Array,
        U32,
        size_of::<DecapConfig>(),
        Entries::Fixed(1),
    );
    pub const DECAP_ADDRESSES: MapSpec = spec(
        "DECAP_ADDRESSES",
        MapKind::Hash,
        size_of::<TunnelAddress>(),
        1,
        Entries::Fixed(MAX_TUNNEL_ADDRESSES),
    );
    pub const DECAP_SOURCES: MapSpec = MapSpec {
        flags: BPF_F_NO_PREALLOC,
        ..spec(
            "DECAP_SOURCES",
            MapKind::LpmTrie,
            U32 + size_of::<SourcePrefix>(),
            1,
            Entries::Fixed(MAX_SOURCE_PREFIXES),
        )
    };
    pub const DECAP_STATS: MapSpec = spec(
        "DECAP_STATS",
        MapKind::PerCpuArray,
        U32,
        U64,
        Entries::Fixed(DecapOutcome::COUNT),
    );
}

/// Every map of the decapsulator's object.
pub const DECAP_MAPS: [MapSpec; 4] = [
    specs::DECAP_CONFIG,
    specs::DECAP_ADDRESSES,
    specs::DECAP_SOURCES,
    specs::DECAP_STATS,
];

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C) (or packed) structs of integers and arrays without padding holes.
    unsafe impl aya::Pod for super::DecapConfig {}
    unsafe impl aya::Pod for super::TunnelAddress {}
    unsafe impl aya::Pod for super::SourcePrefix {}
}
