//! Conversions between the storage types and the `silk.storage.v1` messages, request
//! validation (missing fields are `INVALID_ARGUMENT`), and [`status`]: the one place where
//! storage errors become gRPC status codes.

use silk_proto::storage as pb;

use tonic::{Code, Status};

pub use silk_core::convert::{failure_kind, invalid, pb_kind, pb_task_id, task_id, task_ref};

use crate::storage::db::{DbError, JobSummary};
use crate::storage::error::Error;
use crate::storage::job::{ExecutionContext, Progress};
use crate::storage::lanes::ReadyTask;
use silk_core::JobState;

pub use silk_core::wire::ERROR_KIND_KEY;

/// The code and stable kind name of a storage error.
#[must_use]
pub fn classify(e: &Error) -> (Code, &'static str) {
    match e {
        Error::StaleSession { .. } => (Code::Aborted, "stale-session"),
        Error::Stale(_) => (Code::FailedPrecondition, "stale-state"),
        Error::InvalidTransition { .. } => (
            Code::FailedPrecondition,
            silk_core::wire::INVALID_TRANSITION,
        ),
        Error::NotAvailable { .. } => (Code::FailedPrecondition, "not-available"),
        Error::JobNotFound(_) => (Code::NotFound, "job-not-found"),
        Error::UnknownExecutionManager(_) => (Code::NotFound, "execution-manager-not-found"),
        Error::ExecutionManagerDead(_) => (Code::PermissionDenied, "execution-manager-dead"),
        Error::NoSuchTask { .. } => (Code::InvalidArgument, "no-such-task"),
        Error::Graph(_) => (Code::InvalidArgument, "invalid-graph"),
        Error::BadRequest(_) => (Code::InvalidArgument, "bad-request"),
        Error::Full(_) => (Code::ResourceExhausted, "storage-full"),
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
/// The state a request filters on: a known, specified [`pb::JobState`] value.
pub fn requested_state(raw: i32) -> Result<JobState, Status> {
    pb::JobState::try_from(raw)
        .ok()
        .and_then(JobState::from_pb)
        .ok_or_else(|| invalid("state filter is unknown or unspecified"))
}

/// One job of a listing.
#[must_use]
pub fn pb_summary(j: JobSummary) -> pb::JobSummary {
    pb::JobSummary {
        job_id: j.id.0,
        resource_group_id: j.resource_group.0,
        state: j.state.to_pb() as i32,
        created_at_ms: j.created_at_ms,
        ended_at_ms: j.ended_at_ms,
        task_count: j.task_count,
    }
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
        state: p.state.map_or(pb::JobState::Unspecified, JobState::to_pb) as i32,
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
