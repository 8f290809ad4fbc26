//! The storage service layer: [`Storage`] ties the database, the job cache, the inbound lanes, the
//! group-commit actor and the liveness tracking together. The gRPC adapter and the tests call
//! it; it never stops on bad input. This file holds construction, recovery and the job API; task
//! instances are in `instances.rs`, liveness and retention in `liveness.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use silk_tdl::{JobId, ResourceGroupId, TaskInstanceId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::clock::Clock;
use super::config::StorageConfig;
use super::db::{Db, JobError, Secret, StoredGraph};
use super::error::{Error, Result};
use super::instances::{InstanceEntry, RegistrationKey};
use super::job::{JobControl, OutputBudget, Progress};
use super::lanes::Lanes;
use super::persist::Persister;
use super::settle::Pending;
use super::{lock, now_ms};
use crate::metrics::storage::StorageCounters;
use silk_core::JobState;
use silk_core::ids::{ExecutionManagerId, SessionId};

/// Most bytes of a job's outputs frame in one answer: with the message around it, under the
/// 4 MiB that gRPC clients accept by default.
pub const OUTPUTS_PAGE_BYTES: u64 = (4 << 20) - (64 << 10);

/// A cached job: its control block behind a short-held lock, a lock serialising its state
/// transitions (database first, then cache), and its progress channel.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) id: JobId,
    pub(super) group: ResourceGroupId,
    control: Mutex<JobControl>,
    transition: tokio::sync::Mutex<()>,
    pub(super) progress: watch::Sender<Progress>,
    /// A transition storage decided on that the database has not taken yet (see `settle.rs`).
    pub(super) pending: Mutex<Option<Pending>>,
    /// The last sweep found the job `Running` with every task persisted.
    pub(super) unfinished_seen: AtomicBool,
    /// When it was registered (or, for a job recovered after a restart, recovered): the start
    /// of its span.
    pub(super) submitted: std::time::SystemTime,
}

impl Job {
    pub(super) fn new(control: JobControl) -> Arc<Self> {
        let (progress, _) = watch::channel(control.progress());
        Arc::new(Self {
            id: control.id(),
            group: control.group(),
            control: Mutex::new(control),
            transition: tokio::sync::Mutex::new(()),
            progress,
            pending: Mutex::new(None),
            unfinished_seen: AtomicBool::new(false),
            submitted: std::time::SystemTime::now(),
        })
    }

    /// Runs `f` on the control block and publishes the progress it leaves.
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut JobControl) -> R) -> R {
        let mut control = lock(&self.control);
        let result = f(&mut control);
        self.progress.send_if_modified(|p| {
            let now = control.progress();
            std::mem::replace(p, now) != now
        });
        result
    }
}

/// State shared by every handle of one storage service.
#[derive(Debug)]
pub(super) struct Shared<D> {
    pub(super) db: D,
    pub(super) session: SessionId,
    /// When this session began to serve, after recovery (session timeline; `i64::MAX` until
    /// then): EM heartbeats older than this could not have reached it. Recovering many jobs
    /// takes seconds, during which no EM can reach storage through no fault of its own.
    pub(super) serving_since_ms: AtomicI64,
    /// Wall clock and session timeline.
    pub(super) clock: Arc<Clock>,
    pub(super) config: StorageConfig,
    pub(super) jobs: RwLock<HashMap<JobId, Arc<Job>>>,
    pub(super) lanes: Lanes,
    pub(super) persister: Persister,
    pub(super) next_instance: AtomicU64,
    pub(super) instances: Mutex<HashMap<TaskInstanceId, InstanceEntry>>,
    /// Live instances by the assignment they were registered for (idempotent registration).
    pub(super) registrations: Mutex<HashMap<RegistrationKey, (JobId, TaskInstanceId)>>,
    pub(super) alive: Mutex<HashSet<ExecutionManagerId>>,
    /// Instances of jobs that ended early, for their EMs to stop (see `stops.rs`).
    pub(super) stops: Mutex<super::stops::Stops>,
    pub(super) scheduler_seen: AtomicBool,
    /// Metric counters (see [`crate::metrics::storage`]).
    pub(super) counters: StorageCounters,
    /// The span sink, once set (see `spans.rs`).
    pub(super) traces: std::sync::OnceLock<crate::traces::Traces>,
    /// Bytes of task outputs every job together may hold in memory.
    pub(super) budget: OutputBudget,
    /// The memory of unfinished jobs' graphs and task controls.
    pub(super) job_memory: OutputBudget,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// The storage service. Cheap to clone; every clone is the same service.
#[derive(Debug)]
pub struct Storage<D> {
    pub(super) shared: Arc<Shared<D>>,
}

impl<D> Clone for Storage<D> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<D: Db + Clone> Storage<D> {
    /// Starts the service over `db`: opens a new session, rebuilds every non-terminal job from
    /// the database (succeeded tasks stay succeeded), queues what is ready, and starts the
    /// group-commit actor and the periodic sweep.
    ///
    /// # Errors
    /// A database error while starting the session or reading the jobs.
    pub async fn open(db: D, config: StorageConfig) -> Result<Self> {
        Self::open_with_clock(db, config, Arc::new(Clock::default())).await
    }

    /// As [`Self::open`], on `clock` (tests inject wall-clock steps through it).
    ///
    /// # Errors
    /// As [`Self::open`].
    pub async fn open_with_clock(db: D, config: StorageConfig, clock: Arc<Clock>) -> Result<Self> {
        let session = db.start_session(clock.wall_ms()).await?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let budget = OutputBudget::new(config.output_memory_budget_bytes);
        let config_job_memory = config.job_memory_budget_bytes;
        let counters = StorageCounters::default();
        let persister = Persister::spawn(
            db.clone(),
            config.group_commit_max_batch,
            config.db_max_write_bytes,
            counters.clone(),
            &tracker,
            cancel.clone(),
        );
        let storage = Self {
            shared: Arc::new(Shared {
                db,
                session,
                serving_since_ms: AtomicI64::new(i64::MAX),
                clock,
                config,
                jobs: RwLock::new(HashMap::new()),
                lanes: Lanes::default(),
                persister,
                next_instance: AtomicU64::new(1),
                instances: Mutex::new(HashMap::new()),
                registrations: Mutex::new(HashMap::new()),
                alive: Mutex::new(HashSet::new()),
                stops: Mutex::new(HashMap::new()),
                scheduler_seen: AtomicBool::new(false),
                counters,
                traces: std::sync::OnceLock::new(),
                budget,
                job_memory: OutputBudget::new(config_job_memory),
                cancel,
                tracker,
            }),
        };
        storage.recover().await?;
        storage.resend_ready();
        let shared = &storage.shared;
        shared
            .serving_since_ms
            .store(shared.clock.session_ms(), Ordering::Relaxed);
        storage.spawn_sweeper();
        tracing::info!(session = session.0, "storage started");
        Ok(storage)
    }

    /// Stops the background work (the group-commit actor drains first) and waits for it.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }

    /// The current session.
    #[must_use]
    pub fn session(&self) -> SessionId {
        self.shared.session
    }

    /// The database.
    #[must_use]
    pub fn db(&self) -> &D {
        &self.shared.db
    }

    /// Bytes of task outputs held in memory now, over every job (at most
    /// [`StorageConfig::output_memory_budget_bytes`]).
    #[must_use]
    pub fn held_output_bytes(&self) -> u64 {
        self.shared.budget.used()
    }

    /// Bytes of memory unfinished jobs hold for their graphs and task controls (see
    /// [`StorageConfig::job_memory_budget_bytes`]).
    #[must_use]
    pub fn job_memory_bytes(&self) -> u64 {
        self.shared.job_memory.used()
    }

    /// The inbound lanes.
    #[must_use]
    pub fn lanes(&self) -> &Lanes {
        &self.shared.lanes
    }

    pub(super) fn cached(&self, job: JobId) -> Option<Arc<Job>> {
        self.shared
            .jobs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&job)
            .cloned()
    }

    pub(super) fn all_cached(&self) -> Vec<Arc<Job>> {
        let jobs = self
            .shared
            .jobs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        jobs.values().cloned().collect()
    }

    pub(super) fn insert(&self, job: Arc<Job>) {
        let mut jobs = self
            .shared
            .jobs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        jobs.insert(job.id, job);
    }

    async fn recover(&self) -> Result<()> {
        let mut finish = Vec::new();
        for row in self.shared.db.non_terminal_jobs().await? {
            let (id, group, state) = (row.id, row.resource_group, row.state);
            let (stored, mut inputs) = (row.graph.clone(), row.inputs.clone());
            let mut chunks = Vec::new();
            if stored == StoredGraph::Parts {
                (chunks, inputs) = self.shared.db.job_parts(id).await?;
            }
            let (budget, memory) = (self.shared.budget.clone(), self.shared.job_memory.clone());
            let rebuilt = off_worker(move || {
                let graph = stored.decode(&chunks)?;
                drop(chunks);
                let charge = memory.charge(JobControl::memory_estimate(&graph));
                Ok(JobControl::new(id, group, graph, &inputs, state)?
                    .with_budget(budget)
                    .with_memory(charge))
            })
            .await;
            let mut control = match rebuilt {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(job_id = row.id.0, error = %e, "stored job unreadable; failing it");
                    let error = JobError {
                        message: format!("stored job unreadable: {e}"),
                        kind: silk_ipc::FailureKind::PackageError,
                    };
                    let _ = self.shared.db.fail_job(row.id, &error, now_ms()).await;
                    continue;
                }
            };
            match row.state {
                JobState::Running => {
                    for (index, outputs) in self.shared.db.completions(row.id).await? {
                        control.restore_completion(index, &outputs)?;
                    }
                    control.settle_ready();
                    if control.all_tasks_persisted() {
                        finish.push(row.id);
                    }
                }
                JobState::CommitReady | JobState::CleanupReady => {
                    if row.state == JobState::CommitReady {
                        control.mark_tasks_done();
                    }
                    control.set_state(row.state, row.outputs.clone(), now_ms());
                }
                _ => {}
            }
            tracing::info!(job_id = row.id.0, state = %row.state, "job recovered");
            self.insert(Job::new(control));
        }
        for id in finish {
            if let Some(job) = self.cached(id) {
                // A finish that fails stays pending: the sweep retries it.
                if let Err(e) = self.finish_job(&job).await {
                    tracing::error!(job_id = id.0, error = %e, "finishing a recovered job failed");
                }
            }
        }
        Ok(())
    }

    /// Queues every ready task of every cached job again (after a restart, or when a new
    /// scheduler replaced one whose buffers are lost).
    pub fn resend_ready(&self) {
        for job in self.all_cached() {
            let ready = job.with(|c| c.ready_tasks());
            self.shared.lanes.push(job.group, job.id, &ready);
        }
    }

    /// Adds a resource group (its secret is stored hashed).
    ///
    /// # Errors
    /// A database error, e.g. the external id is taken.
    pub async fn add_resource_group(
        &self,
        external_id: &str,
        secret: &Secret,
    ) -> Result<ResourceGroupId> {
        Ok(self
            .shared
            .db
            .add_resource_group(external_id, secret, now_ms())
            .await?)
    }

    /// Checks a resource group's secret.
    ///
    /// # Errors
    /// A database error: unknown group or wrong secret.
    pub async fn verify_resource_group(&self, id: ResourceGroupId, secret: &Secret) -> Result<()> {
        Ok(self.shared.db.verify_resource_group(id, secret).await?)
    }

    /// Starts a `Ready` job: its input tasks are queued.
    ///
    /// # Errors
    /// [`Error::JobNotFound`], [`Error::InvalidTransition`].
    pub async fn start_job(&self, id: JobId) -> Result<JobState> {
        let job = self.cached_or_stored(id, JobState::Running).await?;
        self.transition(&job, JobState::Running, None, None).await?;
        Ok(JobState::Running)
    }

    /// Cancels a job: `CleanupReady` if it has a cleanup task, else `Cancelled`. Its running
    /// instances are stopped (their EMs hear of it at their next heartbeat, `stops.rs`); a report
    /// that arrives anyway is rejected as stale.
    ///
    /// # Errors
    /// [`Error::JobNotFound`], [`Error::InvalidTransition`] (e.g. a terminal job).
    pub async fn cancel_job(&self, id: JobId) -> Result<JobState> {
        let job = self.cached_or_stored(id, JobState::Cancelled).await?;
        let to = if job.with(|c| c.has_termination(silk_tdl::TaskId::Cleanup)) {
            JobState::CleanupReady
        } else {
            JobState::Cancelled
        };
        self.transition(&job, to, None, None).await?;
        Ok(to)
    }

    /// The cached job, or the transition error for a job only in the database (terminal).
    async fn cached_or_stored(&self, id: JobId, to: JobState) -> Result<Arc<Job>> {
        if let Some(job) = self.cached(id) {
            return Ok(job);
        }
        let row = self.shared.db.job(id).await?;
        Err(Error::InvalidTransition {
            job: id,
            from: row.state,
            to,
        })
    }

    /// A job's state (cache first, then the database).
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub async fn job_state(&self, id: JobId) -> Result<JobState> {
        match self.cached(id) {
            Some(job) => Ok(job.with(|c| c.state())),
            None => Ok(self.shared.db.job(id).await?.state),
        }
    }

    /// The outputs frame of a `Succeeded` job, read page by page.
    ///
    /// # Errors
    /// As [`Self::job_outputs_page`].
    pub async fn job_outputs(&self, id: JobId) -> Result<Vec<u8>> {
        let (total, mut frame) = self.job_outputs_page(id, 0).await?;
        while (frame.len() as u64) < total {
            frame.extend(self.job_outputs_page(id, frame.len() as u64).await?.1);
        }
        Ok(frame)
    }

    /// At most [`OUTPUTS_PAGE_BYTES`] of the outputs frame of a `Succeeded` job from byte
    /// `offset`, with the frame's length.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::NotAvailable`] in any other state;
    /// [`Error::BadRequest`] for an offset past the end.
    pub async fn job_outputs_page(&self, id: JobId, offset: u64) -> Result<(u64, Vec<u8>)> {
        let page = self
            .shared
            .db
            .job_outputs_page(id, offset, OUTPUTS_PAGE_BYTES)
            .await?;
        match (page.state, page.outputs) {
            (JobState::Succeeded, Some((total, _))) if offset > total => Err(Error::BadRequest(
                format!("offset {offset} is past the end of the {total}-byte outputs"),
            )),
            (JobState::Succeeded, Some((total, bytes))) => Ok((total, bytes)),
            (state, _) => Err(Error::NotAvailable {
                job: id,
                state,
                what: "outputs",
                needed: JobState::Succeeded,
            }),
        }
    }

    /// The error of a `Failed` job.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::NotAvailable`] in any other state.
    pub async fn job_error(&self, id: JobId) -> Result<JobError> {
        let row = self.shared.db.job(id).await?;
        match (row.state, row.error) {
            (JobState::Failed, Some(error)) => Ok(error),
            (state, _) => Err(Error::NotAvailable {
                job: id,
                state,
                what: "error",
                needed: JobState::Failed,
            }),
        }
    }

    /// Watches a job's progress. For a job no longer cached the receiver holds its final state
    /// (see [`Progress::stored`]).
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub async fn watch_job(&self, id: JobId) -> Result<watch::Receiver<Progress>> {
        if let Some(job) = self.cached(id) {
            return Ok(job.progress.subscribe());
        }
        let row = self.shared.db.job(id).await?;
        let (_, rx) = watch::channel(Progress::stored(row.state, row.task_count));
        Ok(rx)
    }

    /// Moves a job to `to`: database first (compare-and-swap), then the cache; queues what the
    /// new state makes ready. Serialised per job.
    pub(super) async fn transition(
        &self,
        job: &Arc<Job>,
        to: JobState,
        outputs: Option<Vec<u8>>,
        error: Option<JobError>,
    ) -> Result<JobState> {
        let _serial = job.transition.lock().await;
        let from = job.with(|c| c.state());
        if !from.can_become(to) {
            return Err(Error::InvalidTransition {
                job: job.id,
                from,
                to,
            });
        }
        let now = now_ms();
        let db = &self.shared.db;
        let stored = match (&outputs, &error) {
            (Some(o), _) => db.store_outputs(job.id, o, to, now).await,
            (None, Some(e)) => db.fail_job(job.id, e, now).await,
            (None, None) => db.set_state(job.id, to, now).await.map(drop),
        };
        match stored.map_err(Error::from) {
            Ok(()) => {}
            // An earlier try landed although its answer was lost (e.g. the connection dropped
            // after the commit): the database already holds this transition.
            Err(Error::InvalidTransition {
                from: now_in_db, ..
            }) if now_in_db == to => {
                tracing::warn!(job_id = job.id.0, %to, "job transition found already persisted");
            }
            Err(e) => return Err(e),
        }
        *lock(&job.pending) = None;
        let ready = job.with(|c| {
            c.set_state(to, outputs, now);
            c.ready_tasks()
        });
        self.shared.lanes.push(job.group, job.id, &ready);
        if super::stops::ends_work(to) {
            self.stop_instances_of(job.id);
        }
        if to.is_terminal() {
            self.trace_job_end(job, to, error.as_ref());
        }
        match &error {
            Some(e) => {
                tracing::info!(job_id = job.id.0, %from, %to, kind = %e.kind, error = %e.message, "job state")
            }
            None => tracing::info!(job_id = job.id.0, %from, %to, "job state"),
        }
        Ok(from)
    }

    fn spawn_sweeper(&self) {
        let weak = Arc::downgrade(&self.shared);
        let cancel = self.shared.cancel.clone();
        let interval =
            std::time::Duration::from_millis(self.shared.config.sweep_interval_ms.max(1));
        self.shared.tracker.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(shared) = weak.upgrade() else { break };
                let storage = Self { shared };
                storage.retry_pending().await;
                let session_ms = storage.shared.clock.session_ms();
                if let Err(e) = storage.sweep_liveness(session_ms).await {
                    tracing::warn!(error = %e, "liveness sweep failed");
                }
                let wall_ms = storage.shared.clock.wall_ms();
                if let Err(e) = storage.collect_garbage(wall_ms).await {
                    tracing::warn!(error = %e, "job retention sweep failed");
                }
            }
        });
    }
}

/// Runs CPU-heavy work (graph parsing, frame decoding) on the blocking pool.
pub(super) async fn off_worker<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::BadRequest(format!("request processing panicked: {e}")))?
}
