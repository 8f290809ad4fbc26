//! Load scenarios: the 10 000-task flat job driven by 64 simulated execution managers with 50 %
//! injected failures (success, immediate cancel, cancel race), the layered "neural net" graph
//! (fan-in with duplicate sources) and the always-fail job.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use silk_core::JobState;
use silk_ipc::FailureKind;
use silk_runtime::storage::db::Db;
use silk_tdl::frame;

use crate::harness::{Counts, Mode, drive, flat_graph, flat_inputs, setup, submit};

async fn flat<D: Db + Clone>(
    db: D,
    tasks: usize,
    cancel_after: Option<Duration>,
) -> (JobState, Arc<Counts>, JobState) {
    let (storage, group, _) = setup(db).await;
    let policy = r#"{"max_retries": 3, "max_instances": 2}"#;
    let job = submit(
        &storage,
        group,
        &flat_graph(tasks, true, policy),
        &flat_inputs(tasks, 128),
    )
    .await;
    let counts = Arc::new(Counts::default());
    let canceller = cancel_after.map(|after| {
        let storage = storage.clone();
        tokio::spawn(async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            storage.cancel_job(job).await
        })
    });
    if cancel_after == Some(Duration::ZERO) {
        // "Immediately": before any EM processed anything.
        canceller.unwrap().await.unwrap().unwrap();
        let state = drive(&storage, job, 64, Mode::InjectFailures, counts.clone()).await;
        let stored = storage.db().job(job).await.unwrap().state;
        storage.shutdown().await;
        return (state, counts, stored);
    }
    let state = drive(&storage, job, 64, Mode::InjectFailures, counts.clone()).await;
    if let Some(c) = canceller {
        let _ = c.await.unwrap();
    }
    let stored = storage.db().job(job).await.unwrap();
    if state == JobState::Succeeded {
        assert!(!stored.outputs.unwrap().is_empty());
        assert_eq!(
            storage
                .job_outputs(job)
                .await
                .map(|o| frame::decode(&o).unwrap().len())
                .unwrap(),
            tasks
        );
    }
    storage.shutdown().await;
    (state, counts, stored.state)
}

pub async fn flat_10k_success<D: Db + Clone>(db: D) {
    let (state, counts, stored) = flat(db, 10_000, None).await;
    assert_eq!((state, stored), (JobState::Succeeded, JobState::Succeeded));
    assert_eq!(counts.successes.load(Ordering::Relaxed), 10_000);
    assert_eq!(counts.duplicates.load(Ordering::Relaxed), 0);
    assert_eq!(counts.commits.load(Ordering::Relaxed), 1);
    assert_eq!(counts.cleanups.load(Ordering::Relaxed), 0);
}

pub async fn flat_10k_cancel<D: Db + Clone>(db: D) {
    let (state, counts, stored) = flat(db, 10_000, Some(Duration::ZERO)).await;
    assert_eq!((state, stored), (JobState::Cancelled, JobState::Cancelled));
    assert_eq!(counts.successes.load(Ordering::Relaxed), 0);
    assert_eq!(counts.commits.load(Ordering::Relaxed), 0);
    assert_eq!(counts.cleanups.load(Ordering::Relaxed), 1);
}

pub async fn flat_cancel_race<D: Db + Clone>(db: D) {
    let (state, counts, stored) = flat(db, 100, Some(Duration::from_millis(1))).await;
    assert_eq!(state, stored);
    match state {
        JobState::Succeeded => assert_eq!(counts.commits.load(Ordering::Relaxed), 1),
        JobState::Cancelled => assert_eq!(counts.cleanups.load(Ordering::Relaxed), 1),
        other => panic!("terminal state {other}"),
    }
    assert_eq!(counts.duplicates.load(Ordering::Relaxed), 0);
}

pub async fn always_fail<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    let job = submit(
        &storage,
        group,
        &flat_graph(3, false, "{}"),
        &flat_inputs(3, 128),
    )
    .await;
    let counts = Arc::new(Counts::default());
    let state = drive(&storage, job, 4, Mode::AlwaysFail, counts.clone()).await;
    assert_eq!(state, JobState::Failed);
    assert_eq!(counts.successes.load(Ordering::Relaxed), 0);
    let error = storage.job_error(job).await.unwrap();
    assert_eq!(error.kind, FailureKind::TaskError);
    assert!(
        error
            .message
            .contains("(test::flat_task) failed after 1 attempt(s) [TaskError]: injected"),
        "{}",
        error.message
    );
    let outputs = storage.job_outputs(job).await.unwrap_err();
    assert!(
        outputs
            .to_string()
            .contains("is Failed: outputs are only available once it is Succeeded"),
        "{outputs}"
    );
    storage.shutdown().await;
}

/// Upstream's storage "neural net" graph, scaled down: `layers` × `width` tasks; layer 0 takes
/// one job input each, every later task takes 25 inputs drawn with replacement (duplicates
/// allowed) from the previous layer (fixed-seed LCG).
fn nn_graph(layers: usize, width: usize) -> String {
    let mut seed: u64 = 0;
    let mut next = || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(seed >> 33).unwrap() % width
    };
    let policy = r#"{"max_retries": 3, "max_instances": 2}"#;
    let mut tasks = Vec::new();
    for layer in 0..layers {
        for _ in 0..width {
            if layer == 0 {
                tasks.push(format!(
                    r#"{{"package": "test", "function": "nn_task", "inputs": ["bytes"], "outputs": ["bytes"], "policy": {policy}}}"#
                ));
            } else {
                let sources: Vec<String> = (0..25)
                    .map(|_| {
                        format!(
                            r#"{{"task": {}, "output": 0}}"#,
                            (layer - 1) * width + next()
                        )
                    })
                    .collect();
                tasks.push(format!(
                    r#"{{"package": "test", "function": "nn_task", "inputs": [{}], "outputs": ["bytes"], "sources": [{}], "policy": {policy}}}"#,
                    vec![r#""bytes""#; 25].join(","),
                    sources.join(",")
                ));
            }
        }
    }
    format!(
        r#"{{"schema_version": "1.0", "tasks": [{}]}}"#,
        tasks.join(",")
    )
}

pub async fn nn_success<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    let (layers, width) = (5, 200);
    let job = submit(
        &storage,
        group,
        &nn_graph(layers, width),
        &flat_inputs(width, 128),
    )
    .await;
    let counts = Arc::new(Counts::default());
    let state = drive(&storage, job, 64, Mode::InjectFailures, counts.clone()).await;
    assert_eq!(state, JobState::Succeeded);
    assert_eq!(
        counts.successes.load(Ordering::Relaxed),
        (layers * width) as u64
    );
    assert_eq!(counts.duplicates.load(Ordering::Relaxed), 0);
    let outputs = storage.job_outputs(job).await.unwrap();
    assert_eq!(
        frame::decode(&outputs).unwrap().len(),
        width,
        "the last layer's outputs"
    );
    storage.shutdown().await;
}

pub async fn nn_cancel<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    let job = submit(&storage, group, &nn_graph(5, 200), &flat_inputs(200, 128)).await;
    storage.cancel_job(job).await.unwrap();
    let counts = Arc::new(Counts::default());
    let state = drive(&storage, job, 64, Mode::InjectFailures, counts.clone()).await;
    assert_eq!(state, JobState::Cancelled);
    assert_eq!(counts.successes.load(Ordering::Relaxed), 0);
    assert_eq!(
        storage.db().job(job).await.unwrap().state,
        JobState::Cancelled
    );
    storage.shutdown().await;
}
