//! Errors of the storage service, split the way callers must react to them:
//!
//! * bad requests (unknown ids, invalid graphs or frames, wrong outputs) — the caller's fault;
//! * **stale** errors — expected races (another instance finished the task first, the job was
//!   cancelled meanwhile, an older session): the caller drops the work;
//! * invalid job state transitions, naming both states;
//! * database failures: transient ones (the database refused the call — deadlock, lock wait,
//!   busy — or could not be reached; [`Error::is_transient`]) and permanent ones.
//!
//! None of them stops the service: bad input is answered, never fatal.

use silk_tdl::{JobId, TaskId, TaskInstanceId};

use super::db::DbError;
use super::persist::Refused;
use super::task_state::TaskState;
use silk_core::JobState;
use silk_core::graph::GraphError;
use silk_core::ids::{ExecutionManagerId, SessionId};

/// A storage service error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request names an older (or unknown) storage session.
    #[error("stale session {got}; current storage session is {current}")]
    StaleSession {
        /// The session of the request.
        got: SessionId,
        /// The current session.
        current: SessionId,
    },
    /// An expected race: the work is no longer wanted.
    #[error("stale state: {0}")]
    Stale(#[from] Stale),
    /// No job with this id.
    #[error("job {0} not found")]
    JobNotFound(JobId),
    /// The job has no task with this id.
    #[error("job {job} has no task {task}")]
    NoSuchTask {
        /// The job.
        job: JobId,
        /// The task asked for.
        task: TaskId,
    },
    /// The submitted graph is invalid.
    #[error("invalid task graph: {0}")]
    Graph(#[from] GraphError),
    /// The submission is invalid otherwise (e.g. the inputs frame).
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// Storage cannot take this request now (a budget is spent); it may later.
    #[error("{0}")]
    Full(String),
    /// A task reported outputs that do not fit its declaration; the report was counted as a
    /// failure of that task.
    #[error("job {job} task {task}: invalid outputs: {reason}")]
    InvalidOutputs {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// What is wrong.
        reason: String,
    },
    /// The job cannot move to the requested state.
    #[error("job {job}: invalid state transition {from} -> {to}")]
    InvalidTransition {
        /// The job.
        job: JobId,
        /// Its state.
        from: JobState,
        /// The requested state.
        to: JobState,
    },
    /// Outputs or error asked for in the wrong state.
    #[error("job {job} is {state}: {what} are only available once it is {needed}")]
    NotAvailable {
        /// The job.
        job: JobId,
        /// Its state.
        state: JobState,
        /// `"outputs"` or `"error"`.
        what: &'static str,
        /// The state that has them.
        needed: JobState,
    },
    /// No execution manager with this id.
    #[error("execution manager {0} not found")]
    UnknownExecutionManager(ExecutionManagerId),
    /// The execution manager was declared dead; it must register again.
    #[error("execution manager {0} is marked dead")]
    ExecutionManagerDead(ExecutionManagerId),
    /// A completion will never be stored (too large, refused by the database); its task failed.
    #[error("job {job} task {task}: completion not stored: {reason}")]
    Persist {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// Why.
        reason: Refused,
    },
    /// The service is shutting down.
    #[error("storage is shutting down")]
    Stopping,
    /// The database failed (or refused the operation).
    #[error(transparent)]
    Db(DbError),
}

impl Error {
    /// Whether the same call may succeed later: the database refused it transiently or could
    /// not be reached, or storage is stopping.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Db(e) => e.is_transient(),
            Self::Stopping => true,
            _ => false,
        }
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::JobNotFound(job) => Self::JobNotFound(job),
            DbError::InvalidTransition { job, from, to } => {
                Self::InvalidTransition { job, from, to }
            }
            DbError::UnknownExecutionManager(em) => Self::UnknownExecutionManager(em),
            DbError::ExecutionManagerDead(em) => Self::ExecutionManagerDead(em),
            other => Self::Db(other),
        }
    }
}

/// An expected race: the request came too late (or too early) for the task or job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// The job is not in the state the task kind runs in.
    #[error("job {job} is {state}, task {task} does not run now")]
    JobNotRunning {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// The job's state.
        state: JobState,
    },
    /// The task already finished.
    #[error("job {job} task {task} is already {state}")]
    TaskTerminated {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// Its state.
        state: TaskState,
    },
    /// The task's parents have not all succeeded yet.
    #[error("job {job} task {task} is not ready")]
    TaskNotReady {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
    },
    /// As many instances as the policy allows are running.
    #[error("job {job} task {task} already runs {max} instance(s)")]
    InstanceLimit {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// `max_instances`.
        max: u32,
    },
    /// The instance is not (or no longer) registered for the task.
    #[error("job {job} task {task} has no live instance {instance}")]
    UnknownInstance {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// The instance.
        instance: TaskInstanceId,
    },
}

/// Result of a storage call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
