//! Instances lost with their execution manager (it was declared dead, or the instance's report
//! is overdue). A loss is nobody's fault at first — machines die — so the first
//! `free_losses` losses of a task cost nothing; every later one spends a retry like a failure.
//! A poison task that kills every execution manager it lands on thus fails its job (kind
//! `Crashed`, the losses named) instead of cycling through the cluster forever.

use silk_ipc::FailureKind;
use silk_tdl::{TaskId, TaskInstanceId};

use super::{FailOutcome, JobControl};
use crate::storage::db::JobError;
use crate::storage::task_state::TaskState;

impl JobControl {
    /// Drops `instance` of `task`, lost with its execution manager (`why` says how). Returns
    /// `None` when there is nothing to do (unknown instance, job past the task's phase, task
    /// finished), [`FailOutcome::Retry`] when the task is to be queued again, and
    /// [`FailOutcome::Exhausted`] when this loss spent the task's last retry.
    pub fn lose(
        &mut self,
        task: TaskId,
        instance: TaskInstanceId,
        free_losses: u32,
        why: &str,
    ) -> Option<FailOutcome> {
        let Ok(control) = self.control_mut(task) else {
            return None;
        };
        let before = control.instances.len();
        control.instances.retain(|i| *i != instance);
        if control.instances.len() == before {
            return None;
        }
        let idle = control.instances.is_empty();
        if control.state.is_terminal() || self.check_phase(task).is_err() {
            return None;
        }
        let max_retries = self.policy(task).ok()?.max_retries;
        let control = self.control_mut(task).ok()?;
        control.losses += 1;
        let losses = control.losses;
        if losses > free_losses {
            control.failures += 1;
            if control.failures > max_retries {
                let attempts = control.failures + free_losses;
                self.set_task(task, TaskState::Failed);
                let (package, function) = self.names(task).unwrap_or(("?", "?"));
                let kind = FailureKind::Crashed;
                return Some(FailOutcome::Exhausted(JobError {
                    message: format!(
                        "task {task} ({package}::{function}) failed after {attempts} attempt(s) \
                         [{kind}]: its instance was lost with its execution manager {losses} \
                         time(s), the last: {why} (losses past free_instance_losses = \
                         {free_losses} spend retries; max_retries = {max_retries})"
                    ),
                    kind,
                }));
            }
        }
        if idle
            && self
                .control(task)
                .is_ok_and(|t| t.state == TaskState::Running)
        {
            self.set_task(task, TaskState::Ready);
        }
        Some(FailOutcome::Retry)
    }
}
