//! How the `silk` process gives memory back. Task outputs and messages of many MiB pass through
//! every service; glibc's allocator, by default, raises its mmap threshold each time such a
//! block is freed (up to 32 MiB), after which blocks that large come from the heap and stay
//! resident when freed — a service's memory would stay at its largest burst. A fixed threshold
//! of 1 MiB keeps every large block in its own mapping, returned to the system on free.

/// Blocks at least this large get their own mapping.
const MMAP_THRESHOLD_BYTES: i32 = 1 << 20;

/// Fixes the allocator's mmap threshold (glibc only; elsewhere nothing to do). Call first thing
/// in `main`.
pub fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's tuning and is safe to call at any time;
        // an unknown parameter or value is refused (returns 0), which leaves the default.
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
    }
}
