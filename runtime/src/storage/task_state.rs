//! The state of one task of a job, kept in memory by storage (completions are persisted
//! separately).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state of one task of a job (kept in memory; completions are persisted separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Waiting for its parents.
    Pending,
    /// May be scheduled.
    Ready,
    /// At least one instance is registered.
    Running,
    /// Finished with outputs.
    Succeeded,
    /// Out of retries.
    Failed,
    /// Its job was cancelled (or failed) before it finished.
    Cancelled,
}

impl TaskState {
    /// Whether the task is finished one way or another.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
