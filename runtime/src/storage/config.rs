//! Storage service tuning, read from the `[storage]` table of the service config (see
//! `docs/config.md`). Every key has a default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::db::{DbOptions, RetryPolicy};

/// Storage service settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Terminal jobs stay queryable this long, then are deleted from memory and the database.
    pub terminated_job_retention_ms: u64,
    /// An execution manager silent this long is declared dead; its running instances are
    /// queued again.
    pub dead_em_cutoff_ms: u64,
    /// How often liveness, soft timeouts and retention are checked.
    pub sweep_interval_ms: u64,
    /// Most task completions written in one group-commit transaction.
    pub group_commit_max_batch: usize,
    /// An instance with no report this long after its hard timeout is taken as lost (its
    /// execution manager kills the task at the hard timeout and reports): it is dropped and the
    /// task queued again, so a lost report cannot hang a job.
    pub lost_report_grace_ms: u64,
    /// Instances of one task that may be lost with their execution manager (declared dead, or
    /// the report overdue) without cost; every later loss spends one of the task's retries, so
    /// a task that kills every execution manager it lands on fails its job (kind `Crashed`).
    pub free_instance_losses: u32,
    /// Most bytes of task outputs held in memory for the tasks that read them, over every job.
    /// Outputs past it (and outputs no unfinished task reads) are read back from the database.
    pub output_memory_budget_bytes: u64,
    /// How long one database statement waits for a lock held by another transaction (SQLite's
    /// busy timeout; MySQL/MariaDB's `innodb_lock_wait_timeout`, rounded up to whole seconds).
    pub db_lock_wait_timeout_ms: u64,
    /// Most tries of one database call the database refused (deadlock, lock wait timeout,
    /// busy) before the caller sees the refusal.
    pub db_retry_attempts: u32,
    /// Longest sleep between two tries of a refused database call (the first is 10 ms, then
    /// doubling).
    pub db_retry_max_backoff_ms: u64,
    /// The largest value written in one database row: a task's outputs, a job's outputs frame,
    /// one chunk of a job's graph. A larger output fails its task (or job) with
    /// `OutputTooLarge`; a larger graph chunk is refused at submit. MySQL/MariaDB's
    /// `max_allowed_packet` must exceed it by 64 KiB; storage checks that at startup.
    pub db_max_write_bytes: u64,
    /// The largest job storage takes: its graph in compact form and its inputs frame, in bytes.
    /// A larger job is refused at submit, naming this key and its size so far. Storage holds
    /// about three bytes per byte of compact graph for a job it runs.
    pub max_job_bytes: u64,
    /// Most bytes of memory the graphs and task controls of unfinished jobs take, over every
    /// job (about 390 bytes per task of 25 inputs). A job that would pass it is refused at
    /// submit (`RESOURCE_EXHAUSTED`, try again when jobs end); jobs recovered after a restart
    /// count but are never refused.
    pub job_memory_budget_bytes: u64,
}

impl StorageConfig {
    /// The database options these settings make.
    #[must_use]
    pub fn db_options(&self) -> DbOptions {
        DbOptions {
            retry: RetryPolicy {
                attempts: self.db_retry_attempts.max(1),
                max_backoff: Duration::from_millis(self.db_retry_max_backoff_ms),
                ..RetryPolicy::default()
            },
            lock_wait_timeout: Duration::from_millis(self.db_lock_wait_timeout_ms),
            max_write_bytes: self.db_max_write_bytes,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            terminated_job_retention_ms: 300_000,
            dead_em_cutoff_ms: 5_000,
            sweep_interval_ms: 1_000,
            group_commit_max_batch: 1024,
            lost_report_grace_ms: 30_000,
            free_instance_losses: 2,
            output_memory_budget_bytes: 256 << 20,
            db_lock_wait_timeout_ms: 10_000,
            db_retry_attempts: 8,
            db_retry_max_backoff_ms: 1_000,
            db_max_write_bytes: 64 << 20,
            max_job_bytes: 256 << 20,
            job_memory_budget_bytes: 4 << 30,
        }
    }
}
