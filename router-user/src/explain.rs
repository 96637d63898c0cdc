//! `quic-router explain`: what the kernel program does with a packet. Loads its own copy of
//! the program with verdict tracing on (not attached anywhere), installs a config, and runs
//! each packet through it with BPF_PROG_TEST_RUN.

use aya::{
    Ebpf,
    maps::{Array, MapData, MapError},
    programs::{ProgramError, TestRun as _, TestRunOptions},
};
use router_common::maps::{NO_BACKEND, Outcome, Verdict};
use serde::Serialize;

use crate::{
    config::RouterConfig,
    dataplane::{self, Dataplane, DataplaneError},
    ebpf::{self, LoadError},
    netif,
    tables::BackendIndices,
};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("map VERDICT: {0}")]
    Verdict(#[from] MapError),
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    TestRun(#[from] ProgramError),
    #[error("a packet of {0} octets is shorter than an Ethernet header (14)")]
    TooShort(usize),
}

/// What the program did with one packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `pass`, `drop`, `redirect` (or `tx`, `aborted`).
    pub action: &'static str,
    /// The backend the packet went to.
    pub backend: Option<String>,
    /// The server ID decoded from the DCID, whether or not a backend has it.
    pub server_id: Option<String>,
    /// The outcome counter the packet counted in.
    pub reason: &'static str,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "action={} backend={} server_id={} reason={}",
            self.action,
            self.backend.as_deref().unwrap_or("-"),
            self.server_id.as_deref().unwrap_or("-"),
            self.reason
        )
    }
}

pub struct Explainer {
    ebpf: Ebpf,
    verdict: Array<MapData, Verdict>,
    dataplane: Dataplane,
    indices: BackendIndices,
}

/// The name operators use for an XDP action.
pub fn action_name(action: u32) -> &'static str {
    match action {
        0 => "aborted",
        1 => "drop",
        2 => "pass",
        3 => "tx",
        4 => "redirect",
        _ => "unknown",
    }
}

impl Explainer {
    /// Loads the program and installs `config`. Backend interfaces that do not exist here are
    /// stood in for by the loopback interface: explain runs anywhere, not only on the router.
    pub fn new(config: &RouterConfig) -> Result<Self, ExplainError> {
        let mut ebpf = ebpf::load(ebpf::LoadOptions {
            trace_verdicts: true,
            ..Default::default()
        })?;
        let dataplane = Dataplane::new(&mut ebpf)?;
        let verdict = dataplane::take(&mut ebpf, "VERDICT")?;
        let mut explainer = Self {
            ebpf,
            verdict,
            dataplane,
            indices: BackendIndices::default(),
        };
        explainer.install(config)?;
        Ok(explainer)
    }

    /// Replaces the installed config with `config`.
    pub fn install(&mut self, config: &RouterConfig) -> Result<(), ExplainError> {
        self.dataplane.install(config, &mut self.indices, |name| {
            netif::lookup(name).or_else(|_| netif::lookup("lo"))
        })?;
        Ok(())
    }

    /// Runs `packet` (an Ethernet frame) through the program.
    pub fn explain(&mut self, packet: &[u8]) -> Result<Explanation, ExplainError> {
        if packet.len() < 14 {
            return Err(ExplainError::TooShort(packet.len()));
        }
        let unknown = Verdict {
            outcome: u32::MAX,
            backend: NO_BACKEND,
            ..Verdict::default()
        };
        self.verdict.set(0, unknown, 0)?;
        let mut out = vec![0u8; packet.len() + 256];
        let result = ebpf::xdp_program(&mut self.ebpf)?.test_run(TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })?;
        let verdict = self.verdict.get(&0, 0)?;
        let tables = self.dataplane.active();
        // An inactive codepoint's entry has length 0.
        let server_id_len = tables
            .and_then(|t| t.cid_configs.get(usize::from(verdict.config_rotation)))
            .map_or(0, |entry| usize::from(entry.server_id_len));
        Ok(Explanation {
            action: action_name(result.return_value),
            backend: tables.and_then(|t| t.backend_names.get(&verdict.backend).cloned()),
            server_id: (verdict.has_server_id != 0)
                .then(|| hex::encode(&verdict.server_id[..server_id_len])),
            reason: Outcome::from_u32(verdict.outcome).map_or("unknown", Outcome::name),
        })
    }
}
