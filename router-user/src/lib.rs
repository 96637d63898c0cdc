//! quic-router's user-space library: everything the `quic-router` binary does, as functions
//! and types, with one `thiserror` error type per module.

pub mod attach;
pub mod cid;
pub mod config;
pub mod config_edit;
pub mod control;
pub mod controller;
pub mod dataplane;
pub mod ebpf;
pub mod explain;
pub mod fallback;
pub mod key;
pub mod local;
pub mod metrics;
pub mod netif;
pub mod pcap;
pub mod pin;
pub mod runstate;
pub mod tables;
