//! Loading the XDP program built by `build.rs`.

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    programs::{ProgramError, Xdp},
};

/// The router-ebpf object file, aligned for aya's ELF parser.
pub fn program_bytes() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/router-ebpf"))
}

/// The name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "quic_router";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load the XDP object (needs root): {0}")]
    Object(#[from] EbpfError),
    #[error("the kernel refused the XDP program: {0}")]
    Program(#[from] ProgramError),
    #[error("the object has no XDP program {PROGRAM_NAME}")]
    NoProgram,
}

/// Loads the object and its XDP program into the kernel, not attached. With
/// `trace_verdicts`, the program records each packet's verdict for `explain`.
pub fn load(trace_verdicts: bool) -> Result<Ebpf, LoadError> {
    let mut ebpf = EbpfLoader::new()
        .override_global("TRACE_VERDICTS", &u8::from(trace_verdicts), true)
        .load(program_bytes())?;
    xdp_program(&mut ebpf)?.load()?;
    Ok(ebpf)
}

/// The router's XDP program in `ebpf`.
pub fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, LoadError> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or(LoadError::NoProgram)?
        .try_into()
        .map_err(|_| LoadError::NoProgram)
}
