//! What the benchmark's programs and their user space share: map names, sizes and counters.
//! The programs are the `bench-ebpf` binary (built by the tests crate, for the bench and the
//! tests only).
#![no_std]

use router_common::counter_list;

/// Redirect targets of the benchmark floor: it sends a datagram to slot
/// `source port % FLOOR_SLOTS`, so that a generator spreads load as the router would.
pub const FLOOR_SLOTS: u32 = 4;
/// The benchmark's generator writes the index of the backend a packet's CID names at this
/// offset of the UDP payload; the benchmark's sink checks it.
pub const BENCH_MARKER_OFFSET: usize = 100;

/// The maps, by name.
pub mod map_names {
    /// Devmap, [`FLOOR_SLOTS`](super::FLOOR_SLOTS): the floor's redirect targets.
    pub const FLOOR_PORTS: &str = "FLOOR_PORTS";
    /// Array, [`FLOOR_SLOTS`](super::FLOOR_SLOTS) of `[u8; 12]`: the Ethernet destination
    /// and source the floor writes, per slot.
    pub const FLOOR_MACS: &str = "FLOOR_MACS";
    /// Devmap, 1: the interface the generator sends through.
    pub const GENERATOR_PORT: &str = "GENERATOR_PORT";
    /// Array, 1 `u32`: the backend index a sink counts for.
    pub const SINK_BACKEND: &str = "SINK_BACKEND";
    /// Per-CPU array by [`SinkCounter`](super::SinkCounter) of `u64`.
    pub const SINK_COUNTS: &str = "SINK_COUNTS";
}

/// The programs, by name.
/// The C yardstick (`c/floor.c`, built with clang by the tests crate): the floor's work
/// written in C, and an XDP_PASS program beside it. Its names, as the C source gives them.
pub mod c_floor {
    pub const PASS: &str = "c_floor_pass";
    pub const REDIRECT: &str = "c_floor_redirect";
    pub const PORTS: &str = "C_FLOOR_PORTS";
    pub const MACS: &str = "C_FLOOR_MACS";
}

pub mod program_names {
    pub const FLOOR_PASS: &str = "floor_pass";
    pub const FLOOR_REDIRECT: &str = "floor_redirect";
    pub const FLOOR_ENCAP: &str = "floor_encap";
    pub const GENERATE: &str = "bench_generate";
    pub const SINK: &str = "bench_sink";
}

counter_list! {
    /// What a benchmark sink counts.
    pub enum SinkCounter {
        /// UDP datagrams that reached the backend.
        Delivered => "delivered",
        /// Delivered to a backend that the packet's CID does not name.
        Misrouted => "misrouted",
    }
}
