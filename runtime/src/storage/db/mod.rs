//! The storage database: one trait, [`Db`], with two backends on sqlx — [`SqliteDb`] (a file in
//! WAL mode, the embedded default) and [`MySqlDb`] (MySQL or MariaDB). [`AnyDb`] picks one from a
//! URL (`sqlite:PATH` or `mysql://…`). Migrations are embedded (`runtime/migrations/{sqlite,mysql}`,
//! listed in `migrations.rs`) and run on connect; queries are checked at run time, so building needs no database.
//!
//! The database holds what must survive a restart: resource groups (secrets hashed with argon2),
//! jobs (graph, inputs, state, outputs, error), one row per succeeded task (its outputs), sessions,
//! execution managers (liveness) and schedulers. Times are milliseconds since the Unix epoch and
//! are passed in by the caller, so liveness and retention are testable without sleeping.
//!
//! Every job state change is a compare-and-swap (`UPDATE … WHERE id = ? AND state = ?`), so two
//! storage operations racing on one job cannot both win, on either backend.

mod backend;
mod connect;
mod migrations;
pub mod retry;
mod secret;
mod sql;

#[cfg(test)]
mod conformance;

use std::future::Future;
use std::sync::Arc;

use prost::Message as _;
use silk_ipc::FailureKind;
use silk_proto::storage::CompactTaskGraph;
use silk_tdl::{JobId, ResourceGroupId};

pub use connect::{DbOptions, MySqlDb, SqliteDb};
pub use retry::{Refusal, RetryPolicy};
pub use secret::{Secret, redact_url};

use silk_core::JobState;
use silk_core::graph::{GraphError, JobGraph, JobGraphBuilder, Location, TaskGraph};
use silk_core::ids::{ExecutionManagerId, SchedulerId, SessionId};

/// A database error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported database. Holds the URL with its password redacted.
    #[error("unsupported database url {0:?} (expected sqlite:PATH or mysql://…)")]
    UnsupportedUrl(String),
    /// No job with this id.
    #[error("job {0} not found")]
    JobNotFound(JobId),
    /// No resource group with this id.
    #[error("resource group {0} not found")]
    ResourceGroupNotFound(ResourceGroupId),
    /// The external id is taken.
    #[error("resource group {0:?} already exists")]
    ResourceGroupExists(String),
    /// The secret does not match.
    #[error("wrong secret for resource group {0}")]
    InvalidSecret(ResourceGroupId),
    /// The job is not in a state that may become `to`.
    #[error("job {job}: invalid state transition {from} -> {to}")]
    InvalidTransition {
        /// The job.
        job: JobId,
        /// Its current state.
        from: JobState,
        /// The requested state.
        to: JobState,
    },
    /// The job is in another state than the operation needs.
    #[error("job {job} is {state}, expected {expected}")]
    UnexpectedState {
        /// The job.
        job: JobId,
        /// Its current state.
        state: JobState,
        /// The state the operation needs.
        expected: JobState,
    },
    /// No execution manager with this id.
    #[error("execution manager {0} not found")]
    UnknownExecutionManager(ExecutionManagerId),
    /// The execution manager was declared dead.
    #[error("execution manager {0} is marked dead")]
    ExecutionManagerDead(ExecutionManagerId),
    /// A row holds a value this version cannot read.
    #[error("corrupt database row: {0}")]
    Corrupt(String),
    /// Hashing a secret failed.
    #[error("secret hashing failed: {0}")]
    Hash(String),
    /// Too many secret checks are already running or queued; transient.
    #[error("too many resource-group secret checks in progress; try again")]
    HashBusy,
    /// The database refused the call `attempts` times in a row (deadlock, lock wait timeout,
    /// busy; see [`retry`]): transient, the caller may try again.
    #[error("database refused {op} {attempts} times ({reason}); try again")]
    Refused {
        /// The [`Db`] call.
        op: &'static str,
        /// Why, the last time.
        reason: Refusal,
        /// How many tries were made.
        attempts: u32,
        /// The driver's error of the last try.
        #[source]
        source: sqlx::Error,
    },
    /// The MySQL/MariaDB server accepts smaller packets than storage's largest write.
    #[error(
        "max_allowed_packet of the database server is {actual} bytes, below the {needed} bytes \
         storage needs for rows of up to db_max_write_bytes = {max_write} bytes; raise \
         max_allowed_packet (e.g. --max-allowed-packet={needed}) or lower db_max_write_bytes"
    )]
    PacketLimit {
        /// The server's `max_allowed_packet`.
        actual: u64,
        /// What storage needs.
        needed: u64,
        /// The configured largest row.
        max_write: u64,
    },
    /// The database failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl DbError {
    /// Whether trying again later may succeed: the database refused the call
    /// ([`DbError::Refused`], or a refusal not yet retried) or could not be reached.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused { .. } | Self::HashBusy => true,
            Self::Sql(e) => {
                retry::refusal(e).is_some()
                    || matches!(
                        e,
                        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
                    )
            }
            _ => false,
        }
    }

    /// Whether the database refused a write for its size (MySQL/MariaDB 1153/1301 packet too
    /// large, SQLite `SQLITE_TOOBIG`): the same write fails every time.
    #[must_use]
    pub fn is_too_large(&self) -> bool {
        match self {
            Self::Sql(e) => retry::too_large(e),
            _ => false,
        }
    }
}

/// Result of a [`Db`] call.
pub type DbResult<T> = Result<T, DbError>;

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// The job.
    pub id: JobId,
    /// Its owner.
    pub resource_group: ResourceGroupId,
    /// Its state.
    pub state: JobState,
    /// The task graph.
    pub graph: StoredGraph,
    /// The job inputs frame (empty for [`StoredGraph::Parts`]: it is with the parts).
    pub inputs: Vec<u8>,
    /// The job outputs frame, once every task succeeded.
    pub outputs: Option<Vec<u8>>,
    /// Why the job failed.
    pub error: Option<JobError>,
    /// When it was registered.
    pub created_at_ms: i64,
    /// When it reached a terminal state.
    pub ended_at_ms: Option<i64>,
    /// Regular tasks in its graph (commit and cleanup not counted).
    pub task_count: u64,
}

/// A job's task graph as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredGraph {
    /// In the job's parts, with its inputs ([`Db::job_parts`]): every job registered since
    /// graphs are stored in chunks.
    Parts,
    /// The compact form's protobuf bytes, in one piece (an older storage).
    Compact(Vec<u8>),
    /// The JSON of a job registered by an older storage still.
    Json(String),
}

impl StoredGraph {
    /// The graph, decoded and validated; `chunks` are the job's parts for [`Self::Parts`].
    ///
    /// # Errors
    /// The stored bytes are not a valid graph.
    pub fn decode(&self, chunks: &[Vec<u8>]) -> Result<JobGraph, GraphError> {
        let undecodable = |e: prost::DecodeError| GraphError {
            location: Location::Graph,
            reason: format!("stored graph does not decode: {e}"),
        };
        match self {
            Self::Parts => {
                let mut builder = JobGraphBuilder::new();
                for chunk in chunks {
                    let wire = CompactTaskGraph::decode(chunk.as_slice()).map_err(undecodable)?;
                    builder.push(&wire, chunk.len() as u64)?;
                }
                builder.finish()
            }
            Self::Compact(bytes) => JobGraph::from_compact(
                &CompactTaskGraph::decode(bytes.as_slice()).map_err(undecodable)?,
            ),
            Self::Json(json) => JobGraph::from_task_graph(&TaskGraph::from_json(json)?),
        }
    }
}

/// Why a job failed: readable text and the failure kind of the task at fault (`None` for a
/// failure that was not a task's, e.g. an invalid output frame counted as `TaskError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// Readable text naming the task.
    pub message: String,
    /// The failure kind.
    pub kind: FailureKind,
}

/// One job in a listing: what [`Db::list_jobs`] reads, without the graph or any frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    /// The job.
    pub id: JobId,
    /// Its owner.
    pub resource_group: ResourceGroupId,
    /// Its state.
    pub state: JobState,
    /// When it was registered.
    pub created_at_ms: i64,
    /// When it reached a terminal state.
    pub ended_at_ms: Option<i64>,
    /// Regular tasks in its graph (commit and cleanup not counted).
    pub task_count: u64,
}

/// Which jobs [`Db::list_jobs`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFilter {
    /// At most this many (the caller caps it).
    pub limit: u32,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this resource group.
    pub resource_group: Option<ResourceGroupId>,
}

/// A succeeded task's outputs, to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The job.
    pub job: JobId,
    /// The task index.
    pub task: u64,
    /// The outputs frame (shared with the values kept in memory for the task's children).
    pub outputs: Arc<Vec<u8>>,
}

/// A registered scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerRow {
    /// Its id.
    pub id: SchedulerId,
    /// Where it listens.
    pub host: String,
    /// Its port.
    pub port: u16,
}

/// A page of a job's outputs frame: the job's state and, when it has outputs, the frame's
/// length and the page's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputsPage {
    /// The job's state.
    pub state: JobState,
    /// `(total length, bytes of the page)`, if the job stored outputs.
    pub outputs: Option<(u64, Vec<u8>)>,
}

/// The storage database contract. [`SqliteDb`] and [`MySqlDb`] implement it and pass one
/// conformance suite.
pub trait Db: Send + Sync + 'static {
    /// The database's refusal and error counts (see `retry.rs`).
    fn stats(&self) -> &retry::DbStats;

    /// Starts a new session: inserts a row and returns its id, larger than every earlier one.
    fn start_session(&self, now_ms: i64) -> impl Future<Output = DbResult<SessionId>> + Send;

    /// Adds a resource group; the secret is stored as an argon2 hash.
    ///
    /// Errors: [`DbError::ResourceGroupExists`].
    fn add_resource_group(
        &self,
        external_id: &str,
        secret: &Secret,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<ResourceGroupId>> + Send;

    /// Checks a resource group's secret (constant-time comparison of the hashes).
    ///
    /// Errors: [`DbError::ResourceGroupNotFound`], [`DbError::InvalidSecret`].
    fn verify_resource_group(
        &self,
        id: ResourceGroupId,
        secret: &Secret,
    ) -> impl Future<Output = DbResult<()>> + Send;

    /// Returns the resource group named `external_id` if `secret` matches its secret, or adds
    /// it when the name is new. Two concurrent calls for a new name both get the same group:
    /// the loser of the insert race verifies against the winner's row.
    ///
    /// Errors: [`DbError::InvalidSecret`].
    fn open_resource_group(
        &self,
        external_id: &str,
        secret: &Secret,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<ResourceGroupId>> + Send;

    /// The resource group named `external_id` if `secret` matches its secret; `None` when no
    /// group has that name (nothing is created).
    ///
    /// Errors: [`DbError::InvalidSecret`].
    fn find_resource_group(
        &self,
        external_id: &str,
        secret: &Secret,
    ) -> impl Future<Output = DbResult<Option<ResourceGroupId>>> + Send;

    /// Inserts a job in state `Ready`, in one transaction: its graph as compact chunks (protobuf
    /// bytes, each at most `max_write_bytes`), its inputs frame (stored in pieces);
    /// `task_count` is the number of regular tasks of its graph.
    ///
    /// Errors: [`DbError::ResourceGroupNotFound`].
    fn insert_job(
        &self,
        group: ResourceGroupId,
        graph: &[Vec<u8>],
        inputs: &[u8],
        task_count: u64,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<JobId>> + Send;

    /// The graph chunks and the inputs frame of a job whose row says [`StoredGraph::Parts`].
    fn job_parts(
        &self,
        id: JobId,
    ) -> impl Future<Output = DbResult<(Vec<Vec<u8>>, Vec<u8>)>> + Send;

    /// Jobs matching `filter`, newest (highest id) first, at most `filter.limit`.
    fn list_jobs(
        &self,
        filter: JobFilter,
    ) -> impl Future<Output = DbResult<Vec<JobSummary>>> + Send;

    /// Reads a job.
    ///
    /// Errors: [`DbError::JobNotFound`].
    fn job(&self, id: JobId) -> impl Future<Output = DbResult<JobRow>> + Send;

    /// Up to `len` bytes of a job's outputs frame from byte `offset`, with its state.
    ///
    /// Errors: [`DbError::JobNotFound`].
    fn job_outputs_page(
        &self,
        id: JobId,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = DbResult<OutputsPage>> + Send;

    /// Every job in `Ready`, `Running`, `CommitReady` or `CleanupReady`, by id.
    fn non_terminal_jobs(&self) -> impl Future<Output = DbResult<Vec<JobRow>>> + Send;

    /// Moves a job to `to` (no outputs, no error); returns the state it left.
    ///
    /// Errors: [`DbError::JobNotFound`], [`DbError::InvalidTransition`].
    fn set_state(
        &self,
        id: JobId,
        to: JobState,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<JobState>> + Send;

    /// Stores the job outputs and moves a `Running` job to `to` (`CommitReady` or `Succeeded`).
    ///
    /// Errors: [`DbError::JobNotFound`], [`DbError::InvalidTransition`].
    fn store_outputs(
        &self,
        id: JobId,
        outputs: &[u8],
        to: JobState,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<()>> + Send;

    /// Moves a job to `Failed` with its error.
    ///
    /// Errors: [`DbError::JobNotFound`], [`DbError::InvalidTransition`].
    fn fail_job(
        &self,
        id: JobId,
        error: &JobError,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<()>> + Send;

    /// Persists task completions in one transaction (group commit). A completion already stored
    /// is left as it is.
    fn record_completions(
        &self,
        completions: &[Completion],
        now_ms: i64,
    ) -> impl Future<Output = DbResult<()>> + Send;

    /// The stored completions of a job: `(task index, outputs frame)`, by index.
    fn completions(&self, id: JobId) -> impl Future<Output = DbResult<Vec<(u64, Vec<u8>)>>> + Send;

    /// The stored outputs frame of one task of a job, if it completed.
    fn completion(
        &self,
        id: JobId,
        task: u64,
    ) -> impl Future<Output = DbResult<Option<Vec<u8>>>> + Send;

    /// Deletes jobs that ended before `ended_before_ms` (with their completions); returns how
    /// many.
    fn delete_ended_jobs(&self, ended_before_ms: i64)
    -> impl Future<Output = DbResult<u64>> + Send;

    /// Registers an execution manager, alive as of `now_ms`.
    fn register_execution_manager(
        &self,
        address: &str,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<ExecutionManagerId>> + Send;

    /// Records a heartbeat.
    ///
    /// Errors: [`DbError::UnknownExecutionManager`], [`DbError::ExecutionManagerDead`].
    fn heartbeat(
        &self,
        id: ExecutionManagerId,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<()>> + Send;

    /// Marks every alive execution manager whose last heartbeat is older than
    /// `stale_before_ms` as dead and returns them. Each one is returned by exactly one call,
    /// however many run at once; concurrent heartbeats never deadlock with it (each row is
    /// claimed by its own single-row compare-and-swap).
    fn mark_dead_execution_managers(
        &self,
        stale_before_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<Vec<ExecutionManagerId>>> + Send;

    /// Whether the execution manager is registered and alive.
    ///
    /// Errors: [`DbError::UnknownExecutionManager`].
    fn execution_manager_alive(
        &self,
        id: ExecutionManagerId,
    ) -> impl Future<Output = DbResult<bool>> + Send;

    /// Registers the scheduler, replacing every earlier one (one transaction).
    fn register_scheduler(
        &self,
        host: &str,
        port: u16,
        now_ms: i64,
    ) -> impl Future<Output = DbResult<SchedulerId>> + Send;

    /// The registered schedulers.
    fn schedulers(&self) -> impl Future<Output = DbResult<Vec<SchedulerRow>>> + Send;
}

/// The backend chosen at run time from a URL.
#[derive(Debug, Clone)]
pub enum AnyDb {
    /// SQLite.
    Sqlite(SqliteDb),
    /// MySQL or MariaDB.
    MySql(MySqlDb),
}

impl AnyDb {
    /// Connects to `sqlite:PATH` (created if missing) or `mysql://…`, and runs the migrations.
    ///
    /// # Errors
    /// [`DbError::UnsupportedUrl`], or the connection or migration error.
    pub async fn connect(url: &str) -> DbResult<Self> {
        Self::connect_with(url, DbOptions::default()).await
    }

    /// Connects with `options` (see [`AnyDb::connect`]).
    ///
    /// # Errors
    /// [`DbError::UnsupportedUrl`], [`DbError::PacketLimit`], or the connection or migration
    /// error.
    pub async fn connect_with(url: &str, options: DbOptions) -> DbResult<Self> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            Ok(Self::Sqlite(
                SqliteDb::open_with(std::path::Path::new(path), options).await?,
            ))
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            let url = url.replacen("mariadb://", "mysql://", 1);
            Ok(Self::MySql(MySqlDb::connect_with(&url, options).await?))
        } else {
            Err(DbError::UnsupportedUrl(redact_url(url).into_owned()))
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $db:ident => $call:expr) => {
        match $self {
            AnyDb::Sqlite($db) => $call.await,
            AnyDb::MySql($db) => $call.await,
        }
    };
}

impl Db for AnyDb {
    fn stats(&self) -> &retry::DbStats {
        match self {
            AnyDb::Sqlite(db) => &db.stats,
            AnyDb::MySql(db) => &db.stats,
        }
    }
    async fn start_session(&self, now_ms: i64) -> DbResult<SessionId> {
        dispatch!(self, db => db.start_session(now_ms))
    }
    async fn add_resource_group(
        &self,
        external_id: &str,
        secret: &Secret,
        now_ms: i64,
    ) -> DbResult<ResourceGroupId> {
        dispatch!(self, db => db.add_resource_group(external_id, secret, now_ms))
    }
    async fn verify_resource_group(&self, id: ResourceGroupId, secret: &Secret) -> DbResult<()> {
        dispatch!(self, db => db.verify_resource_group(id, secret))
    }
    async fn open_resource_group(
        &self,
        external_id: &str,
        secret: &Secret,
        now_ms: i64,
    ) -> DbResult<ResourceGroupId> {
        dispatch!(self, db => db.open_resource_group(external_id, secret, now_ms))
    }
    async fn find_resource_group(
        &self,
        external_id: &str,
        secret: &Secret,
    ) -> DbResult<Option<ResourceGroupId>> {
        dispatch!(self, db => db.find_resource_group(external_id, secret))
    }
    async fn insert_job(
        &self,
        group: ResourceGroupId,
        graph: &[Vec<u8>],
        inputs: &[u8],
        task_count: u64,
        now_ms: i64,
    ) -> DbResult<JobId> {
        dispatch!(self, db => db.insert_job(group, graph, inputs, task_count, now_ms))
    }
    async fn job_parts(&self, id: JobId) -> DbResult<(Vec<Vec<u8>>, Vec<u8>)> {
        dispatch!(self, db => db.job_parts(id))
    }
    async fn list_jobs(&self, filter: JobFilter) -> DbResult<Vec<JobSummary>> {
        dispatch!(self, db => db.list_jobs(filter))
    }
    async fn job(&self, id: JobId) -> DbResult<JobRow> {
        dispatch!(self, db => db.job(id))
    }
    async fn non_terminal_jobs(&self) -> DbResult<Vec<JobRow>> {
        dispatch!(self, db => db.non_terminal_jobs())
    }
    async fn set_state(&self, id: JobId, to: JobState, now_ms: i64) -> DbResult<JobState> {
        dispatch!(self, db => db.set_state(id, to, now_ms))
    }
    async fn store_outputs(
        &self,
        id: JobId,
        outputs: &[u8],
        to: JobState,
        now_ms: i64,
    ) -> DbResult<()> {
        dispatch!(self, db => db.store_outputs(id, outputs, to, now_ms))
    }
    async fn fail_job(&self, id: JobId, error: &JobError, now_ms: i64) -> DbResult<()> {
        dispatch!(self, db => db.fail_job(id, error, now_ms))
    }
    async fn record_completions(&self, completions: &[Completion], now_ms: i64) -> DbResult<()> {
        dispatch!(self, db => db.record_completions(completions, now_ms))
    }
    async fn completions(&self, id: JobId) -> DbResult<Vec<(u64, Vec<u8>)>> {
        dispatch!(self, db => db.completions(id))
    }
    async fn completion(&self, id: JobId, task: u64) -> DbResult<Option<Vec<u8>>> {
        dispatch!(self, db => db.completion(id, task))
    }
    async fn job_outputs_page(&self, id: JobId, offset: u64, len: u64) -> DbResult<OutputsPage> {
        dispatch!(self, db => db.job_outputs_page(id, offset, len))
    }
    async fn delete_ended_jobs(&self, ended_before_ms: i64) -> DbResult<u64> {
        dispatch!(self, db => db.delete_ended_jobs(ended_before_ms))
    }
    async fn register_execution_manager(
        &self,
        address: &str,
        now_ms: i64,
    ) -> DbResult<ExecutionManagerId> {
        dispatch!(self, db => db.register_execution_manager(address, now_ms))
    }
    async fn heartbeat(&self, id: ExecutionManagerId, now_ms: i64) -> DbResult<()> {
        dispatch!(self, db => db.heartbeat(id, now_ms))
    }
    async fn mark_dead_execution_managers(
        &self,
        stale_before_ms: i64,
        now_ms: i64,
    ) -> DbResult<Vec<ExecutionManagerId>> {
        dispatch!(self, db => db.mark_dead_execution_managers(stale_before_ms, now_ms))
    }
    async fn execution_manager_alive(&self, id: ExecutionManagerId) -> DbResult<bool> {
        dispatch!(self, db => db.execution_manager_alive(id))
    }
    async fn register_scheduler(
        &self,
        host: &str,
        port: u16,
        now_ms: i64,
    ) -> DbResult<SchedulerId> {
        dispatch!(self, db => db.register_scheduler(host, port, now_ms))
    }
    async fn schedulers(&self) -> DbResult<Vec<SchedulerRow>> {
        dispatch!(self, db => db.schedulers())
    }
}

/// Converts an id to the signed column type both backends use.
fn sql_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// Converts a signed column back to an id.
fn row_id(value: i64) -> DbResult<u64> {
    u64::try_from(value).map_err(|_| DbError::Corrupt(format!("negative id {value}")))
}
