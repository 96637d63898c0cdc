//! `Result<u32, Outcome>` in one register, for subprograms (see the crate docs): rustc
//! returns the `Result` itself through a pointer that BPF does not allow.

use router_common::counters::Outcome;

/// A `Result<u32, Outcome>`: the value in the low half, the outcome's index above bit 32.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct ScalarResult(u64);

const ERR: u64 = 1 << 32;

impl ScalarResult {
    #[inline(always)]
    pub fn new(result: Result<u32, Outcome>) -> Self {
        match result {
            Ok(value) => Self(u64::from(value)),
            Err(outcome) => Self(ERR | outcome as u64),
        }
    }

    #[inline(always)]
    pub fn get(self) -> Result<u32, Outcome> {
        if self.0 & ERR == 0 {
            Ok(self.0 as u32)
        } else {
            // SAFETY: `new` is the only constructor, and it stored an `Outcome`'s index.
            Err(unsafe { core::mem::transmute::<u32, Outcome>(self.0 as u32) })
        }
    }
}
