//! Task instances: registration (hands out inputs and policy), success and failure reports.
//! Every call is fenced by the session. A success is acknowledged only once its outputs are
//! persisted (group commit); only then are the task's children released, so a restart never
//! loses a finished task nor runs it twice. Outputs that do not fit the task's declaration fail
//! that task readably — they never take the service down.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use silk_ipc::FailureKind;
use silk_tdl::{JobId, TaskId, TaskInstanceId};

use super::db::{Completion, Db, JobError};
use super::error::{Error, Result, Stale};
use super::job::{ExecutionContext, FailOutcome, Values, decode_outputs};
use super::lock;
use super::persist::Refused;
use super::service::{Job, Storage};
use silk_core::JobState;
use silk_core::ids::{ExecutionManagerId, SessionId};

/// Outputs up to this size are checked on the calling task (microseconds); larger ones on the
/// blocking pool.
const CHECK_INLINE_BYTES: usize = 64 << 10;

/// A live instance, tracked for dead-EM recovery and soft timeouts. Deadlines are on the
/// session timeline (see [`super::clock`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct InstanceEntry {
    pub(super) job: JobId,
    pub(super) task: TaskId,
    pub(super) em: ExecutionManagerId,
    pub(super) soft_deadline_ms: i64,
    pub(super) soft_handled: bool,
    /// Past this, the instance's report is taken as lost.
    pub(super) expires_at_ms: i64,
    /// The assignment it was registered for, if the EM named one.
    pub(super) key: Option<RegistrationKey>,
}

/// One hand-out of a task to an execution manager: the EM, the scheduler that issued the
/// assignment and the assignment's id (unique per scheduler).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegistrationKey {
    /// The execution manager.
    pub em: ExecutionManagerId,
    /// The issuing scheduler.
    pub scheduler: u64,
    /// The assignment.
    pub assignment: u64,
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

    /// Forgets a live instance (reported, failed or lost); returns its entry.
    pub(super) fn forget_instance(&self, instance: TaskInstanceId) -> Option<InstanceEntry> {
        let entry = lock(&self.shared.instances).remove(&instance)?;
        if let Some(key) = entry.key {
            lock(&self.shared.registrations).remove(&key);
        }
        Some(entry)
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
        self.register_assigned(session, job_id, task, em, None)
            .await
    }

    /// As [`Self::register_instance`], for the assignment `key` names: while the instance
    /// registered for that assignment lives, registering it again returns that same instance
    /// (a retry after a lost answer), never a second one or an instance-limit rejection.
    ///
    /// # Errors
    /// As [`Self::register_instance`].
    pub async fn register_assigned(
        &self,
        session: SessionId,
        job_id: JobId,
        task: TaskId,
        em: ExecutionManagerId,
        key: Option<RegistrationKey>,
    ) -> Result<ExecutionContext> {
        let start = self.traces().now();
        self.check_session(session)?;
        let job = self.running_job(job_id, task).await?;
        if !self.em_alive(em).await? {
            if job.with(|c| c.wants_more(task)) {
                self.shared.lanes.push(job.group, job.id, &[task]);
            }
            return Err(Error::ExecutionManagerDead(em));
        }
        let known = key.and_then(|k| lock(&self.shared.registrations).get(&k).copied());
        let (instance, mut ctx) = match known {
            Some((known_job, instance)) if known_job == job_id => {
                let ctx = job.with(|c| c.registered_again(task, instance))?;
                tracing::info!(job_id = job_id.0, %task, instance = instance.0, em_id = em.0, "instance registered again (retried registration)");
                (instance, ctx)
            }
            _ => {
                let instance =
                    TaskInstanceId(self.shared.next_instance.fetch_add(1, Ordering::Relaxed));
                (instance, job.with(|c| c.register(task, instance))?)
            }
        };
        if let Some(parts) = ctx.unresolved.take() {
            match self.assemble(job_id, &parts).await {
                Ok(inputs) => ctx.inputs = inputs,
                Err(e) => {
                    self.forget_instance(instance);
                    if job.with(|c| c.force_remove(task, instance)) {
                        self.shared.lanes.push(job.group, job.id, &[task]);
                    }
                    return Err(e);
                }
            }
        }
        if known.is_some() {
            return Ok(ctx);
        }
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let now = self.shared.clock.session_ms();
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
                key,
            },
        );
        if let Some(k) = key {
            lock(&self.shared.registrations).insert(k, (job_id, instance));
        }
        let counters = &self.shared.counters;
        counters.instances_registered.inc();
        counters.input_bytes.inc_by(ctx.inputs.len() as u64);
        tracing::debug!(job_id = job_id.0, %task, instance = instance.0, em_id = em.0, "instance registered");
        self.trace_registered(
            start,
            job_id,
            task,
            instance,
            em,
            &ctx.package,
            &ctx.function,
        );
        Ok(ctx)
    }

    /// Takes back an instance registered a moment ago that could not be handed out (its
    /// registration response had no room for it): it is dropped without spending a retry and
    /// its task is queued again.
    pub fn release_instance(&self, job_id: JobId, task: TaskId, instance: TaskInstanceId) {
        // Its assignment's registration goes too: a retry registers afresh.
        self.forget_instance(instance);
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
    /// [`Error::Persist`] if the completion will never be stored (its job failed, e.g. with
    /// `OutputTooLarge`); [`Error::Stopping`] (the task is queued again).
    pub async fn report_success(
        &self,
        session: SessionId,
        job_id: JobId,
        task: TaskId,
        instance: TaskInstanceId,
        outputs: Vec<u8>,
    ) -> Result<()> {
        let start = self.traces().now();
        self.check_session(session)?;
        let job = self.running_job(job_id, task).await?;
        let outputs = Arc::new(outputs);
        let checked = match job.with(|c| c.declared_outputs(task, instance))? {
            None => Ok(Values::default()),
            Some(declared) if outputs.len() <= CHECK_INLINE_BYTES => {
                decode_outputs(outputs.clone(), declared)
            }
            // Checking walks every byte: not on an async worker for large outputs.
            Some(declared) => {
                let frame = outputs.clone();
                tokio::task::spawn_blocking(move || decode_outputs(frame, declared))
                    .await
                    .map_err(|e| Error::BadRequest(format!("checking outputs panicked: {e}")))?
            }
        };
        let values = match checked {
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
        self.forget_instance(instance);
        let counters = &self.shared.counters;
        counters.reports_succeeded.inc();
        counters.output_bytes.inc_by(outputs.len() as u64);
        tracing::debug!(job_id = job_id.0, %task, instance = instance.0, "task succeeded");
        let TaskId::Index(index) = task else {
            self.trace_persisted(start, job_id, task, instance, None);
            let to = if task == TaskId::Commit {
                JobState::Succeeded
            } else {
                JobState::Cancelled
            };
            self.settle(&job, to, None).await?;
            return Ok(());
        };
        let completion = Completion {
            job: job_id,
            task: index,
            outputs,
        };
        if let Err(reason) = self.shared.persister.persist(completion).await {
            return self.completion_refused(&job, task, index, reason).await;
        }
        self.trace_persisted(start, job_id, task, instance, None);
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

    /// The completion of `task` was not stored. Stopping: the task is ready again (the next
    /// session runs it). Refused for good: the task fails its job at once — `OutputTooLarge`
    /// when the outputs were too large, naming the limit — and is not run again.
    async fn completion_refused(
        &self,
        job: &Arc<Job>,
        task: TaskId,
        index: u64,
        reason: Refused,
    ) -> Result<()> {
        let requeue = job.with(|c| c.revert_success(index));
        if reason == Refused::Stopping {
            if requeue {
                self.shared.lanes.push(job.group, job.id, &[task]);
            }
            return Err(Error::Stopping);
        }
        let kind = match reason {
            Refused::OverLimit { .. } | Refused::TooLargeForDatabase { .. } => {
                FailureKind::OutputTooLarge
            }
            Refused::Permanent(_) | Refused::Stopping => FailureKind::TaskError,
        };
        let error = JobError {
            message: format!("task {task} failed [{kind}]: {reason}"),
            kind,
        };
        self.settle(job, JobState::Failed, Some(error)).await?;
        Err(Error::Persist {
            job: job.id,
            task,
            reason,
        })
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
        let start = self.traces().now();
        self.check_session(session)?;
        let job = self.running_job(job_id, task).await?;
        let failed = self
            .fail_instance(&job, task, instance, kind, message)
            .await;
        if failed.is_ok() {
            self.trace_persisted(start, job_id, task, instance, Some(kind));
        }
        failed
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
        self.forget_instance(instance);
        self.shared.counters.reports_failed.inc();
        tracing::debug!(job_id = job.id.0, %task, instance = instance.0, %kind, message, "task instance failed");
        match outcome {
            FailOutcome::Retry => {
                self.shared.lanes.push(job.group, job.id, &[task]);
                Ok(())
            }
            FailOutcome::Exhausted(error) => self.settle(job, JobState::Failed, Some(error)).await,
        }
    }
}
