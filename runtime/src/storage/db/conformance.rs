//! The [`Db`] conformance suite: written once, generic over the backend, instantiated for SQLite
//! (always) and MySQL/MariaDB (when `SILK_TEST_MYSQL_URL` is set; otherwise a notice is printed
//! and the MySQL half is skipped). Each case gets a fresh database. Cases of the client-facing
//! lookups (opening resource groups, listing jobs) are in `conformance/catalog.rs`.

mod catalog;

use std::sync::Arc;

use catalog::{list_jobs, open_resource_group, open_resource_group_race};

use silk_ipc::FailureKind;
use silk_tdl::{JobId, ResourceGroupId};

use super::{Completion, Db, DbError, JobError, Secret, StoredGraph};
use silk_core::JobState::{self, *};
use silk_core::ids::ExecutionManagerId;

const T0: i64 = 1_000_000;

async fn group<D: Db>(db: &D, name: &str) -> ResourceGroupId {
    db.add_resource_group(name, &Secret::new(b"pw".to_vec()), T0)
        .await
        .unwrap()
}

async fn job<D: Db>(db: &D, g: ResourceGroupId) -> JobId {
    db.insert_job(g, &[b"{}".to_vec()], &[0, 0, 0, 0], 1, T0)
        .await
        .unwrap()
}

fn is_transition(e: &DbError, from: JobState, to: JobState) -> bool {
    matches!(e, DbError::InvalidTransition { from: f, to: t, .. } if *f == from && *t == to)
}

async fn sessions_increase<D: Db>(db: D) {
    let a = db.start_session(T0).await.unwrap();
    let b = db.start_session(T0).await.unwrap();
    assert!(a.0 > 0);
    assert!(b > a);
}

async fn resource_groups<D: Db>(db: D) {
    let g = group(&db, "team").await;
    let dup = db
        .add_resource_group("team", &Secret::new(b"x".to_vec()), T0)
        .await;
    assert!(
        matches!(dup, Err(DbError::ResourceGroupExists(ref n)) if n == "team"),
        "{dup:?}"
    );
    db.verify_resource_group(g, &Secret::new(b"pw".to_vec()))
        .await
        .unwrap();
    let wrong = db
        .verify_resource_group(g, &Secret::new(b"pW".to_vec()))
        .await;
    assert!(matches!(wrong, Err(DbError::InvalidSecret(id)) if id == g));
    let unknown = db
        .verify_resource_group(ResourceGroupId(g.0 + 1000), &Secret::new(b"pw".to_vec()))
        .await;
    assert!(matches!(unknown, Err(DbError::ResourceGroupNotFound(_))));
}

async fn job_lifecycle<D: Db>(db: D) {
    let g = group(&db, "g").await;
    let unknown_group = db
        .insert_job(ResourceGroupId(g.0 + 99), &[b"{}".to_vec()], &[], 1, T0)
        .await;
    assert!(
        matches!(unknown_group, Err(DbError::ResourceGroupNotFound(_))),
        "{unknown_group:?}"
    );

    let j = job(&db, g).await;
    let row = db.job(j).await.unwrap();
    assert_eq!(
        (row.state, row.resource_group, row.graph),
        (Ready, g, StoredGraph::Parts)
    );
    assert_eq!(
        db.job_parts(j).await.unwrap(),
        (vec![b"{}".to_vec()], vec![0u8, 0, 0, 0])
    );

    // A graph of many chunks and inputs past one insert come back whole and in order.
    let chunks: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1000 + usize::from(i)]).collect();
    let inputs: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
    let big = db.insert_job(g, &chunks, &inputs, 7, T0).await.unwrap();
    assert_eq!(db.job_parts(big).await.unwrap(), (chunks, inputs));
    assert_eq!(db.job(big).await.unwrap().task_count, 7);
    assert_eq!(row.outputs, None);
    assert_eq!(row.ended_at_ms, None);
    assert_eq!(row.task_count, 1);

    assert_eq!(db.set_state(j, Running, T0 + 1).await.unwrap(), Ready);
    let twice = db.set_state(j, Running, T0 + 2).await.unwrap_err();
    assert!(is_transition(&twice, Running, Running), "{twice}");
    assert!(twice.to_string().contains("Running -> Running"));

    db.store_outputs(j, &[1, 0, 0, 0, 1, 0, 0, 0, 7], CommitReady, T0 + 3)
        .await
        .unwrap();
    let row = db.job(j).await.unwrap();
    assert_eq!(row.state, CommitReady);
    assert_eq!(
        row.outputs.as_deref(),
        Some(&[1, 0, 0, 0, 1, 0, 0, 0, 7][..])
    );
    assert_eq!(row.ended_at_ms, None);
    db.set_state(j, Succeeded, T0 + 4).await.unwrap();
    let row = db.job(j).await.unwrap();
    assert_eq!((row.state, row.ended_at_ms), (Succeeded, Some(T0 + 4)));
    for to in JobState::ALL {
        assert!(
            db.set_state(j, to, T0 + 5).await.is_err(),
            "Succeeded -> {to}"
        );
    }

    // Outputs need a running job.
    let k = job(&db, g).await;
    let e = db
        .store_outputs(k, &[0, 0, 0, 0], Succeeded, T0)
        .await
        .unwrap_err();
    assert!(is_transition(&e, Ready, Succeeded), "{e}");

    // Cancel from Ready, with or without a cleanup task.
    db.set_state(k, CleanupReady, T0).await.unwrap();
    db.set_state(k, Cancelled, T0).await.unwrap();
    let e = db.set_state(k, Cancelled, T0).await.unwrap_err();
    assert!(is_transition(&e, Cancelled, Cancelled), "{e}");

    // Failure keeps readable text and the kind.
    let f = job(&db, g).await;
    db.set_state(f, Running, T0).await.unwrap();
    let err = JobError {
        message: "task 2 (pkg::f) failed: boom".into(),
        kind: FailureKind::Timeout,
    };
    db.fail_job(f, &err, T0 + 9).await.unwrap();
    let row = db.job(f).await.unwrap();
    assert_eq!(
        (row.state, row.error.as_ref(), row.ended_at_ms),
        (Failed, Some(&err), Some(T0 + 9))
    );
    let e = db.fail_job(f, &err, T0).await.unwrap_err();
    assert!(is_transition(&e, Failed, Failed), "{e}");

    let nowhere = JobId(f.0 + 1000);
    assert!(matches!(
        db.job(nowhere).await,
        Err(DbError::JobNotFound(_))
    ));
    assert!(matches!(
        db.set_state(nowhere, Running, T0).await,
        Err(DbError::JobNotFound(_))
    ));
    assert!(matches!(
        db.fail_job(nowhere, &err, T0).await,
        Err(DbError::JobNotFound(_))
    ));

    let open: Vec<JobId> = db
        .non_terminal_jobs()
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert!(!open.contains(&j) && !open.contains(&k) && !open.contains(&f));
}

async fn racing_transitions_have_one_winner<D: Db>(db: D) {
    let db = Arc::new(db);
    let g = group(&*db, "race").await;
    for _ in 0..5 {
        let j = job(&*db, g).await;
        db.set_state(j, Running, T0).await.unwrap();
        let a = tokio::spawn({
            let db = db.clone();
            async move {
                db.store_outputs(j, &[0, 0, 0, 0], Succeeded, T0)
                    .await
                    .is_ok()
            }
        });
        let b = tokio::spawn({
            let db = db.clone();
            async move { db.set_state(j, Cancelled, T0).await.is_ok() }
        });
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(
            a ^ b,
            "exactly one of succeed/cancel wins (succeed {a}, cancel {b})"
        );
        let state = db.job(j).await.unwrap().state;
        assert_eq!(state, if a { Succeeded } else { Cancelled });
    }
}

async fn completions_and_retention<D: Db>(db: D) {
    let g = group(&db, "c").await;
    let j = job(&db, g).await;
    let batch: Vec<Completion> = (0..50)
        .map(|i| Completion {
            job: j,
            task: i,
            outputs: Arc::new(vec![u8::try_from(i).unwrap(); 3]),
        })
        .collect();
    db.record_completions(&batch, T0).await.unwrap();
    // A completion stored again is ignored, not an error.
    db.record_completions(&batch[..2], T0).await.unwrap();
    let stored = db.completions(j).await.unwrap();
    assert_eq!(stored.len(), 50);
    assert_eq!(stored[7], (7, vec![7, 7, 7]));

    db.set_state(j, Running, T0).await.unwrap();
    db.fail_job(
        j,
        &JobError {
            message: "x".into(),
            kind: FailureKind::TaskError,
        },
        T0 + 10,
    )
    .await
    .unwrap();
    let live = job(&db, g).await;
    assert_eq!(
        db.delete_ended_jobs(T0 + 10).await.unwrap(),
        0,
        "ended exactly at the cutoff"
    );
    assert_eq!(db.delete_ended_jobs(T0 + 11).await.unwrap(), 1);
    assert!(matches!(db.job(j).await, Err(DbError::JobNotFound(_))));
    assert!(db.completions(j).await.unwrap().is_empty());
    assert_eq!(db.job_parts(j).await.unwrap(), (Vec::new(), Vec::new()));
    assert_eq!(
        db.job(live).await.unwrap().state,
        Ready,
        "non-terminal jobs are kept"
    );
}

async fn liveness<D: Db>(db: D) {
    let a = db.register_execution_manager("10.0.0.1", T0).await.unwrap();
    let b = db.register_execution_manager("10.0.0.2", T0).await.unwrap();
    let c = db
        .register_execution_manager("10.0.0.3", T0 + 2_000)
        .await
        .unwrap();
    assert!(db.execution_manager_alive(a).await.unwrap());
    db.heartbeat(b, T0 + 1_500).await.unwrap();
    db.heartbeat(b, T0 + 1_500).await.unwrap(); // same timestamp twice is still fine
    let unknown = ExecutionManagerId(c.0 + 100);
    assert!(matches!(
        db.heartbeat(unknown, T0).await,
        Err(DbError::UnknownExecutionManager(_))
    ));

    let dead = db
        .mark_dead_execution_managers(T0 + 1_000, T0 + 2_000)
        .await
        .unwrap();
    assert_eq!(dead, vec![a]);
    assert!(!db.execution_manager_alive(a).await.unwrap());
    assert!(
        matches!(db.heartbeat(a, T0 + 2_001).await, Err(DbError::ExecutionManagerDead(id)) if id == a)
    );
    assert!(
        db.mark_dead_execution_managers(T0 + 1_000, T0 + 2_000)
            .await
            .unwrap()
            .is_empty()
    );

    let dead = db
        .mark_dead_execution_managers(T0 + 5_000, T0 + 5_000)
        .await
        .unwrap();
    assert_eq!(dead, vec![b, c]);
}

/// Regression for upstream #371: a dead-EM sweep racing heartbeats must neither deadlock nor
/// error; every heartbeat is Ok or "already dead", and each EM is declared dead at most once.
async fn liveness_no_deadlock<D: Db>(db: D) {
    let db = Arc::new(db);
    for round in 0..10_i64 {
        let base = T0 + round * 10_000;
        let mut ems = Vec::new();
        for i in 0..16 {
            ems.push(
                db.register_execution_manager(&format!("10.1.0.{i}"), base)
                    .await
                    .unwrap(),
            );
        }
        let mut tasks = tokio::task::JoinSet::new();
        for &em in &ems {
            let db = db.clone();
            tasks.spawn(async move {
                match db.heartbeat(em, base + 1_100).await {
                    Ok(()) | Err(DbError::ExecutionManagerDead(_)) => Vec::new(),
                    Err(e) => panic!("heartbeat: {e}"),
                }
            });
        }
        for _ in 0..2 {
            let db = db.clone();
            tasks.spawn(async move {
                db.mark_dead_execution_managers(base + 1_000, base + 1_100)
                    .await
                    .unwrap()
            });
        }
        let mut dead: Vec<ExecutionManagerId> = Vec::new();
        while let Some(r) = tasks.join_next().await {
            dead.extend(r.unwrap());
        }
        let mut unique = dead.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), dead.len(), "an EM was declared dead twice");
        for em in ems {
            assert_eq!(
                db.execution_manager_alive(em).await.unwrap(),
                !dead.contains(&em)
            );
        }
    }
}

async fn schedulers_replace<D: Db>(db: D) {
    let a = db.register_scheduler("10.0.0.1", 7000, T0).await.unwrap();
    let b = db.register_scheduler("10.0.0.2", 7001, T0).await.unwrap();
    assert_ne!(a, b);
    let all = db.schedulers().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].id, all[0].host.as_str(), all[0].port),
        (b, "10.0.0.2", 7001)
    );
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = crate::storage::testing::fresh_sqlite(dir.path()).await.unwrap();
                    tokio::time::timeout(std::time::Duration::from_secs(120), super::$case(db)).await.expect("watchdog");
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(url) = crate::storage::testing::mysql_url(stringify!($case)) else { return };
                    let db = crate::storage::testing::fresh_mysql(&url).await.unwrap();
                    tokio::time::timeout(std::time::Duration::from_secs(120), super::$case(db)).await.expect("watchdog");
                }
            )*
        }
    };
}

conformance!(
    sessions_increase,
    resource_groups,
    job_lifecycle,
    racing_transitions_have_one_winner,
    completions_and_retention,
    liveness,
    liveness_no_deadlock,
    schedulers_replace,
    open_resource_group,
    open_resource_group_race,
    list_jobs,
);

/// MySQL only: group commits of every batch size from 1 to 300 rows close no prepared statement
/// on their connection. The driver keeps a bounded cache of prepared statements per connection
/// and closes the one it evicts; that close is the one command MySQL does not answer, and the
/// next command waited for the server's delayed TCP acknowledgement (40 ms a commit, once a few
/// jobs had used enough distinct insert shapes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_group_commits_close_no_statements() {
    let Some(server) = crate::storage::testing::mysql_url("group_commits_close_no_statements")
    else {
        return;
    };
    let (url, _name) = crate::storage::testing::create_mysql_database(&server)
        .await
        .unwrap();
    // Migrated by a first connection; the workload then runs on a pool of one connection, so
    // that session's counters are the workload's.
    let migrated = super::MySqlDb::connect(&url).await.unwrap();
    let db = super::MySqlDb {
        pool: sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap(),
        options: migrated.options,
        stats: super::retry::DbStats::default(),
    };
    let g = group(&db, "shapes").await;
    let j = job(&db, g).await;
    let mut next = 0_u64;
    for len in 1..=300_u64 {
        let batch: Vec<Completion> = (next..next + len)
            .map(|task| Completion {
                job: j,
                task,
                outputs: Arc::new(vec![1; 8]),
            })
            .collect();
        next += len;
        db.record_completions(&batch, T0).await.unwrap();
    }
    let (_, closed): (String, String) = sqlx::query_as("SHOW SESSION STATUS LIKE 'Com_stmt_close'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(closed, "0", "prepared statements closed by the driver");
    assert_eq!(
        db.completions(j).await.unwrap().len(),
        usize::try_from(next).unwrap()
    );
}
