//! The largest row storage writes: MySQL/MariaDB's `max_allowed_packet` is checked against
//! `db_max_write_bytes` at startup (on a private server with a 1 MiB packet), and a completion
//! that is too large — for storage's own limit or for the database — fails its job with
//! `OutputTooLarge` naming the limit, is not run again, and does not fail the other completions
//! of its group commit.

use std::time::Duration;

use silk_core::JobState;
use silk_ipc::FailureKind;
use silk_runtime::storage::db::{AnyDb, Db, DbError, DbOptions, MySqlDb};
use silk_runtime::storage::{Error, LaneKind, Refused, Storage, StorageConfig};
use silk_tdl::{JobId, TaskId, TaskInstanceId};

use crate::faults::{Blocker, Fixture, Rows, Statement, config, ended, group, open};
use crate::harness::{bin, flat_graph, flat_inputs, framed};
use crate::private_mariadb::PrivateMariaDb;

/// Registers and starts an `n`-task job and registers an instance of each task.
async fn running(
    storage: &Storage<AnyDb>,
    group: silk_tdl::ResourceGroupId,
    n: usize,
) -> (JobId, Vec<TaskInstanceId>) {
    let job = storage
        .register_job(group, &flat_graph(n, false, "{}"), &flat_inputs(n, 8))
        .await
        .unwrap();
    storage.start_job(job).await.unwrap();
    // Take the queued entries, as a scheduler would: anything queued later is a re-run.
    storage
        .lanes()
        .poll(LaneKind::Ready, 1024, Duration::ZERO)
        .await;
    let (em, _) = storage
        .register_execution_manager("10.8.0.1")
        .await
        .unwrap();
    let mut instances = Vec::new();
    for i in 0..n {
        let ctx = storage
            .register_instance(storage.session(), job, TaskId::Index(i as u64), em)
            .await
            .unwrap();
        instances.push(ctx.instance);
    }
    (job, instances)
}

fn output(bytes: usize) -> Vec<u8> {
    framed(&[bin(&vec![1; bytes])])
}

async fn job_error(storage: &Storage<AnyDb>, job: JobId) -> (FailureKind, String) {
    let e = storage.job_error(job).await.unwrap();
    (e.kind, e.message)
}

/// No ready task of `job` is queued (the refused task is not run again).
async fn not_requeued(storage: &Storage<AnyDb>, job: JobId) {
    let ready = storage
        .lanes()
        .poll(LaneKind::Ready, 64, Duration::from_millis(200))
        .await;
    assert!(ready.iter().all(|r| r.job != job), "{ready:?}");
}

/// A task output over `db_max_write_bytes` fails its job with `OutputTooLarge` naming the key;
/// so does a job outputs frame over it (each task output fitting); other jobs are unaffected.
pub async fn outputs_over_the_row_limit_fail_their_job(fx: Fixture) {
    let storage = open(
        &fx,
        StorageConfig {
            db_max_write_bytes: 64 << 10,
            ..config()
        },
    )
    .await;
    let g = group(&storage).await;
    let s = storage.session();

    let (big, instances) = running(&storage, g, 1).await;
    let e = storage
        .report_success(s, big, TaskId::Index(0), instances[0], output(100 << 10))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Persist {
                reason: Refused::OverLimit { limit: 65_536, .. },
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(ended(&storage, big).await, JobState::Failed);
    let (kind, message) = job_error(&storage, big).await;
    assert_eq!(kind, FailureKind::OutputTooLarge);
    assert!(message.contains("db_max_write_bytes = 65536"), "{message}");
    not_requeued(&storage, big).await;

    let (wide, instances) = running(&storage, g, 2).await;
    for (i, instance) in instances.into_iter().enumerate() {
        storage
            .report_success(s, wide, TaskId::Index(i as u64), instance, output(40 << 10))
            .await
            .unwrap();
    }
    assert_eq!(ended(&storage, wide).await, JobState::Failed);
    let (kind, message) = job_error(&storage, wide).await;
    assert_eq!(kind, FailureKind::OutputTooLarge);
    assert!(
        message.contains("job outputs frame") && message.contains("db_max_write_bytes = 65536"),
        "{message}"
    );

    let (small, instances) = running(&storage, g, 1).await;
    storage
        .report_success(s, small, TaskId::Index(0), instances[0], output(1 << 10))
        .await
        .unwrap();
    assert_eq!(ended(&storage, small).await, JobState::Succeeded);
    storage.shutdown().await;
}

/// A job larger than `db_max_write_bytes` is stored in parts and read back whole after a
/// restart; a job past `max_job_bytes` is refused at register with its size and the key named.
pub async fn large_jobs_are_stored_in_parts_and_held_to_max_job_bytes(fx: Fixture) {
    let limits = StorageConfig {
        db_max_write_bytes: 64 << 10,
        max_job_bytes: 256 << 10,
        ..config()
    };
    let storage = open(&fx, limits.clone()).await;
    let g = group(&storage).await;
    let e = storage
        .register_job(g, &flat_graph(20_000, false, "{}"), &flat_inputs(20_000, 8))
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    assert!(
        message.contains("the job is too large") && message.contains("max_job_bytes = 262144"),
        "{message}"
    );
    // About 220 KB of graph and inputs: over three rows.
    let n = 10_000;
    let value = |i: u64| bin(&i.to_le_bytes());
    let inputs = framed(&(0..n as u64).map(value).collect::<Vec<_>>());
    let job = storage
        .register_job(g, &flat_graph(n, false, "{}"), &inputs)
        .await
        .unwrap();
    storage.start_job(job).await.unwrap();
    storage.shutdown().await;
    drop(storage);
    let storage = open(&fx, limits).await;
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Running);
    let (em, s) = storage
        .register_execution_manager("10.8.0.3")
        .await
        .unwrap();
    for i in [0, n as u64 / 2, n as u64 - 1] {
        let ctx = storage
            .register_instance(s, job, TaskId::Index(i), em)
            .await
            .unwrap();
        assert_eq!(ctx.inputs, framed(&[value(i)]), "task {i}");
    }
    storage.shutdown().await;
}

/// Unfinished jobs' graphs share `job_memory_budget_bytes`: a job that would pass it is refused
/// (`Full`, naming the key), and a job that ends frees its share at once.
pub async fn unfinished_jobs_share_the_job_memory_budget(fx: Fixture) {
    let storage = open(
        &fx,
        StorageConfig {
            job_memory_budget_bytes: 1 << 20,
            ..config()
        },
    )
    .await;
    let g = group(&storage).await;
    let job = |n: usize| {
        let storage = storage.clone();
        async move {
            storage
                .register_job(g, &flat_graph(n, false, "{}"), &flat_inputs(n, 8))
                .await
        }
    };
    let first = job(2_000).await.unwrap();
    let held = storage.job_memory_bytes();
    assert!(held > 100_000 && held < 1 << 20, "{held}");
    let e = job(10_000).await.unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, Error::Full(_)), "{e:?}");
    assert!(
        message.contains("job_memory_budget_bytes = 1048576") && message.contains("10000 tasks"),
        "{message}"
    );
    storage.cancel_job(first).await.unwrap();
    assert_eq!(
        storage.job_memory_bytes(),
        0,
        "an ended job frees its share"
    );
    let second = job(2_000).await.unwrap();
    assert_eq!(storage.job_state(second).await.unwrap(), JobState::Ready);
    storage.shutdown().await;
}

/// A job row written before graphs were stored in compact form (JSON in `graph_json`, no
/// `graph`) is read back after a restart and runs.
pub async fn jobs_stored_as_json_recover(fx: Fixture) {
    let storage = open(&fx, config()).await;
    let g = group(&storage).await;
    let json = flat_graph(2, false, "{}");
    let job = storage
        .register_job(g, &json, &flat_inputs(2, 8))
        .await
        .unwrap();
    storage.start_job(job).await.unwrap();
    storage.shutdown().await;
    drop(storage);
    let sql = "UPDATE jobs SET graph = NULL, graph_json = ?, inputs = ? WHERE id = ?";
    let parts = "DELETE FROM job_parts WHERE job_id = ?";
    let (id, inputs) = (i64::try_from(job.0).unwrap(), flat_inputs(2, 8));
    macro_rules! rewrite {
        ($c:expr) => {{
            let c = &mut $c;
            let q = sqlx::query(sql).bind(&json).bind(&inputs).bind(id);
            q.execute(&mut *c).await.unwrap();
            sqlx::query(parts).bind(id).execute(&mut *c).await.unwrap();
        }};
    }
    match Blocker::connect(&fx).await {
        Blocker::Sqlite(mut c) => rewrite!(c),
        Blocker::MySql(mut c) => rewrite!(c),
    }
    let storage = open(&fx, config()).await;
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Running);
    let (em, s) = storage
        .register_execution_manager("10.8.0.2")
        .await
        .unwrap();
    for i in 0..2 {
        let task = TaskId::Index(i);
        let ctx = storage.register_instance(s, job, task, em).await.unwrap();
        storage
            .report_success(s, job, task, ctx.instance, output(8))
            .await
            .unwrap();
    }
    assert_eq!(ended(&storage, job).await, JobState::Succeeded);
    storage.shutdown().await;
}

/// A server whose `max_allowed_packet` is below `db_max_write_bytes` + 64 KiB: storage refuses
/// to start for a user who may not raise it, naming the setting; for one who may, it raises it.
pub async fn startup_checks_max_allowed_packet() {
    let Some(server) = PrivateMariaDb::start("startup_checks_max_allowed_packet", 1 << 20) else {
        return;
    };
    let options = DbOptions::default();
    let e = MySqlDb::connect_with(&server.url(), options)
        .await
        .expect_err("a 1 MiB max_allowed_packet is below a 64 MiB row");
    assert!(
        matches!(e, DbError::PacketLimit { actual: 1_048_576, needed, .. } if needed == options.packet_needed()),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("max_allowed_packet") && text.contains("db_max_write_bytes"),
        "{text}"
    );

    MySqlDb::connect_with(&server.admin_url(), options)
        .await
        .expect("an admin may raise max_allowed_packet");
    MySqlDb::connect_with(&server.url(), options)
        .await
        .expect("raised for every user");
}

/// On a 1 MiB `max_allowed_packet`, a 2 MiB completion (storage's own limit set above it) is
/// refused by MariaDB in a group commit shared with other jobs' completions: the batch is split,
/// the others land and their jobs succeed; the refused task fails its job with
/// `OutputTooLarge` naming `max_allowed_packet`, and is not run again.
pub async fn refused_completion_fails_only_its_job() {
    let Some(server) = PrivateMariaDb::start("refused_completion_fails_only_its_job", 1 << 20)
    else {
        return;
    };
    let options = DbOptions {
        max_write_bytes: 512 << 10,
        ..DbOptions::default()
    };
    let db = AnyDb::connect_with(&server.url(), options).await.unwrap();
    let storage = Storage::open(
        db,
        StorageConfig {
            db_max_write_bytes: 4 << 20,
            ..config()
        },
    )
    .await
    .unwrap();
    let g = group(&storage).await;
    let s = storage.session();
    let (first, first_instances) = running(&storage, g, 1).await;
    let (big, big_instances) = running(&storage, g, 1).await;
    let mut small = Vec::new();
    for _ in 0..4 {
        small.push(running(&storage, g, 1).await);
    }

    // Hold the first completion's commit so the others queue behind it and share one batch.
    let fx = Fixture {
        url: server.url(),
        _dir: None,
    };
    let mut blocker = Blocker::connect(&fx).await;
    blocker.lock(Rows::Job(first)).await;
    let report = |job: JobId, instance: TaskInstanceId, bytes: usize| {
        let storage = storage.clone();
        tokio::spawn(async move {
            storage
                .report_success(s, job, TaskId::Index(0), instance, output(bytes))
                .await
        })
    };
    let first_report = report(first, first_instances[0], 16);
    blocker.await_blocked(Statement::InsertCompletions).await;
    let big_report = report(big, big_instances[0], 2 << 20);
    let small_reports: Vec<_> = small
        .iter()
        .map(|(job, instances)| report(*job, instances[0], 16))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocker.end(true).await;

    first_report.await.unwrap().unwrap();
    for r in small_reports {
        r.await.unwrap().expect("a small completion lands");
    }
    let e = big_report.await.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Persist {
                reason: Refused::TooLargeForDatabase { .. },
                ..
            }
        ),
        "{e}"
    );
    for job in std::iter::once(first).chain(small.iter().map(|(j, _)| *j)) {
        assert_eq!(ended(&storage, job).await, JobState::Succeeded);
    }
    assert_eq!(ended(&storage, big).await, JobState::Failed);
    let (kind, message) = job_error(&storage, big).await;
    assert_eq!(kind, FailureKind::OutputTooLarge);
    assert!(message.contains("max_allowed_packet"), "{message}");
    not_requeued(&storage, big).await;
    assert_eq!(storage.db().job(big).await.unwrap().state, JobState::Failed);
    storage.shutdown().await;
}
