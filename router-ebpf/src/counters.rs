//! Per-CPU counters.

use aya_ebpf::maps::PerCpuArray;

/// Adds one to this CPU's counter at `index` of `counters`.
#[inline(always)]
pub fn bump(counters: &PerCpuArray<u64>, index: u32) {
    if let Some(counter) = counters.get_ptr_mut(index) {
        // SAFETY: this CPU's slot. XDP and socket selection run with bottom halves off, so
        // nothing else on this CPU writes it meanwhile.
        unsafe { *counter += 1 };
    }
}
