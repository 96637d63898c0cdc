//! What the kernel program did with one packet, as `quic-router explain` shows it
//! ([`Router::explain`](crate::router::Router::explain) finds it).

use serde::Serialize;

/// What the program did with one packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `pass`, `drop`, `redirect` (or `tx`, `aborted`).
    pub action: &'static str,
    /// The backend the packet went to.
    pub backend: Option<String>,
    /// The server ID decoded from the token or the DCID (the one that routed the packet, or the
    /// last tried), whether or not a backend has it.
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
