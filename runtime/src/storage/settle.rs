//! Job transitions storage decides on by itself — every task persisted (finish: outputs, then
//! `CommitReady` or `Succeeded`), a task out of retries (`Failed`), the commit or cleanup task
//! done (`Succeeded`, `Cancelled`) — are persisted or retried until they are.
//!
//! The database layer already retries what the database refuses (deadlock, lock wait, busy). If
//! a transition still does not land, it is kept on the job as pending (the job stays in its old
//! state, in memory as in the database) and the periodic sweep ([`Storage::retry_pending`]) tries
//! it again, logging each failure, until it lands or another transition won. The sweep also
//! finishes every `Running` job whose tasks are all persisted, whatever left it there: a job can
//! never stay `Running` with every task done.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use silk_ipc::FailureKind;
use silk_tdl::TaskId;

use super::db::{Db, JobError};
use super::error::{Error, Result};
use super::lock;
use super::service::{Job, Storage};
use silk_core::JobState;

/// A transition that did not land yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pending {
    /// Store the job outputs and leave `Running`.
    Finish,
    /// Move to `to` (with `error` for `Failed`).
    Move {
        /// The target state.
        to: JobState,
        /// The job error, for `Failed`.
        error: Option<JobError>,
    },
}

impl<D: Db + Clone> Storage<D> {
    /// Moves `job` to `to` (a transition storage decided on). A transient database failure
    /// leaves it pending for the sweep; losing a race against another transition is not an
    /// error.
    ///
    /// # Errors
    /// A permanent database error.
    pub(super) async fn settle(
        &self,
        job: &Arc<Job>,
        to: JobState,
        error: Option<JobError>,
    ) -> Result<()> {
        match self.transition(job, to, None, error.clone()).await {
            Ok(_) | Err(Error::InvalidTransition { .. }) => Ok(()),
            Err(e) if e.is_transient() => {
                tracing::warn!(job_id = job.id.0, %to, error = %e, "job transition not persisted; the sweep retries it");
                *lock(&job.pending) = Some(Pending::Move { to, error });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Every task persisted: store the job outputs and move to `CommitReady` or `Succeeded`.
    /// Losing a race against a cancel or failure is not an error; a transient database failure
    /// leaves the finish pending for the sweep. Outputs larger than `db_max_write_bytes` (or
    /// than the database takes) fail the job with `OutputTooLarge`.
    ///
    /// # Errors
    /// A permanent failure other than the outputs' size (the finish stays pending).
    pub(super) async fn finish_job(&self, job: &Arc<Job>) -> Result<()> {
        let result = self.finish_once(job).await;
        match result {
            Ok(()) | Err(Error::InvalidTransition { .. }) => Ok(()),
            Err(e) if e.is_transient() => {
                tracing::warn!(job_id = job.id.0, error = %e, "job finish not persisted; the sweep retries it");
                *lock(&job.pending) = Some(Pending::Finish);
                Ok(())
            }
            Err(Error::Db(e)) if e.is_too_large() => {
                let message = format!("job outputs refused by the database as too large: {e}");
                self.fail_outputs_too_large(job, message).await
            }
            Err(e) => {
                tracing::error!(job_id = job.id.0, error = %e, "job finish failed; the sweep retries it");
                *lock(&job.pending) = Some(Pending::Finish);
                Err(e)
            }
        }
    }

    async fn finish_once(&self, job: &Arc<Job>) -> Result<()> {
        let (outputs, commit) =
            job.with(|c| (c.collect_outputs(), c.has_termination(TaskId::Commit)));
        let outputs = match outputs? {
            Ok(frame) => frame,
            Err(parts) => self.assemble(job.id, &parts).await?,
        };
        let limit = self.shared.config.db_max_write_bytes;
        if outputs.len() as u64 > limit {
            let message = format!(
                "job outputs frame of {} bytes exceeds db_max_write_bytes = {limit}",
                outputs.len()
            );
            return self.fail_outputs_too_large(job, message).await;
        }
        let to = if commit {
            JobState::CommitReady
        } else {
            JobState::Succeeded
        };
        self.transition(job, to, Some(outputs), None)
            .await
            .map(drop)
    }

    async fn fail_outputs_too_large(&self, job: &Arc<Job>, message: String) -> Result<()> {
        tracing::warn!(job_id = job.id.0, error = %message, "job outputs too large; failing the job");
        let error = JobError {
            message,
            kind: FailureKind::OutputTooLarge,
        };
        self.settle(job, JobState::Failed, Some(error)).await
    }

    /// One pass of the sweep: tries every pending transition again, and finishes every
    /// `Running` job whose tasks were all persisted already at the previous pass.
    pub(super) async fn retry_pending(&self) {
        for job in self.all_cached() {
            let pending = lock(&job.pending).take();
            let unfinished =
                job.with(|c| c.state() == JobState::Running && c.all_tasks_persisted());
            // Seen unfinished by two sweeps in a row: not a report that is finishing it now.
            let stuck = job.unfinished_seen.swap(unfinished, Ordering::Relaxed) && unfinished;
            let result = match pending {
                Some(Pending::Move { to, error }) => self.settle(&job, to, error).await,
                Some(Pending::Finish) => self.finish_job(&job).await,
                None if stuck => {
                    tracing::warn!(
                        job_id = job.id.0,
                        "running job with every task persisted; finishing it"
                    );
                    self.finish_job(&job).await
                }
                None => continue,
            };
            if let Err(e) = result {
                tracing::error!(job_id = job.id.0, error = %e, "pending job transition failed");
            }
        }
    }
}
