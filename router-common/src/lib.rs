//! Types shared by the quic-router XDP program and user space, and the QUIC-LB
//! connection-ID codec (draft-ietf-quic-load-balancers-21).
//!
//! `no_std` and allocation-free so that the kernel program can use the same code.
#![no_std]

pub mod counters;
pub mod decap;
pub mod flow_hash;
pub mod maps;
pub mod quic_lb;
