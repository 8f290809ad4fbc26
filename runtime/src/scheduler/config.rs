//! Tuning keys of the scheduler core (the `[core]` table of the scheduler config file; see
//! `docs/config.md`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Round-robin core settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoreConfig {
    /// Jobs of one resource group served in rotation at a time; further jobs wait FIFO.
    pub active_jobs_per_group: usize,
    /// Assignments queued for execution managers at most.
    pub dispatch_queue_capacity: usize,
    /// Regular tasks buffered at most (the ready lane is polled for the difference).
    pub ready_task_capacity: usize,
    /// Commit tasks buffered at most.
    pub commit_task_capacity: usize,
    /// Cleanup tasks buffered at most.
    pub cleanup_task_capacity: usize,
    /// Long-poll wait of one storage lane poll.
    pub storage_poll_wait_ms: u64,
    /// How long regular tasks of a job that started finalizing are still ignored.
    pub finalizing_expiry_ms: u64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            active_jobs_per_group: 16,
            dispatch_queue_capacity: 256,
            ready_task_capacity: 1 << 20,
            commit_task_capacity: 256,
            cleanup_task_capacity: 256,
            storage_poll_wait_ms: 500,
            finalizing_expiry_ms: 300_000,
        }
    }
}

impl CoreConfig {
    /// [`Self::storage_poll_wait_ms`] as a duration.
    #[must_use]
    pub fn storage_poll_wait(&self) -> Duration {
        Duration::from_millis(self.storage_poll_wait_ms)
    }

    /// [`Self::finalizing_expiry_ms`] as a duration.
    #[must_use]
    pub fn finalizing_expiry(&self) -> Duration {
        Duration::from_millis(self.finalizing_expiry_ms)
    }
}
