//! The atomics the ring is written against: `std`'s normally, loom's under `--cfg loom`, so the
//! same ring code runs in production and in the model checker.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Busy-wait hint (PAUSE); under loom, a yield so the model checker can schedule the peer.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
