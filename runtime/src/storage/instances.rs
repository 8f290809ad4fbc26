//! Task instances: registration (hands out inputs and policy), success and failure reports.
//! Every call is fenced by the session. A success is acknowledged only once its outputs are
//! persisted (group commit); only then are the task's children released, so a restart never
//! loses a finished task nor runs it twice. Outputs that do not fit the task's declaration fail
//! that task readably — they never take the service down.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use silk_ipc::FailureKind;
use silk_tdl::{JobId, TaskId, TaskInstanceId};

use super::db::{Completion, Db};
use super::error::{Error, Result, Stale};
use super::ids::{ExecutionManagerId, SessionId};
use super::job::{ExecutionContext, FailOutcome};
use super::service::{Job, Storage};
use super::state::JobState;
use super::{lock, now_ms};

/// A live instance, tracked for dead-EM recovery and soft timeouts.
#[derive(Debug, Clone, Copy)]
pub(super) struct InstanceEntry {
    pub(super) job: JobId,
    pub(super) task: TaskId,
    pub(super) em: ExecutionManagerId,
    pub(super) soft_deadline_ms: i64,
    pub(super) soft_handled: bool,
    /// Past this, the instance's report is taken as lost.
    pub(super) expires_at_ms: i64,
}

impl<D: Db + Clone> Storage<D> {
    pub(super) fn check_session(&self, session: SessionId) -> Result<()> {
        let current = self.shared.session;
        if session == current {
            Ok(())
        } else {
            Err(Error::StaleSession {
                got: session,
                current,
            })
        }
    }

    /// The cached job an instance call is about; a job only in the database is over (stale).
    async fn running_job(&self, id: JobId, task: TaskId) -> Result<Arc<Job>> {
        if let Some(job) = self.cached(id) {
            return Ok(job);
        }
        let row = self.shared.db.job(id).await?;
        Err(Stale::JobNotRunning {
            job: id,
            task,
            state: row.state,
        }
        .into())
    }

    /// Registers an instance of `task` on execution manager `em` and returns what it needs.
    ///
    /// # Errors
    /// [`Error::StaleSession`], [`Error::JobNotFound`], [`Error::NoSuchTask`], [`Stale`]
    /// (terminal or not-ready task, instance limit, job not in the task's phase),
    /// [`Error::UnknownExecutionManager`], [`Error::ExecutionManagerDead`] (the task is queued
    /// again).
    pub async fn register_instance(
        &self,
        session: SessionId,
        job_id: JobId,
        task: TaskId,
        em: ExecutionManagerId,
    ) -> Result<ExecutionContext> {
        self.check_session(session)?;
        let job = self.running_job(job_id, task).await?;
        if !self.em_alive(em).await? {
            if job.with(|c| c.wants_more(task)) {
                self.shared.lanes.push(job.group, job.id, &[task]);
            }
            return Err(Error::ExecutionManagerDead(em));
        }
        let instance = TaskInstanceId(self.shared.next_instance.fetch_add(1, Ordering::Relaxed));
        let mut ctx = job.with(|c| c.register(task, instance))?;
        if let Some(parts) = ctx.unresolved.take() {
            match self.assemble(job_id, &parts).await {
                Ok(inputs) => ctx.inputs = inputs,
                Err(e) => {
                    if job.with(|c| c.force_remove(task, instance)) {
                        self.shared.lanes.push(job.group, job.id, &[task]);
                    }
                    return Err(e);
                }
            }
        }
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let now = now_ms();
        let lost_after = ms(ctx.policy.hard_timeout_ms)
            .saturating_add(ms(self.shared.config.lost_report_grace_ms));
        lock(&self.shared.instances).insert(
            instance,
            InstanceEntry {
                job: job_id,
                task,
                em,
                soft_deadline_ms: now.saturating_add(ms(ctx.policy.soft_timeout_ms)),
                soft_handled: false,
                expires_at_ms: now.saturating_add(lost_after),
            },
        );
        tracing::debug!(job_id = job_id.0, %task, instance = instance.0, em_id = em.0, "instance registered");
        Ok(ctx)
    }

    /// Takes back an instance registered a moment ago that could not be handed out (its
    /// registration response had no room for it): it is dropped without spending a retry and
    /// its task is queued again.
    pub fn release_instance(&self, job_id: JobId, task: TaskId, instance: TaskInstanceId) {
        lock(&self.shared.instances).remove(&instance);
        if let Some(job) = self.cached(job_id)
            && job.with(|c| c.force_remove(task, instance))
        {
            self.shared.lanes.push(job.group, job.id, &[task]);
        }
        tracing::debug!(job_id = job_id.0, %task, instance = instance.0, "instance released: registration response full");
    }

    /// Reports a successful instance with its outputs frame (ignored for commit and cleanup).
    ///
    /// # Errors
    /// As [`Self::register_instance`]; [`Error::InvalidOutputs`] when the frame is malformed or
    /// holds the wrong number of values — the instance then counts as failed (kind `TaskError`);
    /// [`Error::Persist`] if the completion could not be stored (the task is queued again).
    pub async fn report_success(
        &self,
        session: SessionId,
        job_id: JobId,
        task: TaskId,
        instance: TaskInstanceId,
        outputs: Vec<u8>,
    ) -> Result<()> {
        self.check_session(session)?;
        let job = self.running_job(job_id, task).await?;
        let values = match job.with(|c| c.check_success(task, instance, &outputs))? {
            Ok(values) => values,
            Err(reason) => {
                let message = format!("invalid outputs: {reason}");
                self.fail_instance(&job, task, instance, FailureKind::TaskError, &message)
                    .await?;
                return Err(Error::InvalidOutputs {
                    job: job_id,
                    task,
                    reason,
                });
            }
        };
        job.with(|c| c.succeed(task, instance, values))?;
        lock(&self.shared.instances).remove(&instance);
        tracing::debug!(job_id = job_id.0, %task, instance = instance.0, "task succeeded");
        let TaskId::Index(index) = task else {
            let to = if task == TaskId::Commit {
                JobState::Succeeded
            } else {
                JobState::Cancelled
            };
            self.transition(&job, to, None, None).await?;
            return Ok(());
        };
        let completion = Completion {
            job: job_id,
            task: index,
            outputs,
        };
        if let Err(e) = self.shared.persister.persist(completion).await {
            let requeue = job.with(|c| c.revert_success(index));
            if requeue {
                self.shared.lanes.push(job.group, job.id, &[task]);
            }
            return Err(e);
        }
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        let (ready, done) = job.with(|c| {
            let ready = c.release_children(i);
            (
                ready,
                c.all_tasks_persisted() && c.state() == JobState::Running,
            )
        });
        self.shared.lanes.push(job.group, job.id, &ready);
        if done {
            self.finish_job(&job).await?;
        }
        Ok(())
    }

    /// Reports a failed instance. Spends a retry (the task is queued again) or fails the job
    /// with readable text carrying `kind`.
    ///
    /// # Errors
    /// As [`Self::register_instance`].
    pub async fn report_failure(
        &self,
        session: SessionId,
        job_id: JobId,
        task: TaskId,
        instance: TaskInstanceId,
        kind: FailureKind,
        message: &str,
    ) -> Result<()> {
        self.check_session(session)?;
        let job = self.running_job(job_id, task).await?;
        self.fail_instance(&job, task, instance, kind, message)
            .await
    }

    async fn fail_instance(
        &self,
        job: &Arc<Job>,
        task: TaskId,
        instance: TaskInstanceId,
        kind: FailureKind,
        message: &str,
    ) -> Result<()> {
        let outcome = job.with(|c| c.fail(task, instance, kind, message))?;
        lock(&self.shared.instances).remove(&instance);
        tracing::debug!(job_id = job.id.0, %task, instance = instance.0, %kind, message, "task instance failed");
        match outcome {
            FailOutcome::Retry => {
                self.shared.lanes.push(job.group, job.id, &[task]);
                Ok(())
            }
            FailOutcome::Exhausted(error) => match self
                .transition(job, JobState::Failed, None, Some(error))
                .await
            {
                Ok(_) | Err(Error::InvalidTransition { .. }) => Ok(()),
                Err(e) => Err(e),
            },
        }
    }
}
