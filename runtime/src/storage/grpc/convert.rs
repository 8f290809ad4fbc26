//! Conversions between the storage types and the `silk.storage.v1` messages, request
//! validation (missing fields are `INVALID_ARGUMENT`), and [`status`]: the one place where
//! storage errors become gRPC status codes.

use silk_ipc::FailureKind;
use silk_proto::storage as pb;
use silk_tdl::{JobId, TaskId};
use tonic::{Code, Status};

use crate::storage::db::{DbError, JobSummary};
use crate::storage::error::Error;
use crate::storage::job::{ExecutionContext, Progress};
use crate::storage::lanes::ReadyTask;
use crate::storage::state::JobState;

/// Metadata key naming the exact error kind.
pub const ERROR_KIND_KEY: &str = "x-silk-error";

/// The code and stable kind name of a storage error.
#[must_use]
pub fn classify(e: &Error) -> (Code, &'static str) {
    match e {
        Error::StaleSession { .. } => (Code::Aborted, "stale-session"),
        Error::Stale(_) => (Code::FailedPrecondition, "stale-state"),
        Error::InvalidTransition { .. } => (Code::FailedPrecondition, "invalid-transition"),
        Error::NotAvailable { .. } => (Code::FailedPrecondition, "not-available"),
        Error::JobNotFound(_) => (Code::NotFound, "job-not-found"),
        Error::UnknownExecutionManager(_) => (Code::NotFound, "execution-manager-not-found"),
        Error::ExecutionManagerDead(_) => (Code::PermissionDenied, "execution-manager-dead"),
        Error::NoSuchTask { .. } => (Code::InvalidArgument, "no-such-task"),
        Error::Graph(_) => (Code::InvalidArgument, "invalid-graph"),
        Error::BadRequest(_) => (Code::InvalidArgument, "bad-request"),
        Error::InvalidOutputs { .. } => (Code::InvalidArgument, "invalid-outputs"),
        Error::Stopping => (Code::Unavailable, "stopping"),
        Error::Persist { .. } => (Code::InvalidArgument, "completion-refused"),
        Error::Db(db) => match db {
            DbError::HashBusy => (Code::Unavailable, "secret-checks-busy"),
            _ if db.is_transient() => (Code::Unavailable, "database-unavailable"),
            DbError::ResourceGroupNotFound(_) => {
                (Code::Unauthenticated, "resource-group-not-found")
            }
            DbError::InvalidSecret(_) => (Code::Unauthenticated, "invalid-secret"),
            DbError::ResourceGroupExists(_) => (Code::AlreadyExists, "resource-group-exists"),
            _ => (Code::Internal, "database"),
        },
    }
}

/// The gRPC status of a storage error (the only mapping; see the `.proto` header).
#[must_use]
pub fn status(e: &Error) -> Status {
    let (code, kind) = classify(e);
    if code == Code::Internal {
        tracing::error!(error = %e, "storage request failed");
    }
    let mut status = Status::new(code, e.to_string());
    if let Ok(value) = kind.parse() {
        status.metadata_mut().insert(ERROR_KIND_KEY, value);
    }
    status
}

/// The per-item error of a batched call.
#[must_use]
pub fn item_error(e: &Error) -> pb::ItemError {
    let (code, kind) = classify(e);
    pb::ItemError {
        code: code as i32,
        message: e.to_string(),
        kind: kind.to_owned(),
    }
}

/// A missing or invalid request field.
pub fn invalid(what: &str) -> Status {
    Status::invalid_argument(what.to_owned())
}

pub fn task_id(t: Option<&pb::TaskId>) -> Result<TaskId, Status> {
    match t.and_then(|t| t.kind.as_ref()) {
        Some(pb::task_id::Kind::Index(i)) => Ok(TaskId::Index(*i)),
        Some(pb::task_id::Kind::Commit(_)) => Ok(TaskId::Commit),
        Some(pb::task_id::Kind::Cleanup(_)) => Ok(TaskId::Cleanup),
        None => Err(invalid("task_id is missing")),
    }
}

pub fn task_ref(t: Option<&pb::TaskRef>) -> Result<(JobId, TaskId), Status> {
    let t = t.ok_or_else(|| invalid("task is missing"))?;
    Ok((JobId(t.job_id), task_id(t.task_id.as_ref())?))
}

pub fn pb_task_id(t: TaskId) -> pb::TaskId {
    let kind = match t {
        TaskId::Index(i) => pb::task_id::Kind::Index(i),
        TaskId::Commit => pb::task_id::Kind::Commit(pb::Void {}),
        TaskId::Cleanup => pb::task_id::Kind::Cleanup(pb::Void {}),
    };
    pb::TaskId { kind: Some(kind) }
}

pub fn pb_state(s: JobState) -> pb::JobState {
    match s {
        JobState::Ready => pb::JobState::Ready,
        JobState::Running => pb::JobState::Running,
        JobState::CommitReady => pb::JobState::CommitReady,
        JobState::CleanupReady => pb::JobState::CleanupReady,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
    }
}

/// The storage state of a wire state (`None` for unspecified).
#[must_use]
pub fn job_state(s: pb::JobState) -> Option<JobState> {
    JobState::ALL.into_iter().find(|x| pb_state(*x) == s)
}

/// The state a request filters on: a known, specified [`pb::JobState`] value.
pub fn requested_state(raw: i32) -> Result<JobState, Status> {
    pb::JobState::try_from(raw)
        .ok()
        .and_then(job_state)
        .ok_or_else(|| invalid("state filter is unknown or unspecified"))
}

/// One job of a listing.
#[must_use]
pub fn pb_summary(j: JobSummary) -> pb::JobSummary {
    pb::JobSummary {
        job_id: j.id.0,
        resource_group_id: j.resource_group.0,
        state: pb_state(j.state) as i32,
        created_at_ms: j.created_at_ms,
        ended_at_ms: j.ended_at_ms,
        task_count: j.task_count,
    }
}

pub fn pb_kind(k: FailureKind) -> pb::FailureKind {
    match k {
        FailureKind::TaskError => pb::FailureKind::TaskError,
        FailureKind::Panicked => pb::FailureKind::Panicked,
        FailureKind::Crashed => pb::FailureKind::Crashed,
        FailureKind::Timeout => pb::FailureKind::Timeout,
        FailureKind::OutOfFuel => pb::FailureKind::OutOfFuel,
        FailureKind::MemoryLimit => pb::FailureKind::MemoryLimit,
        FailureKind::Trap => pb::FailureKind::Trap,
        FailureKind::PackageError => pb::FailureKind::PackageError,
        FailureKind::OutputTooLarge => pb::FailureKind::OutputTooLarge,
    }
}

pub fn failure_kind(raw: i32) -> Result<FailureKind, Status> {
    let kind = pb::FailureKind::try_from(raw).map_err(|_| invalid("unknown failure kind"))?;
    FailureKind::ALL
        .into_iter()
        .find(|k| pb_kind(*k) == kind)
        .ok_or_else(|| invalid("failure kind is unspecified"))
}

pub fn pb_context(c: ExecutionContext) -> pb::ExecutionContext {
    pb::ExecutionContext {
        task_instance_id: c.instance.0,
        package: c.package,
        function: c.function,
        policy: Some(pb::Policy {
            max_retries: c.policy.max_retries,
            max_instances: c.policy.max_instances,
            soft_timeout_ms: c.policy.soft_timeout_ms,
            hard_timeout_ms: c.policy.hard_timeout_ms,
        }),
        inputs: c.inputs,
        job_outputs: c.job_outputs,
    }
}

pub fn pb_progress(p: Progress) -> pb::JobProgress {
    pb::JobProgress {
        state: p.state.map_or(pb::JobState::Unspecified, pb_state) as i32,
        pending: p.pending,
        ready: p.ready,
        running: p.running,
        succeeded: p.succeeded,
        failed: p.failed,
        cancelled: p.cancelled,
        total: p.total,
    }
}

pub fn pb_ready(r: ReadyTask) -> pb::ReadyTask {
    pb::ReadyTask {
        resource_group_id: r.group.0,
        job_id: r.job.0,
        task_id: Some(pb_task_id(r.task)),
    }
}
