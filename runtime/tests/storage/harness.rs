//! Shared pieces of the storage tests: graph builders, value framing, a storage on a fresh
//! database, and simulated execution managers that drive a job through the service layer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use silk_core::JobState;
use silk_core::ids::ExecutionManagerId;
use silk_ipc::FailureKind;
use silk_runtime::storage::db::{Db, Secret};
use silk_runtime::storage::{Error, LaneKind, Storage, StorageConfig};
use silk_tdl::{JobId, ResourceGroupId, TaskId, frame};

/// Config for tests: no background sweeps (tests sweep explicitly at chosen times).
pub fn config() -> StorageConfig {
    StorageConfig {
        terminated_job_retention_ms: 60_000,
        dead_em_cutoff_ms: 1_000,
        sweep_interval_ms: 3_600_000,
        group_commit_max_batch: 256,
        lost_report_grace_ms: 1_000,
        ..StorageConfig::default()
    }
}

/// A storage with one resource group and one execution manager.
pub async fn setup<D: Db + Clone>(db: D) -> (Storage<D>, ResourceGroupId, ExecutionManagerId) {
    setup_with(db, config()).await
}

/// [`setup`] with another config.
pub async fn setup_with<D: Db + Clone>(
    db: D,
    config: StorageConfig,
) -> (Storage<D>, ResourceGroupId, ExecutionManagerId) {
    let storage = Storage::open(db, config).await.unwrap();
    let name = format!("group-{}", storage.session().0);
    let group = storage
        .add_resource_group(&name, &Secret::new(b"pw".to_vec()))
        .await
        .unwrap();
    let (em, _) = storage
        .register_execution_manager("127.0.0.1")
        .await
        .unwrap();
    (storage, group, em)
}

/// `v` as one MessagePack bin value.
pub fn bin(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &rmpv::Value::Binary(v.to_vec())).unwrap();
    out
}

/// Frames values.
pub fn framed(values: &[Vec<u8>]) -> Vec<u8> {
    frame::encode(values).unwrap()
}

/// `n` independent tasks, one bytes input and output each, optional commit and cleanup.
pub fn flat_graph(n: usize, termination: bool, policy: &str) -> String {
    let task = format!(
        r#"{{"package": "test", "function": "flat_task", "inputs": ["bytes"], "outputs": ["bytes"], "policy": {policy}}}"#
    );
    let tasks = vec![task; n].join(",");
    let term = if termination {
        format!(
            r#", "commit": {{"package": "test", "function": "noop_commit", "policy": {policy}}},
                "cleanup": {{"package": "test", "function": "noop_cleanup", "policy": {policy}}}"#
        )
    } else {
        String::new()
    };
    format!(r#"{{"schema_version": "1.0", "tasks": [{tasks}]{term}}}"#)
}

/// Inputs of a flat graph: `n` values of `size` zero bytes.
pub fn flat_inputs(n: usize, size: usize) -> Vec<u8> {
    framed(&vec![bin(&vec![0; size]); n])
}

/// What the simulated execution managers did.
#[derive(Debug, Default)]
pub struct Counts {
    /// Regular tasks reported successfully.
    pub successes: AtomicU64,
    /// Commit tasks run to success.
    pub commits: AtomicU64,
    /// Cleanup tasks run to success.
    pub cleanups: AtomicU64,
    /// Task indexes that succeeded more than once.
    pub duplicates: AtomicU64,
}

/// How the simulated execution managers behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The first time a task is seen, every second task (by index) gets two concurrent
    /// instances that both fail; otherwise instances succeed.
    InjectFailures,
    /// Every instance fails.
    AlwaysFail,
}

fn tolerated(e: &Error) -> bool {
    matches!(e, Error::Stale(_) | Error::InvalidTransition { .. })
}

/// Runs `ems` simulated execution managers on `job` until it is terminal; returns its state.
pub async fn drive<D: Db + Clone>(
    storage: &Storage<D>,
    job: JobId,
    ems: usize,
    mode: Mode,
    counts: Arc<Counts>,
) -> JobState {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let succeeded = Arc::new(Mutex::new(HashSet::new()));
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..ems {
        let (storage, stop, seen, succeeded, counts) = (
            storage.clone(),
            stop.clone(),
            seen.clone(),
            succeeded.clone(),
            counts.clone(),
        );
        workers.spawn(async move {
            let (em, session) = storage
                .register_execution_manager(&format!("10.0.0.{i}"))
                .await
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                let mut entries = storage
                    .lanes()
                    .poll(LaneKind::Ready, 4, Duration::from_millis(5))
                    .await;
                entries.extend(
                    storage
                        .lanes()
                        .poll(LaneKind::Commit, 1, Duration::ZERO)
                        .await,
                );
                entries.extend(
                    storage
                        .lanes()
                        .poll(LaneKind::Cleanup, 1, Duration::ZERO)
                        .await,
                );
                for entry in entries {
                    let task = entry.task;
                    let inject = match (mode, task) {
                        (Mode::AlwaysFail, _) => true,
                        (Mode::InjectFailures, TaskId::Index(n)) => {
                            n % 2 == 1 && seen.lock().unwrap().insert(n)
                        }
                        _ => false,
                    };
                    if inject {
                        let attempts = if mode == Mode::AlwaysFail { 1 } else { 2 };
                        let mut pair = Vec::new();
                        for _ in 0..attempts {
                            let storage = storage.clone();
                            pair.push(tokio::spawn(async move {
                                let ctx = match storage
                                    .register_instance(session, entry.job, task, em)
                                    .await
                                {
                                    Ok(ctx) => ctx,
                                    Err(e) if tolerated(&e) => return,
                                    Err(e) => panic!("register: {e}"),
                                };
                                match storage
                                    .report_failure(
                                        session,
                                        entry.job,
                                        task,
                                        ctx.instance,
                                        FailureKind::TaskError,
                                        "injected",
                                    )
                                    .await
                                {
                                    Ok(()) => {}
                                    Err(e) if tolerated(&e) => {}
                                    Err(e) => panic!("report failure: {e}"),
                                }
                            }));
                        }
                        for p in pair {
                            p.await.unwrap();
                        }
                        continue;
                    }
                    let ctx = match storage
                        .register_instance(session, entry.job, task, em)
                        .await
                    {
                        Ok(ctx) => ctx,
                        Err(e) if tolerated(&e) => continue,
                        Err(e) => panic!("register {task}: {e}"),
                    };
                    let outputs = match task {
                        TaskId::Index(_) => {
                            let inputs = frame::decode(&ctx.inputs).unwrap();
                            framed(&[inputs[0].to_vec()])
                        }
                        TaskId::Commit => {
                            let outputs = ctx
                                .job_outputs
                                .clone()
                                .expect("commit sees the job outputs");
                            assert!(!frame::decode(&outputs).unwrap().is_empty());
                            Vec::new()
                        }
                        TaskId::Cleanup => {
                            assert_eq!(ctx.inputs, [0, 0, 0, 0]);
                            Vec::new()
                        }
                    };
                    match storage
                        .report_success(session, entry.job, task, ctx.instance, outputs)
                        .await
                    {
                        Ok(()) => match task {
                            TaskId::Index(n) => {
                                counts.successes.fetch_add(1, Ordering::Relaxed);
                                if !succeeded.lock().unwrap().insert(n) {
                                    counts.duplicates.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            TaskId::Commit => {
                                counts.commits.fetch_add(1, Ordering::Relaxed);
                            }
                            TaskId::Cleanup => {
                                counts.cleanups.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        Err(e) if tolerated(&e) => {}
                        Err(e) => panic!("report success {task}: {e}"),
                    }
                }
            }
        });
    }
    let mut watch = storage.watch_job(job).await.unwrap();
    let state = loop {
        let p = *watch.borrow_and_update();
        if p.is_terminal() {
            break p.state.unwrap();
        }
        watch.changed().await.unwrap();
    };
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    state
}

/// Registers and starts a job.
pub async fn submit<D: Db + Clone>(
    storage: &Storage<D>,
    group: ResourceGroupId,
    graph: &str,
    inputs: &[u8],
) -> JobId {
    let job = storage.register_job(group, graph, inputs).await.unwrap();
    storage.start_job(job).await.unwrap();
    job
}
