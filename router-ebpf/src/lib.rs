//! The library target lets router-user build-depend on this crate, so that cargo rebuilds the
//! XDP program when router-common changes. The program itself is the `router-ebpf` binary.
#![no_std]
