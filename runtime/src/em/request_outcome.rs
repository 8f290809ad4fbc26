//! Turning an assignment plus storage's execution context into an executor request, and an
//! executor result into the outcome reported to storage (failures as readable text with their
//! kind).

use std::time::Duration;

use silk_ipc::{Execute, TaskFailure};
use silk_proto::storage as pb;
use silk_tdl::{TaskContext, TaskId, TaskInstanceId};

use super::pool::TaskSuccess;
use crate::scheduler::Assignment;
use silk_core::convert::{pb_kind, pb_task_id};

/// Hard timeout used when a task's policy sets none.
const NO_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The executor request and hard timeout of an accepted assignment.
///
/// # Errors
/// The commit task's job outputs are not a valid frame (reported as a package error).
pub fn request(
    a: &Assignment,
    ctx: &pb::ExecutionContext,
) -> Result<(Execute, Duration), TaskFailure> {
    let instance = TaskInstanceId(ctx.task_instance_id);
    let context = match a.task {
        TaskId::Commit => {
            let frame = ctx.job_outputs.as_deref().unwrap_or(&[0, 0, 0, 0]);
            let values = silk_tdl::frame::decode(frame).map_err(|e| TaskFailure::Package {
                message: format!("job outputs frame: {e}"),
            })?;
            TaskContext::commit(
                a.job,
                instance,
                a.group,
                values.iter().map(|v| v.to_vec()).collect(),
            )
        }
        task => {
            TaskContext::new(a.job, task, instance, a.group).map_err(|e| TaskFailure::Package {
                message: format!("task context: {e}"),
            })?
        }
    };
    let hard = ctx
        .policy
        .as_ref()
        .map(|p| p.hard_timeout_ms)
        .filter(|&ms| ms > 0)
        .map_or(NO_TIMEOUT, Duration::from_millis);
    let execute = Execute {
        package: ctx.package.clone(),
        function: ctx.function.clone(),
        context: context.to_msgpack(),
        inputs: ctx.inputs.clone(),
    };
    Ok((execute, hard))
}

/// The outcome report of one finished task.
#[must_use]
pub fn outcome(
    a: &Assignment,
    instance: u64,
    result: Result<TaskSuccess, TaskFailure>,
) -> pb::TaskOutcome {
    let outcome = match result {
        Ok(success) => pb::task_outcome::Outcome::Outputs(success.outputs),
        Err(failure) => {
            // Every path's failure passes here before it is logged or reported: cut its texts
            // (a no-op for those already cut where they entered).
            let failure = failure.bounded();
            if failure == TaskFailure::stopped() {
                tracing::info!(job_id = %a.job, task = %a.task, "task stopped: its job ended");
            } else {
                tracing::warn!(job_id = %a.job, task = %a.task, kind = %failure.kind(), error = %failure, "task failed");
            }
            pb::task_outcome::Outcome::Failure(pb::Failure {
                kind: pb_kind(failure.kind()).into(),
                message: failure.to_string(),
            })
        }
    };
    pb::TaskOutcome {
        task: Some(pb::TaskRef {
            job_id: a.job.0,
            task_id: Some(pb_task_id(a.task)),
        }),
        task_instance_id: instance,
        outcome: Some(outcome),
    }
}
