//! The job's phase in a [`JobControl`]: applying accepted job state transitions (and what they
//! do to the tasks), the tasks ready to queue in each phase, the job outputs, and rebuilding a
//! job from the database after a restart.

use silk_tdl::TaskId;

use std::sync::Arc;

use super::{JobControl, Output, Part, decode_outputs};
use crate::storage::error::{Error, Result};
use crate::storage::task_state::TaskState;
use silk_core::JobState;
use silk_core::graph::JobGraph;

impl JobControl {
    /// Recovery of a job past its regular tasks: marks them all succeeded.
    pub fn mark_tasks_done(&mut self) {
        for i in 0..self.tasks.len() {
            self.set_task(TaskId::Index(i as u64), TaskState::Succeeded);
        }
        self.progress.persisted = self.tasks.len() as u64;
    }

    /// The job outputs frame from the outputs of the tasks without children, or the parts to
    /// assemble it from when some are only in the database.
    ///
    /// # Errors
    /// [`Error::BadRequest`] if an output is missing (not every task succeeded).
    pub fn collect_outputs(&self) -> Result<std::result::Result<Vec<u8>, Vec<Part>>> {
        self.frame_or_parts(self.graph.job_outputs())
            .ok_or_else(|| Error::BadRequest("job outputs are not complete".into()))?
    }

    /// Applies a transition the database accepted. Leaving `Running` cancels every unfinished
    /// regular task; entering `CommitReady` / `CleanupReady` readies the termination task.
    pub fn set_state(&mut self, to: JobState, job_outputs: Option<Vec<u8>>, now_ms: i64) {
        self.state = to;
        self.progress.state = Some(to);
        if job_outputs.is_some() {
            self.job_outputs = job_outputs;
        }
        if to != JobState::Running && to != JobState::Ready {
            // No regular task runs again: their outputs are only read from the database now.
            self.outputs.iter_mut().for_each(Output::evict);
            for i in 0..self.tasks.len() {
                if !self.tasks[i].state.is_terminal() {
                    self.tasks[i].instances.clear();
                    self.set_task(TaskId::Index(i as u64), TaskState::Cancelled);
                }
            }
        }
        for (task, active) in [
            (TaskId::Commit, JobState::CommitReady),
            (TaskId::Cleanup, JobState::CleanupReady),
        ] {
            if let Ok(control) = self.control_mut(task) {
                if to == active {
                    self.set_task(task, TaskState::Ready);
                } else if !control.state.is_terminal() && control.state != TaskState::Pending {
                    control.instances.clear();
                    self.set_task(task, TaskState::Cancelled);
                }
            }
        }
        if to.is_terminal() {
            self.ended_at_ms = Some(now_ms);
            self.shed();
        }
    }

    /// Drops what only a running job needs — its graph, every task's control and outputs, its
    /// inputs and outputs frames — as it ends: its rows stay in the database, which answers for
    /// its outputs and error; memory keeps its state and progress counts for watchers until
    /// retention ends.
    fn shed(&mut self) {
        self.graph = JobGraph::default();
        self.tasks = Vec::new();
        self.outputs = Vec::new();
        self.unread_by = Vec::new();
        self.input_offsets = Vec::new();
        self.job_inputs = Vec::new();
        self.job_outputs = None;
        self.commit = None;
        self.cleanup = None;
        self.memory = None;
    }

    /// Restores a completion read from the database (recovery of a running job).
    ///
    /// # Errors
    /// [`Error::BadRequest`] if the stored frame does not fit the task.
    pub fn restore_completion(&mut self, index: u64, outputs: &[u8]) -> Result<()> {
        let task = TaskId::Index(index);
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        let declared = self.control(task).map(|_| self.graph.output_count(i))?;
        let values =
            decode_outputs(Arc::new(outputs.to_vec()), declared).map_err(Error::BadRequest)?;
        self.outputs[i] = if self.unread_by[i] == 0 && !self.graph.children(i).is_empty() {
            Output::Stored
        } else {
            Output::keep(values, &self.budget)
        };
        self.set_task(task, TaskState::Succeeded);
        self.progress.persisted += 1;
        self.read_parents(i);
        for at in 0..self.graph.children(i).len() {
            let control = &mut self.tasks[self.graph.children(i)[at] as usize];
            control.unfinished_parents = control.unfinished_parents.saturating_sub(1);
        }
        Ok(())
    }

    /// After restoring completions: every pending task whose parents all succeeded is ready.
    pub fn settle_ready(&mut self) {
        for i in 0..self.tasks.len() {
            if self.tasks[i].state == TaskState::Pending && self.tasks[i].unfinished_parents == 0 {
                self.set_task(TaskId::Index(i as u64), TaskState::Ready);
            }
        }
    }

    /// The tasks that may be scheduled now, for the inbound queues.
    #[must_use]
    pub fn ready_tasks(&self) -> Vec<TaskId> {
        match self.state {
            JobState::Running => (0..self.tasks.len())
                .filter(|&i| self.tasks[i].state == TaskState::Ready)
                .map(|i| TaskId::Index(i as u64))
                .collect(),
            JobState::CommitReady
                if self
                    .commit
                    .as_ref()
                    .is_some_and(|t| t.state == TaskState::Ready) =>
            {
                vec![TaskId::Commit]
            }
            JobState::CleanupReady
                if self
                    .cleanup
                    .as_ref()
                    .is_some_and(|t| t.state == TaskState::Ready) =>
            {
                vec![TaskId::Cleanup]
            }
            _ => Vec::new(),
        }
    }
}
