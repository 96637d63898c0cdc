//! quic-router's user-space library: everything the `quic-router` binary does, as functions
//! and types, with one `thiserror` error type per module.

pub mod cid;
pub mod ebpf;
pub mod key;
