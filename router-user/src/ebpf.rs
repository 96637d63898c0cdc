//! Loading the programs built by `build.rs`: the XDP router and the `SO_REUSEPORT` program
//! that selects local workers' sockets.

use std::path::Path;

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    programs::{ProgramError, SkReuseport, Xdp},
};

/// The router-ebpf object file, aligned for aya's ELF parser.
pub fn program_bytes() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/router-ebpf"))
}

/// The name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "quic_router";
/// The name of the `SO_REUSEPORT` program that selects local workers' sockets.
pub const WORKER_PROGRAM_NAME: &str = "select_worker";

/// The maps that hold the router's state, pinned so that the data path outlives the
/// controller and a new controller adopts them.
pub const PINNED_MAPS: [&str; 14] = [
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
    "WORKER_SOCKETS",
    "LOCAL_STATS",
    // Shared by the XDP program and the local workers' selection program, also when a new
    // controller adopts an older XDP program.
    "CID_CACHE",
    "CID_CACHE_KEY",
];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load the router's BPF object (needs root): {0}")]
    Object(#[from] EbpfError),
    #[error("the kernel refused a program of the router: {0}")]
    Program(#[from] ProgramError),
    #[error("the object has no program {0}")]
    NoProgram(&'static str),
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
    worker_program(&mut ebpf)?.load()?;
    Ok(ebpf)
}

/// The router's XDP program in `ebpf`.
pub fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, LoadError> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or(LoadError::NoProgram(PROGRAM_NAME))?
        .try_into()
        .map_err(|_| LoadError::NoProgram(PROGRAM_NAME))
}

/// The `SO_REUSEPORT` program in `ebpf` that selects local workers' sockets.
pub fn worker_program(ebpf: &mut Ebpf) -> Result<&mut SkReuseport, LoadError> {
    ebpf.program_mut(WORKER_PROGRAM_NAME)
        .ok_or(LoadError::NoProgram(WORKER_PROGRAM_NAME))?
        .try_into()
        .map_err(|_| LoadError::NoProgram(WORKER_PROGRAM_NAME))
}
