//! Errors of the scheduler.

use silk_core::ids::{ExecutionManagerId, SessionId};

/// A scheduler error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A session bump must move strictly forward.
    #[error("session bump not forward: current {current}, requested {requested}")]
    SessionNotNewer {
        /// The session in force.
        current: SessionId,
        /// The rejected one.
        requested: SessionId,
    },
    /// The execution manager was marked dead (shut down or timed out); it gets no more work.
    #[error("execution manager {em} is marked dead")]
    MarkedDead {
        /// The EM.
        em: ExecutionManagerId,
    },
    /// Polling storage failed (transport error, storage restarting).
    #[error("storage poll failed: {message}")]
    Storage {
        /// What went wrong.
        message: String,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
