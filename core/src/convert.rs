//! Conversions between the vocabulary types and their `silk.storage.v1` messages, shared by
//! every service and the client. A missing or unknown field is `INVALID_ARGUMENT`.

use silk_ipc::FailureKind;
use silk_proto::storage as pb;
use silk_tdl::{JobId, TaskId};
use tonic::Status;

/// `INVALID_ARGUMENT` saying `what`.
#[must_use]
pub fn invalid(what: &str) -> Status {
    Status::invalid_argument(what.to_owned())
}

/// A task id from the wire.
///
/// # Errors
/// `INVALID_ARGUMENT` when it is missing.
pub fn task_id(t: Option<&pb::TaskId>) -> Result<TaskId, Status> {
    match t.and_then(|t| t.kind.as_ref()) {
        Some(pb::task_id::Kind::Index(i)) => Ok(TaskId::Index(*i)),
        Some(pb::task_id::Kind::Commit(_)) => Ok(TaskId::Commit),
        Some(pb::task_id::Kind::Cleanup(_)) => Ok(TaskId::Cleanup),
        None => Err(invalid("task_id is missing")),
    }
}

/// A job and task from the wire.
///
/// # Errors
/// `INVALID_ARGUMENT` when either is missing.
pub fn task_ref(t: Option<&pb::TaskRef>) -> Result<(JobId, TaskId), Status> {
    let t = t.ok_or_else(|| invalid("task is missing"))?;
    Ok((JobId(t.job_id), task_id(t.task_id.as_ref())?))
}

/// The wire form of a task id.
#[must_use]
pub fn pb_task_id(t: TaskId) -> pb::TaskId {
    let kind = match t {
        TaskId::Index(i) => pb::task_id::Kind::Index(i),
        TaskId::Commit => pb::task_id::Kind::Commit(pb::Void {}),
        TaskId::Cleanup => pb::task_id::Kind::Cleanup(pb::Void {}),
    };
    pb::TaskId { kind: Some(kind) }
}

/// The wire form of a failure kind.
#[must_use]
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

/// A failure kind from the wire.
///
/// # Errors
/// `INVALID_ARGUMENT` when it is unknown or unspecified.
pub fn failure_kind(raw: i32) -> Result<FailureKind, Status> {
    let kind = pb::FailureKind::try_from(raw).map_err(|_| invalid("unknown failure kind"))?;
    FailureKind::ALL
        .into_iter()
        .find(|k| pb_kind(*k) == kind)
        .ok_or_else(|| invalid("failure kind is unspecified"))
}
