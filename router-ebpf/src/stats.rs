//! Per-CPU counters for every outcome and every backend, the verdict `explain` reads, and
//! the per-packet log line of debug mode.

use aya_ebpf::programs::XdpContext;
use router_common::{counters::Outcome, maps::Verdict};
use router_ebpf::counters::bump;

use crate::maps::{BACKEND_STATS, SERVER_ID_KEY, STATS, VERDICT};

/// Set to 1 by `quic-router explain` at load time; 0 in the data path, where the verifier
/// then drops the tracing code as dead.
#[unsafe(no_mangle)]
static TRACE_VERDICTS: u8 = 0;

#[inline(always)]
pub fn count(outcome: Outcome) {
    bump(&STATS, outcome as u32);
}

#[inline(always)]
pub fn count_backend(backend: u32, bytes: u64) {
    if let Some(counters) = BACKEND_STATS.get_ptr_mut(backend) {
        // SAFETY: this CPU's slot. XDP runs with bottom halves off, so nothing else on this
        // CPU writes it meanwhile.
        unsafe {
            (*counters).packets += 1;
            (*counters).bytes += bytes;
        }
    }
}

/// Whether this program was loaded for `explain` (verdict tracing on).
#[inline(always)]
pub fn tracing() -> bool {
    // SAFETY: a plain read of a static that the loader may have rewritten before loading.
    unsafe { core::ptr::read_volatile(&TRACE_VERDICTS) != 0 }
}

/// Records the verdict for `explain` when tracing is on; with `decoded`, the server ID that
/// was decoded last in this run (in `SERVER_ID_KEY`).
#[inline(always)]
pub fn trace(outcome: Outcome, backend: u32, decoded: bool) {
    if tracing() {
        record_verdict(outcome as u32, backend, decoded);
    }
}

/// A BPF subprogram (not inlined): copying the server ID octet by octet would otherwise take
/// room in the main frame, which the server ID decoder's call chain cannot spare.
#[inline(never)]
fn record_verdict(outcome: u32, backend: u32, decoded: bool) -> u32 {
    let Some(verdict) = VERDICT.get_ptr_mut(0) else {
        return 0;
    };
    let mut value = Verdict {
        outcome,
        backend,
        ..Verdict::default()
    };
    if decoded && let Some(key) = SERVER_ID_KEY.get(0) {
        value.has_server_id = 1;
        value.config_rotation = key.config_rotation;
        value.server_id = key.server_id;
    }
    // SAFETY: only `explain` traces, and it runs one packet at a time.
    unsafe { *verdict = value };
    1
}

/// One line per packet through aya-log. The loader sets the log level to off unless the
/// controller runs with `--debug`; then the check costs a load and a compare.
#[inline(always)]
pub fn log(ctx: &XdpContext, outcome: Outcome, backend: u32) {
    aya_log_ebpf::debug!(ctx, "outcome={} backend={}", outcome as u32, backend);
}
