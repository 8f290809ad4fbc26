//! Database faults injected into every storage write path: a second connection (the
//! [`Blocker`]) holds the locks a write needs — `SELECT … FOR UPDATE` on MySQL/MariaDB with the
//! storage session's `innodb_lock_wait_timeout` at 1 s, `BEGIN IMMEDIATE` on SQLite with a short
//! busy timeout — or makes the write the victim of a real InnoDB deadlock (the blocker holds a
//! shared lock on the job row, waits until storage's update queues behind it, then updates the
//! row itself). Every job must still finish; what reaches a client is a clear, retryable error.
//!
//! Each case runs on SQLite and on MySQL/MariaDB where the fault exists there (deadlocks and
//! row locks are InnoDB's).

use std::time::Duration;

use silk_core::JobState;
use silk_runtime::storage::db::AnyDb;
use silk_runtime::storage::db::Db;
use silk_runtime::storage::grpc::convert::status;
use silk_runtime::storage::{LaneKind, Storage, StorageConfig};
use silk_tdl::{JobId, ResourceGroupId, TaskId};
use sqlx::Connection;

use crate::harness::{bin, flat_graph, flat_inputs, framed};
pub use crate::limits::{
    jobs_stored_as_json_recover, large_jobs_are_stored_in_parts_and_held_to_max_job_bytes,
    outputs_over_the_row_limit_fail_their_job, unfinished_jobs_share_the_job_memory_budget,
};

/// Where a case's database lives.
pub struct Fixture {
    /// `sqlite:PATH` or a MySQL URL of a fresh database.
    pub url: String,
    /// Keeps the SQLite directory alive.
    pub _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn is_mysql(&self) -> bool {
        self.url.starts_with("mysql://")
    }
}

/// A fresh SQLite fixture.
pub fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        url: format!("sqlite:{}", dir.path().join("storage.db").display()),
        _dir: Some(dir),
    }
}

/// A fresh MySQL fixture, or `None` (with a notice) without `SILK_TEST_MYSQL_URL`.
pub async fn mysql(test: &str) -> Option<Fixture> {
    let server = silk_runtime::storage::testing::mysql_url(test)?;
    let (url, _) = silk_runtime::storage::testing::create_mysql_database(&server)
        .await
        .unwrap();
    Some(Fixture { url, _dir: None })
}

/// Lock waits of 1 s (MySQL's smallest), retries as configured by default, no background sweep
/// unless a case asks for one.
pub fn config() -> StorageConfig {
    StorageConfig {
        db_lock_wait_timeout_ms: 1_000,
        sweep_interval_ms: 3_600_000,
        dead_em_cutoff_ms: 600_000,
        ..StorageConfig::default()
    }
}

pub async fn open(fx: &Fixture, config: StorageConfig) -> Storage<AnyDb> {
    let mut options = config.db_options();
    if !fx.is_mysql() {
        // SQLite's busy timeout can be short; MySQL's lock wait cannot go below 1 s.
        options.lock_wait_timeout = Duration::from_millis(200);
    }
    let db = AnyDb::connect_with(&fx.url, options).await.unwrap();
    Storage::open(db, config).await.unwrap()
}

/// What a blocked storage statement starts with (MySQL's process list shows it while it waits).
#[derive(Debug, Clone, Copy)]
pub enum Statement {
    InsertJob,
    UpdateJob,
    InsertCompletions,
    Delete,
}

impl Statement {
    fn pattern(self) -> &'static str {
        match self {
            Self::InsertJob => "INSERT INTO jobs%",
            Self::UpdateJob => "UPDATE jobs SET state%",
            Self::InsertCompletions => "INSERT IGNORE INTO task_completions%",
            Self::Delete => "DELETE FROM %",
        }
    }
}

/// Rows to lock.
#[derive(Debug, Clone, Copy)]
pub enum Rows {
    Group(ResourceGroupId),
    Job(JobId),
}

/// A second connection to the storage database.
pub enum Blocker {
    Sqlite(sqlx::SqliteConnection),
    MySql(sqlx::MySqlConnection),
}

impl Blocker {
    pub async fn connect(fx: &Fixture) -> Self {
        if fx.is_mysql() {
            Self::MySql(sqlx::MySqlConnection::connect(&fx.url).await.unwrap())
        } else {
            Self::Sqlite(sqlx::SqliteConnection::connect(&fx.url).await.unwrap())
        }
    }

    /// Takes the write locks of `rows` in an open transaction (SQLite: the database's).
    pub async fn lock(&mut self, rows: Rows) {
        match self {
            Self::Sqlite(c) => {
                sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut *c)
                    .await
                    .unwrap();
            }
            Self::MySql(c) => {
                sqlx::raw_sql("BEGIN").execute(&mut *c).await.unwrap();
                let sql = match rows {
                    Rows::Group(_) => "SELECT id FROM resource_groups WHERE id = ? FOR UPDATE",
                    Rows::Job(_) => "SELECT id FROM jobs WHERE id = ? FOR UPDATE",
                };
                let id = match rows {
                    Rows::Group(g) => g.0,
                    Rows::Job(j) => j.0,
                };
                let found: Option<i64> = sqlx::query_scalar(sql)
                    .bind(i64::try_from(id).unwrap())
                    .fetch_optional(&mut *c)
                    .await
                    .unwrap();
                assert!(found.is_some(), "{rows:?} exists");
            }
        }
    }

    pub async fn end(&mut self, commit: bool) {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        match self {
            Self::Sqlite(c) => drop(sqlx::raw_sql(sql).execute(&mut *c).await.unwrap()),
            Self::MySql(c) => drop(sqlx::raw_sql(sql).execute(&mut *c).await.unwrap()),
        }
    }

    /// Waits until storage runs `statement` on this database and it stays blocked (MySQL);
    /// SQLite shows nothing, so this holds the lock for several busy timeouts instead.
    pub async fn await_blocked(&mut self, statement: Statement) {
        match self {
            Self::Sqlite(_) => tokio::time::sleep(Duration::from_millis(800)).await,
            Self::MySql(c) => {
                let mut last_error = None;
                for _ in 0..400 {
                    // The server builds this view in a temporary table; MariaDB has been seen
                    // failing that now and then ("Error on delete of '/tmp/#sql-temptable…'"),
                    // so a failed look is retried like a miss.
                    let seen: Result<i64, _> = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                         WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE ?",
                    )
                    .bind(statement.pattern())
                    .fetch_one(&mut *c)
                    .await;
                    match seen {
                        Ok(n) if n > 0 => return,
                        Ok(_) => {}
                        Err(e) => last_error = Some(e),
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                panic!(
                    "storage never ran {statement:?} against the locked rows \
                     (last failed look: {last_error:?})"
                );
            }
        }
    }

    /// Holds `rows` while `op` runs, until `op`'s `statement` has waited past storage's lock
    /// wait timeout (so the database refused it at least once), then commits and returns `op`'s
    /// result.
    async fn refuse_once<T: Send + 'static>(
        &mut self,
        rows: Rows,
        statement: Statement,
        op: impl Future<Output = T> + Send + 'static,
    ) -> T {
        self.refuse(rows, statement, 1, op).await
    }

    /// As [`Self::refuse_once`], holding the rows for `timeouts` lock wait timeouts (MySQL: 1 s
    /// each; SQLite: 4 busy timeouts each) after the statement was seen waiting.
    async fn refuse<T: Send + 'static>(
        &mut self,
        rows: Rows,
        statement: Statement,
        timeouts: u32,
        op: impl Future<Output = T> + Send + 'static,
    ) -> T {
        self.lock(rows).await;
        let op = tokio::spawn(op);
        self.await_blocked(statement).await;
        let hold = match self {
            // The statement was seen waiting; each lock wait timeout (1 s) refuses it once.
            Self::MySql(_) => Duration::from_millis(1_000) * timeouts + Duration::from_millis(600),
            Self::Sqlite(_) => Duration::from_millis(800) * (timeouts - 1),
        };
        tokio::time::sleep(hold).await;
        self.end(true).await;
        op.await.unwrap()
    }

    /// Makes storage's `UPDATE jobs` on `job` (started by `op`) the victim of an InnoDB deadlock:
    /// this transaction, heavier than storage's (it changed rows), holds a shared lock on the
    /// row; once storage's update waits for it, this one updates the row too. Asserts that the
    /// deadlock was storage's (this update succeeded), rolls back and returns `op`'s result.
    async fn deadlock<T: Send + 'static>(
        &mut self,
        job: JobId,
        op: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let Self::MySql(c) = self else {
            panic!("deadlocks are injected on MySQL/MariaDB only")
        };
        let id = i64::try_from(job.0).unwrap();
        sqlx::raw_sql("BEGIN").execute(&mut *c).await.unwrap();
        sqlx::query("UPDATE sessions SET started_at_ms = started_at_ms + 1")
            .execute(&mut *c)
            .await
            .unwrap();
        sqlx::query("SELECT id FROM jobs WHERE id = ? LOCK IN SHARE MODE")
            .bind(id)
            .fetch_one(&mut *c)
            .await
            .unwrap();
        let op = tokio::spawn(op);
        self.await_blocked(Statement::UpdateJob).await;
        let Self::MySql(c) = self else { unreachable!() };
        let mine = sqlx::query("UPDATE jobs SET updated_at_ms = updated_at_ms + 1 WHERE id = ?")
            .bind(id)
            .execute(&mut *c)
            .await;
        assert!(
            mine.is_ok(),
            "the injected deadlock chose the blocker, not storage: {mine:?}"
        );
        self.end(false).await;
        op.await.unwrap()
    }
}

/// The running instance of a started one-task job, ready to report.
struct OneTask {
    storage: Storage<AnyDb>,
    job: JobId,
    em: silk_core::ids::ExecutionManagerId,
    instance: silk_tdl::TaskInstanceId,
}

impl OneTask {
    /// Takes the job's ready task and registers an instance of it.
    async fn prepare(storage: &Storage<AnyDb>, job: JobId) -> Self {
        let (em, _) = storage
            .register_execution_manager("10.9.0.1")
            .await
            .unwrap();
        let ready = storage
            .lanes()
            .poll(LaneKind::Ready, 16, Duration::from_secs(5))
            .await;
        assert!(ready.iter().any(|r| r.job == job), "{ready:?}");
        let ctx = storage
            .register_instance(storage.session(), job, TaskId::Index(0), em)
            .await
            .unwrap();
        Self {
            storage: storage.clone(),
            job,
            em,
            instance: ctx.instance,
        }
    }

    async fn report(self) -> silk_runtime::storage::Result<()> {
        let s = self.storage.session();
        self.storage
            .report_success(
                s,
                self.job,
                TaskId::Index(0),
                self.instance,
                framed(&[bin(&[7])]),
            )
            .await
    }
}

pub async fn group(storage: &Storage<AnyDb>) -> ResourceGroupId {
    storage
        .add_resource_group(
            "faults",
            &silk_runtime::storage::db::Secret::new(b"pw".to_vec()),
        )
        .await
        .unwrap()
}

async fn register(storage: &Storage<AnyDb>, group: ResourceGroupId) -> JobId {
    storage
        .register_job(group, &flat_graph(1, false, "{}"), &flat_inputs(1, 8))
        .await
        .unwrap()
}

/// Waits (watchdog: the caller's) until `job` is terminal; returns its state.
pub async fn ended(storage: &Storage<AnyDb>, job: JobId) -> JobState {
    let mut watch = storage.watch_job(job).await.unwrap();
    loop {
        let p = *watch.borrow_and_update();
        if p.is_terminal() {
            return p.state.unwrap();
        }
        watch.changed().await.unwrap();
    }
}

/// Register, start, completion (group commit) with the job's finish, cancel and retention each
/// run into a lock held past storage's lock wait timeout: each is refused at least once, retried,
/// and lands.
pub async fn lock_waits_on_every_write_path(fx: Fixture) {
    let storage = open(&fx, config()).await;
    let g = group(&storage).await;
    let mut blocker = Blocker::connect(&fx).await;

    let s = storage.clone();
    let job = blocker
        .refuse_once(Rows::Group(g), Statement::InsertJob, async move {
            s.register_job(g, &flat_graph(1, false, "{}"), &flat_inputs(1, 8))
                .await
        })
        .await
        .expect("register_job retried past the lock wait");

    let s = storage.clone();
    blocker
        .refuse_once(Rows::Job(job), Statement::UpdateJob, async move {
            s.start_job(job).await
        })
        .await
        .expect("start_job retried past the lock wait");

    let one = OneTask::prepare(&storage, job).await;
    blocker
        .refuse_once(Rows::Job(job), Statement::InsertCompletions, one.report())
        .await
        .expect("the completion was retried past the lock wait");
    assert_eq!(ended(&storage, job).await, JobState::Succeeded);
    assert_eq!(
        storage.db().job(job).await.unwrap().state,
        JobState::Succeeded
    );

    let other = register(&storage, g).await;
    let s = storage.clone();
    blocker
        .refuse_once(Rows::Job(other), Statement::UpdateJob, async move {
            s.cancel_job(other).await
        })
        .await
        .expect("cancel_job retried past the lock wait");
    assert_eq!(ended(&storage, other).await, JobState::Cancelled);

    let s = storage.clone();
    let later = silk_runtime_now_ms() + 3_600_000;
    let deleted = blocker
        .refuse_once(Rows::Job(job), Statement::Delete, async move {
            s.collect_garbage(later).await
        })
        .await
        .expect("retention retried past the lock wait");
    assert_eq!(deleted, 2);
    storage.shutdown().await;
}

/// A call the database keeps refusing reaches the client as `UNAVAILABLE` with a message saying
/// so — not a driver string as `INTERNAL`.
pub async fn refused_submit_is_unavailable(fx: Fixture) {
    let storage = open(
        &fx,
        StorageConfig {
            db_retry_attempts: 1,
            ..config()
        },
    )
    .await;
    let g = group(&storage).await;
    let mut blocker = Blocker::connect(&fx).await;
    blocker.lock(Rows::Group(g)).await;
    let e = storage
        .register_job(g, &flat_graph(1, false, "{}"), &flat_inputs(1, 8))
        .await
        .unwrap_err();
    blocker.end(true).await;
    let status = status(&e);
    assert_eq!(status.code(), tonic::Code::Unavailable, "{e}");
    assert!(
        status.message().contains("database refused insert_job")
            && status.message().contains("try again"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains("(40001)") && !status.message().contains("1205"));
    storage.shutdown().await;
}

/// Start, the job's finish (terminal transition), a failure and cancel each lose an InnoDB
/// deadlock; each is retried and the job ends.
pub async fn deadlocks_on_job_transitions(fx: Fixture) {
    let storage = open(&fx, config()).await;
    let g = group(&storage).await;
    let mut blocker = Blocker::connect(&fx).await;

    let job = register(&storage, g).await;
    let s = storage.clone();
    blocker
        .deadlock(job, async move { s.start_job(job).await })
        .await
        .expect("start_job retried after a deadlock");
    let one = OneTask::prepare(&storage, job).await;
    blocker
        .deadlock(job, one.report())
        .await
        .expect("the finish was retried after a deadlock");
    assert_eq!(ended(&storage, job).await, JobState::Succeeded);

    let failing = storage
        .register_job(g, &flat_graph(1, false, "{}"), &flat_inputs(1, 8))
        .await
        .unwrap();
    storage.start_job(failing).await.unwrap();
    let s = storage.clone();
    let (em, _) = storage
        .register_execution_manager("10.9.0.2")
        .await
        .unwrap();
    let session = storage.session();
    let ctx = storage
        .register_instance(session, failing, TaskId::Index(0), em)
        .await
        .unwrap();
    blocker
        .deadlock(failing, async move {
            s.report_failure(
                session,
                failing,
                TaskId::Index(0),
                ctx.instance,
                silk_ipc::FailureKind::TaskError,
                "boom",
            )
            .await
        })
        .await
        .expect("the failure was retried after a deadlock");
    assert_eq!(ended(&storage, failing).await, JobState::Failed);

    let other = register(&storage, g).await;
    let s = storage.clone();
    blocker
        .deadlock(other, async move { s.cancel_job(other).await })
        .await
        .expect("cancel_job retried after a deadlock");
    assert_eq!(ended(&storage, other).await, JobState::Cancelled);
    for j in [job, failing, other] {
        assert_eq!(
            storage.db().job(j).await.unwrap().state,
            ended(&storage, j).await,
            "database and cache agree"
        );
    }
    storage.shutdown().await;
}

/// With no retries left in the database layer, a finish lost to a deadlock stays pending and
/// the periodic sweep lands it: the job does not stay `Running` with every task done.
pub async fn sweep_finishes_a_job_whose_finish_was_refused(fx: Fixture) {
    let storage = open(
        &fx,
        StorageConfig {
            db_retry_attempts: 1,
            sweep_interval_ms: 100,
            ..config()
        },
    )
    .await;
    let g = group(&storage).await;
    let mut blocker = Blocker::connect(&fx).await;
    let job = register(&storage, g).await;
    storage.start_job(job).await.unwrap();
    let one = OneTask::prepare(&storage, job).await;
    blocker
        .deadlock(job, one.report())
        .await
        .expect("the success is acknowledged: its completion is stored");
    assert_eq!(ended(&storage, job).await, JobState::Succeeded);
    assert_eq!(
        storage.db().job(job).await.unwrap().state,
        JobState::Succeeded
    );
    storage.shutdown().await;
}

/// With no retries left in the database layer, a completion the database keeps refusing (a lock
/// held through five lock wait timeouts) is written again by the group commit until it lands;
/// the job finishes.
pub async fn group_commit_outlasts_refusals(fx: Fixture) {
    let storage = open(
        &fx,
        StorageConfig {
            db_retry_attempts: 1,
            ..config()
        },
    )
    .await;
    let g = group(&storage).await;
    let mut blocker = Blocker::connect(&fx).await;
    let job = register(&storage, g).await;
    storage.start_job(job).await.unwrap();
    let one = OneTask::prepare(&storage, job).await;
    blocker
        .refuse(
            Rows::Job(job),
            Statement::InsertCompletions,
            5,
            one.report(),
        )
        .await
        .expect("the completion is written again until it lands");
    assert_eq!(ended(&storage, job).await, JobState::Succeeded);
    assert_eq!(
        storage.db().job(job).await.unwrap().state,
        JobState::Succeeded
    );
    storage.shutdown().await;
}

/// Retention finds ended jobs through the `ended_at_ms` index and deletes them by primary key:
/// it takes no lock on a running job's row nor waits for a job being inserted.
pub async fn retention_leaves_live_rows_alone(fx: Fixture) {
    let storage = open(
        &fx,
        StorageConfig {
            db_retry_attempts: 1,
            ..config()
        },
    )
    .await;
    let g = group(&storage).await;
    let old = register(&storage, g).await;
    storage.cancel_job(old).await.unwrap();
    let live = register(&storage, g).await;
    storage.start_job(live).await.unwrap();

    let mut blocker = Blocker::connect(&fx).await;
    blocker.lock(Rows::Job(live)).await;
    if let Blocker::MySql(c) = &mut blocker {
        // A job being inserted by another transaction, not committed yet.
        sqlx::query(
            "INSERT INTO jobs (resource_group_id, state, graph_json, inputs, task_count, created_at_ms, updated_at_ms) \
             VALUES (?, 'Ready', '{}', x'00000000', 1, 0, 0)",
        )
        .bind(i64::try_from(g.0).unwrap())
        .execute(&mut *c)
        .await
        .unwrap();
    }
    let deleted = storage
        .collect_garbage(silk_runtime_now_ms() + 3_600_000)
        .await
        .expect("retention does not wait for locks on live jobs");
    assert_eq!(deleted, 1);
    blocker.end(false).await;
    assert_eq!(
        storage.db().job(live).await.unwrap().state,
        JobState::Running
    );
    storage.shutdown().await;
}

/// A success report whose caller gives up (its deadline passes) while the completion waits for
/// the database still ends its job: the call runs to its end on the server. (Before, the
/// handler was dropped between marking the task succeeded and releasing what follows it: the
/// job stayed `Running` forever.)
pub async fn a_report_whose_caller_gave_up_still_ends_its_job(fx: Fixture) {
    use silk_proto::storage as pb;
    use silk_proto::storage::task_instances_client::TaskInstancesClient;

    let storage = open(&fx, config()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(silk_runtime::storage::grpc::serve(
        storage.clone(),
        listener,
        stop.clone().cancelled_owned(),
    ));
    let g = group(&storage).await;
    let job = register(&storage, g).await;
    storage.start_job(job).await.unwrap();
    let one = OneTask::prepare(&storage, job).await;
    let mut client =
        TaskInstancesClient::new(silk_runtime::storage::grpc::connect(&url).await.unwrap());
    let mut report = tonic::Request::new(pb::ReportTaskOutcomesRequest {
        session_id: storage.session().0,
        execution_manager_id: one.em.0,
        outcomes: vec![pb::TaskOutcome {
            task: Some(pb::TaskRef {
                job_id: job.0,
                task_id: Some(pb::TaskId {
                    kind: Some(pb::task_id::Kind::Index(0)),
                }),
            }),
            task_instance_id: one.instance.0,
            outcome: Some(pb::task_outcome::Outcome::Outputs(framed(&[bin(&[7])]))),
        }],
    });
    report.set_timeout(Duration::from_millis(300));

    let mut blocker = Blocker::connect(&fx).await;
    blocker.lock(Rows::Job(job)).await;
    let gave_up = client.report_task_outcomes(report).await.unwrap_err();
    // The client's own timer or the server's `grpc-timeout`, whichever fires first.
    assert!(
        matches!(
            gave_up.code(),
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
        ),
        "{gave_up:?}"
    );
    blocker.end(true).await;

    let state = tokio::time::timeout(Duration::from_secs(30), ended(&storage, job)).await;
    assert_eq!(
        state.expect("the job never ended: the report was cut off after its task succeeded"),
        JobState::Succeeded
    );
    stop.cancel();
    server.await.unwrap().unwrap();
    storage.shutdown().await;
}

pub fn silk_runtime_now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}
