//! Storage bench: the per-task control-plane cost — register a task instance, then report its
//! success (outputs persisted with group commit) — on SQLite, through the service layer and
//! through gRPC (loopback, `TCP_NODELAY`), one after the other in one process.
//!
//! Paths:
//! * `service/1`: one task at a time (every completion is its own transaction);
//! * `service/32`: 32 concurrent simulated EMs;
//! * `grpc-unary/32`: 32 concurrent clients, one `RegisterTaskInstance` + one
//!   `ReportTaskSuccess` per task;
//! * `grpc-batched/32x16`: 32 concurrent clients, each carrying 16 tasks per
//!   `RegisterTaskInstances` + `ReportTaskOutcomes`.
//!
//! Criterion reports time per task; the tasks/s of each path are also written to
//! `target/silk-bench/storage.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use silk_core::ids::{ExecutionManagerId, SessionId};
use silk_proto::storage as pb;
use silk_proto::storage::task_instances_client::TaskInstancesClient;
use silk_runtime::storage::db::{Secret, SqliteDb};
use silk_runtime::storage::{Storage, StorageConfig, grpc, testing};
use silk_tdl::{JobId, TaskId, frame};
use tokio::runtime::Runtime;

struct Env {
    storage: Storage<SqliteDb>,
    group: silk_tdl::ResourceGroupId,
    em: ExecutionManagerId,
    session: SessionId,
    url: String,
    _dir: tempfile::TempDir,
}

fn value() -> Vec<u8> {
    // A 16-byte MessagePack bin value.
    let mut v = vec![0xc4, 16];
    v.extend([0u8; 16]);
    v
}

fn job_json(n: u64) -> String {
    let task =
        r#"{"package": "bench", "function": "noop", "inputs": ["bytes"], "outputs": ["bytes"]}"#;
    let tasks = vec![task; usize::try_from(n).unwrap()].join(",");
    format!(r#"{{"schema_version": "1.0", "tasks": [{tasks}]}}"#)
}

async fn setup() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = testing::fresh_sqlite(dir.path()).await.unwrap();
    let config = StorageConfig {
        sweep_interval_ms: 3_600_000,
        ..StorageConfig::default()
    };
    let storage = Storage::open(db, config).await.unwrap();
    let group = storage
        .add_resource_group("bench", &Secret::new(b"pw".to_vec()))
        .await
        .unwrap();
    let (em, session) = storage
        .register_execution_manager("127.0.0.1")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(grpc::serve(
        storage.clone(),
        listener,
        std::future::pending(),
    ));
    Env {
        storage,
        group,
        em,
        session,
        url,
        _dir: dir,
    }
}

async fn job(env: &Env, n: u64) -> JobId {
    let inputs = frame::encode(vec![value(); usize::try_from(n).unwrap()]).unwrap();
    let job = env
        .storage
        .register_job(env.group, &job_json(n), &inputs)
        .await
        .unwrap();
    env.storage.start_job(job).await.unwrap();
    job
}

/// Runs `n` tasks with `workers` concurrent service-layer EMs; returns the elapsed time.
async fn service(env: &Env, n: u64, workers: u64) -> Duration {
    let job = job(env, n).await;
    let next = Arc::new(AtomicU64::new(0));
    let outputs = frame::encode([value()]).unwrap();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (storage, next, outputs) = (env.storage.clone(), next.clone(), outputs.clone());
        let (em, s) = (env.em, env.session);
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = TaskId::Index(i);
                let ctx = storage.register_instance(s, job, t, em).await.unwrap();
                storage
                    .report_success(s, job, t, ctx.instance, outputs.clone())
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    start.elapsed()
}

fn task_ref(job: JobId, i: u64) -> pb::TaskRef {
    pb::TaskRef {
        job_id: job.0,
        task_id: Some(pb::TaskId {
            kind: Some(pb::task_id::Kind::Index(i)),
        }),
    }
}

/// Runs `n` tasks with `workers` gRPC clients, `batch` tasks per call (1 = unary RPCs).
async fn over_grpc(
    env: &Env,
    clients: &[TaskInstancesClient<tonic::transport::Channel>],
    n: u64,
    batch: u64,
) -> Duration {
    let job = job(env, n).await;
    let next = Arc::new(AtomicU64::new(0));
    let outputs = frame::encode([value()]).unwrap();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for client in clients {
        let (mut client, next, outputs) = (client.clone(), next.clone(), outputs.clone());
        let (em, s) = (env.em.0, env.session.0);
        set.spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= n {
                    break;
                }
                let ids: Vec<u64> = (first..(first + batch).min(n)).collect();
                if batch == 1 {
                    let ctx = client
                        .register_task_instance(pb::RegisterTaskInstanceRequest {
                            session_id: s,
                            execution_manager_id: em,
                            task: Some(task_ref(job, ids[0])),
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    let success = pb::TaskSuccess {
                        session_id: s,
                        execution_manager_id: em,
                        task: Some(task_ref(job, ids[0])),
                        task_instance_id: ctx.task_instance_id,
                        outputs: outputs.clone(),
                    };
                    client.report_task_success(success).await.unwrap();
                    continue;
                }
                let request = pb::RegisterTaskInstancesRequest {
                    session_id: s,
                    execution_manager_id: em,
                    tasks: ids.iter().map(|&i| task_ref(job, i)).collect(),
                    ..Default::default()
                };
                let results = client
                    .register_task_instances(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .results;
                let outcomes = ids
                    .iter()
                    .zip(results)
                    .map(|(&i, r)| {
                        let Some(pb::register_result::Result::Context(ctx)) = r.result else {
                            panic!("register failed: {r:?}")
                        };
                        pb::TaskOutcome {
                            task: Some(task_ref(job, i)),
                            task_instance_id: ctx.task_instance_id,
                            outcome: Some(pb::task_outcome::Outcome::Outputs(outputs.clone())),
                        }
                    })
                    .collect();
                let request = pb::ReportTaskOutcomesRequest {
                    session_id: s,
                    execution_manager_id: em,
                    outcomes,
                };
                let results = client
                    .report_task_outcomes(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .results;
                assert!(results.iter().all(|r| r.error.is_none()));
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let env = rt.block_on(setup());
    let clients: Vec<_> = rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..32 {
            clients.push(TaskInstancesClient::new(
                grpc::connect(&env.url).await.unwrap(),
            ));
        }
        clients
    });
    let mut rows: Vec<(String, u64, Duration)> = Vec::new();
    let mut group = c.benchmark_group("storage");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    let paths: [(&str, u64, u64); 4] = [
        ("service/1", 1, 0),
        ("service/32", 32, 0),
        ("grpc-unary/32", 32, 1),
        ("grpc-batched/32x16", 32, 16),
    ];
    for (name, workers, batch) in paths {
        let (mut tasks, mut spent) = (0_u64, Duration::ZERO);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let elapsed = rt.block_on(async {
                    if batch == 0 {
                        service(&env, iters, workers).await
                    } else {
                        over_grpc(
                            &env,
                            &clients[..usize::try_from(workers).unwrap()],
                            iters,
                            batch,
                        )
                        .await
                    }
                });
                tasks += iters;
                spent += elapsed;
                elapsed
            });
        });
        rows.push((name.to_owned(), tasks, spent));
    }
    group.finish();
    report(&rows);
    rt.block_on(env.storage.shutdown());
}

fn report(rows: &[(String, u64, Duration)]) {
    let mut md = String::from(
        "# storage bench (SQLite, register-instance + report-success per task)\n\n| path | tasks | tasks/s | µs/task |\n|---|---|---|---|\n",
    );
    for (name, tasks, spent) in rows {
        let secs = spent.as_secs_f64();
        #[expect(clippy::cast_precision_loss, reason = "task counts far below 2^52")]
        let (rate, per) = (*tasks as f64 / secs, secs * 1e6 / *tasks as f64);
        md.push_str(&format!("| {name} | {tasks} | {rate:.0} | {per:.1} |\n"));
    }
    println!("\n{md}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/silk-bench");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("storage.md"), md);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
