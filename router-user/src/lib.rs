//! quic-router's user-space library: everything the `quic-router` binary does, as functions
//! and types, with one `thiserror` error type per module.

pub mod cid;
pub mod config;
pub mod dataplane;
pub mod ebpf;
pub mod explain;
pub mod fallback;
pub mod key;
pub mod netif;
pub mod pcap;
pub mod tables;
