//! The XDP program, as built by `build.rs`.

/// The router-ebpf object file, aligned for aya's ELF parser.
pub fn program_bytes() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/router-ebpf"))
}

/// The name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "quic_router";
