//! Each task's [`TaskControl`] (its state, live instances and retries) and the progress counts
//! a job publishes to watchers.

use serde::{Deserialize, Serialize};
use silk_tdl::{JobId, TaskId, TaskInstanceId};

use crate::storage::db::JobError;
use crate::storage::error::{Result, Stale};
use crate::storage::task_state::TaskState;
use silk_core::JobState;

/// One task's control block: its state, live instances and retries.
#[derive(Debug, Clone)]
pub(super) struct TaskControl {
    pub(super) state: TaskState,
    pub(super) unfinished_parents: u32,
    pub(super) instances: Vec<TaskInstanceId>,
    /// Failed instances so far (each spends a retry), lost instances past the free ones
    /// included.
    pub(super) failures: u32,
    /// Instances lost with their execution manager so far.
    pub(super) losses: u32,
}

impl TaskControl {
    /// A regular task: ready when it has no parents.
    pub(super) fn new(parents: usize) -> Self {
        let state = if parents == 0 {
            TaskState::Ready
        } else {
            TaskState::Pending
        };
        Self {
            state,
            // Parents are tasks, which number fewer than u32::MAX.
            unfinished_parents: u32::try_from(parents).unwrap_or(u32::MAX),
            instances: Vec::new(),
            failures: 0,
            losses: 0,
        }
    }

    /// A commit or cleanup task: pending until the job enters its phase.
    pub(super) fn termination() -> Self {
        Self {
            state: TaskState::Pending,
            unfinished_parents: 0,
            instances: Vec::new(),
            failures: 0,
            losses: 0,
        }
    }

    /// Whether one more instance may register.
    pub(super) fn admit(&self, job: JobId, task: TaskId, max_instances: u32) -> Result<()> {
        match self.state {
            TaskState::Ready | TaskState::Running => {}
            TaskState::Pending => return Err(Stale::TaskNotReady { job, task }.into()),
            state => return Err(Stale::TaskTerminated { job, task, state }.into()),
        }
        if self.instances.len() >= max_instances as usize {
            return Err(Stale::InstanceLimit {
                job,
                task,
                max: max_instances,
            }
            .into());
        }
        Ok(())
    }

    /// Whether `instance` is a live instance of this (non-terminal) task.
    pub(super) fn check_instance(
        &self,
        job: JobId,
        task: TaskId,
        instance: TaskInstanceId,
    ) -> Result<()> {
        if self.state.is_terminal() {
            return Err(Stale::TaskTerminated {
                job,
                task,
                state: self.state,
            }
            .into());
        }
        if !self.instances.contains(&instance) {
            return Err(Stale::UnknownInstance {
                job,
                task,
                instance,
            }
            .into());
        }
        Ok(())
    }
}

/// What a failed instance did to its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOutcome {
    /// A retry was spent; the task is queued again.
    Retry,
    /// No retry left: the job fails with this error.
    Exhausted(JobError),
}

/// A job's progress: its state and its regular tasks counted by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The job state (`None` only in `Default`).
    pub state: Option<JobState>,
    /// Tasks waiting for parents.
    pub pending: u64,
    /// Tasks that may be scheduled.
    pub ready: u64,
    /// Tasks with a live instance.
    pub running: u64,
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Tasks that ran out of retries.
    pub failed: u64,
    /// Tasks cancelled with their job.
    pub cancelled: u64,
    /// Succeeded tasks whose outputs are persisted.
    pub persisted: u64,
    /// Regular tasks of the job (the counts by state add up to it).
    pub total: u64,
}

impl Progress {
    pub(super) fn new(state: JobState, tasks: &[TaskControl]) -> Self {
        let mut p = Self {
            state: Some(state),
            total: tasks.len() as u64,
            ..Self::default()
        };
        for t in tasks {
            *p.slot(t.state) += 1;
        }
        p
    }

    /// The progress of a job known only from its database row (terminal and no longer cached):
    /// every task counts as succeeded if the job succeeded, else as cancelled.
    #[must_use]
    pub fn stored(state: JobState, total: u64) -> Self {
        let mut p = Self {
            state: Some(state),
            total,
            ..Self::default()
        };
        if state == JobState::Succeeded {
            p.succeeded = total;
            p.persisted = total;
        } else {
            p.cancelled = total;
        }
        p
    }

    fn slot(&mut self, state: TaskState) -> &mut u64 {
        match state {
            TaskState::Pending => &mut self.pending,
            TaskState::Ready => &mut self.ready,
            TaskState::Running => &mut self.running,
            TaskState::Succeeded => &mut self.succeeded,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        }
    }

    pub(super) fn moved(&mut self, from: TaskState, to: TaskState) {
        let f = self.slot(from);
        *f = f.saturating_sub(1);
        *self.slot(to) += 1;
    }

    /// Whether the job is in a terminal state.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        self.state.is_some_and(JobState::is_terminal)
    }
}
