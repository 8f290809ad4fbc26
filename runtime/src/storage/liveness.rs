//! Execution-manager liveness, scheduler registration and retention: EMs register and heartbeat;
//! the periodic sweep declares silent EMs dead (atomically, in the database) and queues their
//! running tasks again, re-queues soft-timed-out tasks once, and deletes terminal jobs past the
//! retention period from the cache and the database.

use super::db::Db;
use super::error::{Error, Result};
use super::job::FailOutcome;
use super::lock;
use super::service::Storage;
use silk_core::JobState;
use silk_core::ids::{ExecutionManagerId, SchedulerId, SessionId};

impl<D: Db + Clone> Storage<D> {
    /// Whether `em` is alive (known-alive set first, then the database).
    pub(super) async fn em_alive(&self, em: ExecutionManagerId) -> Result<bool> {
        if lock(&self.shared.alive).contains(&em) {
            return Ok(true);
        }
        let alive = self.shared.db.execution_manager_alive(em).await?;
        if alive {
            lock(&self.shared.alive).insert(em);
        }
        Ok(alive)
    }

    /// Registers an execution manager; returns its id and the session.
    ///
    /// # Errors
    /// A database error.
    pub async fn register_execution_manager(
        &self,
        address: &str,
    ) -> Result<(ExecutionManagerId, SessionId)> {
        let id = self
            .shared
            .db
            .register_execution_manager(address, self.shared.clock.session_ms())
            .await?;
        lock(&self.shared.alive).insert(id);
        tracing::info!(em_id = id.0, address, "execution manager registered");
        Ok((id, self.shared.session))
    }

    /// Records a heartbeat; returns the session (so the EM learns about a restart).
    ///
    /// # Errors
    /// [`Error::UnknownExecutionManager`]; [`Error::ExecutionManagerDead`] once it was declared
    /// dead (it must register again).
    pub async fn heartbeat(&self, em: ExecutionManagerId) -> Result<SessionId> {
        self.shared
            .db
            .heartbeat(em, self.shared.clock.session_ms())
            .await?;
        Ok(self.shared.session)
    }

    /// [`Storage::heartbeat`], also answering which of `em`'s task instances to stop (their
    /// jobs ended early; see `stops.rs`).
    ///
    /// # Errors
    /// As [`Storage::heartbeat`] (the stops stay queued then).
    pub async fn heartbeat_and_stops(
        &self,
        em: ExecutionManagerId,
    ) -> Result<(SessionId, Vec<silk_tdl::TaskInstanceId>)> {
        let session = self.heartbeat(em).await?;
        Ok((session, self.take_stops(em)))
    }

    /// Registers the scheduler (replacing any other). A replacing scheduler gets every ready
    /// task queued again, since whatever the old one had buffered is lost.
    ///
    /// # Errors
    /// A database error.
    pub async fn register_scheduler(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(SchedulerId, SessionId)> {
        let id = self
            .shared
            .db
            .register_scheduler(host, port, self.shared.clock.wall_ms())
            .await?;
        if self
            .shared
            .scheduler_seen
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.resend_ready();
        }
        tracing::info!(scheduler_id = id.0, host, port, "scheduler registered");
        Ok((id, self.shared.session))
    }

    /// One liveness pass at `now_ms` on the session timeline (see [`super::clock`]; the
    /// sweeper passes [`super::Clock::session_ms`], so a wall-clock step changes nothing): EMs
    /// silent past the cutoff are declared dead and their instances dropped; so are instances
    /// whose report is overdue (hard timeout + `lost_report_grace_ms`: the report was lost).
    /// A dropped instance is *lost*: its task is queued again, and past the first
    /// `free_instance_losses` losses each one spends a retry (a task that kills every EM it
    /// lands on fails its job). Instances past their soft timeout get their task queued once
    /// more (runs only if `max_instances` allows a second instance).
    ///
    /// An EM is judged only on heartbeats this session could have received: until
    /// `dead_em_cutoff_ms` has passed since storage began to serve (after recovery), no EM is declared dead (after an
    /// outage every last heartbeat is old, through no fault of the EMs).
    /// Returns the EMs declared dead.
    ///
    /// # Errors
    /// A database error.
    pub async fn sweep_liveness(&self, now_ms: i64) -> Result<Vec<ExecutionManagerId>> {
        let cutoff = i64::try_from(self.shared.config.dead_em_cutoff_ms).unwrap_or(i64::MAX);
        let stale_before = now_ms.saturating_sub(cutoff);
        // As if every EM had heartbeated when storage started: stale only once that is stale too.
        let serving_since = self
            .shared
            .serving_since_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let dead = if stale_before > serving_since {
            self.shared
                .db
                .mark_dead_execution_managers(stale_before, self.shared.clock.wall_ms())
                .await?
        } else {
            Vec::new()
        };
        {
            let mut alive = lock(&self.shared.alive);
            for em in &dead {
                alive.remove(em);
                tracing::warn!(em_id = em.0, "execution manager declared dead");
            }
        }
        self.forget_stops_of(&dead);
        let mut removed = Vec::new();
        let mut soft = Vec::new();
        {
            let instances = lock(&self.shared.instances);
            for (id, entry) in instances.iter() {
                if dead.contains(&entry.em) {
                    removed.push((*id, "its execution manager was declared dead"));
                } else if entry.expires_at_ms <= now_ms {
                    tracing::warn!(job_id = entry.job.0, task = %entry.task, instance = id.0, em_id = entry.em.0, "no report past the hard timeout: instance dropped");
                    removed.push((*id, "no report past its hard timeout"));
                } else if !entry.soft_handled && entry.soft_deadline_ms <= now_ms {
                    soft.push(*id);
                }
            }
        }
        for (instance, why) in removed {
            if let Some(entry) = self.forget_instance(instance) {
                self.lose_instance(instance, &entry, why).await?;
            }
        }
        for id in soft {
            let entry = {
                let mut instances = lock(&self.shared.instances);
                let Some(entry) = instances.get_mut(&id) else {
                    continue;
                };
                entry.soft_handled = true;
                *entry
            };
            if let Some(job) = self.cached(entry.job)
                && job.with(|c| c.wants_more(entry.task))
            {
                tracing::info!(job_id = job.id.0, task = %entry.task, "soft timeout: task queued again");
                self.shared.lanes.push(job.group, job.id, &[entry.task]);
            }
        }
        Ok(dead)
    }

    /// An instance lost with its EM: queue its task again, or fail the job once the losses
    /// have spent the task's retries.
    async fn lose_instance(
        &self,
        instance: silk_tdl::TaskInstanceId,
        entry: &super::instances::InstanceEntry,
        why: &str,
    ) -> Result<()> {
        let Some(job) = self.cached(entry.job) else {
            return Ok(());
        };
        let free = self.shared.config.free_instance_losses;
        match job.with(|c| c.lose(entry.task, instance, free, why)) {
            None => Ok(()),
            Some(FailOutcome::Retry) => {
                self.shared.lanes.push(job.group, job.id, &[entry.task]);
                Ok(())
            }
            Some(FailOutcome::Exhausted(error)) => {
                tracing::warn!(job_id = job.id.0, task = %entry.task, error = %error.message, "task lost too often: job fails");
                match self
                    .transition(&job, JobState::Failed, None, Some(error))
                    .await
                {
                    Ok(_) | Err(Error::InvalidTransition { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Deletes terminal jobs that ended more than the retention period before `now_ms`, from the
    /// cache and the database. Returns how many rows the database deleted.
    ///
    /// # Errors
    /// A database error.
    pub async fn collect_garbage(&self, now_ms: i64) -> Result<u64> {
        let retention =
            i64::try_from(self.shared.config.terminated_job_retention_ms).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(retention);
        let expired: Vec<_> = self
            .all_cached()
            .into_iter()
            .filter(|job| job.with(|c| c.ended_at_ms().is_some_and(|t| t < cutoff)))
            .map(|job| job.id)
            .collect();
        if !expired.is_empty() {
            let mut jobs = self
                .shared
                .jobs
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for id in &expired {
                jobs.remove(id);
            }
        }
        let deleted = self
            .shared
            .db
            .delete_ended_jobs(cutoff)
            .await
            .map_err(Error::from)?;
        if deleted > 0 {
            tracing::info!(deleted, "terminal jobs deleted after retention");
        }
        Ok(deleted)
    }
}
