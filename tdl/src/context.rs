//! `TaskContext`: what a task knows about the job it runs in. Travels as MessagePack, apart from
//! the input frame.

use serde::{Deserialize, Serialize};

use crate::error::TdlError;
use crate::frame;
use crate::ids::{JobId, ResourceGroupId, TaskInstanceId};

/// Which task of a job is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskId {
    /// A regular task, by its index in the graph.
    Index(u64),
    /// The job's commit task (runs after every task succeeded; sees the job outputs).
    Commit,
    /// The job's cleanup task (runs after a cancel).
    Cleanup,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Index(i) => write!(f, "{i}"),
            Self::Commit => f.write_str("commit"),
            Self::Cleanup => f.write_str("cleanup"),
        }
    }
}

/// The context a task runs in.
///
/// Job outputs are present for the commit task and only for it; the constructors and the decoder
/// enforce that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskContext {
    /// The job the task belongs to.
    pub job_id: JobId,
    /// Which task of the job this is.
    pub task_id: TaskId,
    /// This attempt.
    pub task_instance_id: TaskInstanceId,
    /// The job's resource group.
    pub resource_group_id: ResourceGroupId,
    job_outputs: Option<Vec<Vec<u8>>>,
}

impl TaskContext {
    /// The context of a regular or cleanup task.
    ///
    /// # Errors
    /// [`TdlError::InvalidContext`] if `task_id` is [`TaskId::Commit`] (use [`TaskContext::commit`]).
    pub fn new(
        job_id: JobId,
        task_id: TaskId,
        task_instance_id: TaskInstanceId,
        resource_group_id: ResourceGroupId,
    ) -> Result<Self, TdlError> {
        let ctx = Self {
            job_id,
            task_id,
            task_instance_id,
            resource_group_id,
            job_outputs: None,
        };
        ctx.validate()?;
        Ok(ctx)
    }

    /// The context of a commit task, carrying the job outputs (each one MessagePack value).
    #[must_use]
    pub fn commit(
        job_id: JobId,
        task_instance_id: TaskInstanceId,
        resource_group_id: ResourceGroupId,
        job_outputs: Vec<Vec<u8>>,
    ) -> Self {
        Self {
            job_id,
            task_id: TaskId::Commit,
            task_instance_id,
            resource_group_id,
            job_outputs: Some(job_outputs),
        }
    }

    /// A context for running one task by hand (ids all zero, task index 0).
    #[must_use]
    pub fn standalone() -> Self {
        Self {
            job_id: JobId(0),
            task_id: TaskId::Index(0),
            task_instance_id: TaskInstanceId(0),
            resource_group_id: ResourceGroupId(0),
            job_outputs: None,
        }
    }

    /// The job outputs as raw MessagePack values; `Some` exactly for the commit task.
    #[must_use]
    pub fn job_outputs(&self) -> Option<&[Vec<u8>]> {
        self.job_outputs.as_deref()
    }

    /// The job outputs decoded as `T` (commit task only).
    ///
    /// # Errors
    /// [`TdlError::InvalidContext`] when this is not the commit task, [`TdlError::Deserialization`]
    /// when an output is not a `T`.
    pub fn job_output_values<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, TdlError> {
        let outputs = self.job_outputs.as_ref().ok_or_else(|| {
            TdlError::InvalidContext("job outputs are only given to the commit task".into())
        })?;
        outputs
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                frame::value(bytes, i)
                    .map_err(|e| TdlError::Deserialization(format!("job output {e}")))
            })
            .collect()
    }

    /// Encodes the context as MessagePack.
    #[must_use]
    pub fn to_msgpack(&self) -> Vec<u8> {
        // A struct of integers and byte vectors always encodes.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    /// Decodes and validates a context.
    ///
    /// # Errors
    /// [`TdlError::InvalidContext`] for bytes that are not a context, or a context whose job
    /// outputs do not match its task kind.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, TdlError> {
        let ctx: Self = rmp_serde::from_slice(bytes)
            .map_err(|e| TdlError::InvalidContext(format!("undecodable context: {e}")))?;
        ctx.validate()?;
        Ok(ctx)
    }

    fn validate(&self) -> Result<(), TdlError> {
        match (self.task_id, self.job_outputs.is_some()) {
            (TaskId::Commit, false) => Err(TdlError::InvalidContext(
                "commit task context without job outputs".into(),
            )),
            (TaskId::Index(_) | TaskId::Cleanup, true) => Err(TdlError::InvalidContext(format!(
                "task {} must not carry job outputs",
                self.task_id
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ctx = TaskContext::commit(
            JobId(1),
            TaskInstanceId(2),
            ResourceGroupId(3),
            vec![vec![1], vec![]],
        );
        assert_eq!(TaskContext::from_msgpack(&ctx.to_msgpack()).unwrap(), ctx);
        let ctx = TaskContext::new(
            JobId(1),
            TaskId::Index(4),
            TaskInstanceId(2),
            ResourceGroupId(3),
        )
        .unwrap();
        assert_eq!(TaskContext::from_msgpack(&ctx.to_msgpack()).unwrap(), ctx);
    }

    #[test]
    fn outputs_only_on_commit() {
        assert!(
            TaskContext::new(
                JobId(1),
                TaskId::Commit,
                TaskInstanceId(2),
                ResourceGroupId(3)
            )
            .is_err()
        );
        let mut bad = TaskContext::standalone();
        bad.job_outputs = Some(vec![]);
        assert!(matches!(
            TaskContext::from_msgpack(&bad.to_msgpack()),
            Err(TdlError::InvalidContext(_))
        ));
        assert!(matches!(
            TaskContext::from_msgpack(b"junk"),
            Err(TdlError::InvalidContext(_))
        ));
    }

    #[test]
    fn typed_job_outputs() {
        let outs = [3i64, -1, -2]
            .iter()
            .map(|v| rmp_serde::to_vec(v).unwrap())
            .collect();
        let ctx = TaskContext::commit(JobId(1), TaskInstanceId(2), ResourceGroupId(3), outs);
        assert_eq!(ctx.job_output_values::<i64>().unwrap(), vec![3, -1, -2]);
        assert!(
            TaskContext::standalone()
                .job_output_values::<i64>()
                .is_err()
        );
    }
}
