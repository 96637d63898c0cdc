//! Loading the XDP program built by `build.rs`.

use std::path::Path;

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

/// The maps that hold the router's state, pinned so that the data path outlives the
/// controller and a new controller adopts them.
pub const PINNED_MAPS: [&str; 10] = [
    "CONTROL",
    "LISTENER_PORTS",
    "LISTENERS",
    "CID_CONFIGS",
    "SERVER_IDS",
    "BACKENDS",
    "FALLBACK",
    "TX_PORTS",
    "STATS",
    "BACKEND_STATS",
];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load the XDP object (needs root): {0}")]
    Object(#[from] EbpfError),
    #[error("the kernel refused the XDP program: {0}")]
    Program(#[from] ProgramError),
    #[error("the object has no XDP program {PROGRAM_NAME}")]
    NoProgram,
}

/// How to load the program.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions<'a> {
    /// Record each packet's verdict for `explain`.
    pub trace_verdicts: bool,
    /// Log a line per packet through aya-log (debug mode only).
    pub debug_log: bool,
    /// Use (or create and pin) the state maps in this directory.
    pub pin_dir: Option<&'a Path>,
    /// Remember the backends of encrypted CIDs, so that later packets skip the AES passes.
    pub cid_cache: bool,
}

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        Self {
            trace_verdicts: false,
            debug_log: false,
            pin_dir: None,
            cid_cache: true,
        }
    }
}

/// Loads the object and its XDP program into the kernel, not attached.
pub fn load(options: LoadOptions<'_>) -> Result<Ebpf, LoadError> {
    // aya-log's level: 0 is off, 4 is debug (every level up to it).
    let log_level: u8 = if options.debug_log { 4 } else { 0 };
    let trace = u8::from(options.trace_verdicts);
    let cid_cache = u8::from(options.cid_cache);
    let pins: Vec<(&str, std::path::PathBuf)> = options
        .pin_dir
        .map(|dir| {
            PINNED_MAPS
                .iter()
                .map(|name| (*name, dir.join(name)))
                .collect()
        })
        .unwrap_or_default();
    let mut loader = EbpfLoader::new();
    loader
        .override_global("TRACE_VERDICTS", &trace, true)
        .override_global("AYA_LOG_LEVEL", &log_level, true)
        .override_global("CID_CACHE_ON", &cid_cache, true);
    for (name, path) in &pins {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader.load(program_bytes())?;
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
