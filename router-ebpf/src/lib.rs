//! What the router's programs share with other eBPF programs (the benchmark's floors and
//! sink, the backends' decapsulator): packet parsing and per-CPU counting. The router's
//! programs themselves are the `router-ebpf` binary, the decapsulator the `quic-decap`
//! binary. As a library this crate also lets router-user and the tests build-depend on it,
//! so that cargo rebuilds the programs when this code changes.
#![no_std]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

pub mod counters;
pub mod headers;
pub mod parse;
