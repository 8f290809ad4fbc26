//! Storage service scenarios (upstream's, rewritten): registration concurrency, the diamond
//! graph, bad input, cancel rules, liveness and retention.

use std::time::Duration;

use silk_core::JobState;
use silk_core::ids::SessionId;
use silk_runtime::storage::db::Db;
use silk_runtime::storage::{Error, LaneKind, Stale};
use silk_tdl::{JobId, TaskId, TaskInstanceId};

use crate::harness::{bin, flat_graph, flat_inputs, framed, setup, submit};

pub async fn registration_concurrency<D: Db + Clone>(db: D) {
    let (storage, group, em) = setup(db).await;
    let s = storage.session();
    let job = submit(
        &storage,
        group,
        &flat_graph(2, false, r#"{"max_instances": 10}"#),
        &flat_inputs(2, 4),
    )
    .await;
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let storage = storage.clone();
        all.spawn(async move {
            storage
                .register_instance(s, job, TaskId::Index(0), em)
                .await
        });
    }
    let (mut ok, mut limited) = (Vec::new(), 0);
    while let Some(r) = all.join_next().await {
        match r.unwrap() {
            Ok(ctx) => ok.push(ctx.instance),
            Err(Error::Stale(Stale::InstanceLimit { max: 10, .. })) => limited += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok.len(), limited), (10, 6));
    storage
        .report_success(s, job, TaskId::Index(0), ok[0], framed(&[bin(&[1])]))
        .await
        .unwrap();
    for instance in &ok[1..] {
        let late = storage
            .report_success(s, job, TaskId::Index(0), *instance, framed(&[bin(&[1])]))
            .await;
        assert!(
            matches!(late, Err(Error::Stale(Stale::TaskTerminated { .. }))),
            "{late:?}"
        );
    }
    let again = storage
        .register_instance(s, job, TaskId::Index(0), em)
        .await;
    assert!(
        matches!(again, Err(Error::Stale(Stale::TaskTerminated { .. }))),
        "{again:?}"
    );
    storage.shutdown().await;
}

pub async fn diamond_exact_inputs<D: Db + Clone>(db: D) {
    let (storage, group, em) = setup(db).await;
    let s = storage.session();
    let graph = r#"{"schema_version": "1.0", "tasks": [
        {"package": "t", "function": "a", "inputs": ["bytes", "bytes"], "outputs": ["bytes", "bytes"]},
        {"package": "t", "function": "b", "inputs": ["bytes", "bytes"], "outputs": ["bytes"],
         "sources": [{"task": 0, "output": 0}, {"task": 0, "output": 1}]},
        {"package": "t", "function": "c", "inputs": ["bytes", "bytes"], "outputs": ["bytes"],
         "sources": [{"task": 0, "output": 0}, {"task": 0, "output": 1}]},
        {"package": "t", "function": "d", "inputs": ["bytes", "bytes"], "outputs": ["bytes"],
         "sources": [{"task": 1, "output": 0}, {"task": 2, "output": 0}]}]}"#;
    let (a, b) = (bin(&[1, 2, 3, 4]), bin(&[9, 8, 7, 6]));
    let job = submit(&storage, group, graph, &framed(&[a.clone(), b.clone()])).await;
    let poll = || {
        storage
            .lanes()
            .poll(LaneKind::Ready, 10, Duration::from_millis(50))
    };
    let tasks = |v: Vec<silk_runtime::storage::ReadyTask>| {
        v.into_iter().map(|r| r.task).collect::<Vec<_>>()
    };
    assert_eq!(tasks(poll().await), [TaskId::Index(0)]);
    let ctx = storage
        .register_instance(s, job, TaskId::Index(0), em)
        .await
        .unwrap();
    assert_eq!(ctx.inputs, framed(&[a.clone(), b.clone()]));
    assert_eq!((ctx.package.as_str(), ctx.function.as_str()), ("t", "a"));
    storage
        .report_success(
            s,
            job,
            TaskId::Index(0),
            ctx.instance,
            framed(&[a.clone(), b.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(tasks(poll().await), [TaskId::Index(1), TaskId::Index(2)]);
    // B and C finish concurrently: D is released exactly once.
    let b_ctx = storage
        .register_instance(s, job, TaskId::Index(1), em)
        .await
        .unwrap();
    let c_ctx = storage
        .register_instance(s, job, TaskId::Index(2), em)
        .await
        .unwrap();
    assert_eq!(b_ctx.inputs, framed(&[a.clone(), b.clone()]));
    assert_eq!(c_ctx.inputs, framed(&[a.clone(), b.clone()]));
    let (r1, r2) = tokio::join!(
        storage.report_success(
            s,
            job,
            TaskId::Index(1),
            b_ctx.instance,
            framed(std::slice::from_ref(&b))
        ),
        storage.report_success(
            s,
            job,
            TaskId::Index(2),
            c_ctx.instance,
            framed(std::slice::from_ref(&a))
        ),
    );
    r1.unwrap();
    r2.unwrap();
    assert_eq!(tasks(poll().await), [TaskId::Index(3)]);
    let d = storage
        .register_instance(s, job, TaskId::Index(3), em)
        .await
        .unwrap();
    assert_eq!(d.inputs, framed(&[b.clone(), a.clone()]));
    let out = bin(&[8, 10, 4, 2]);
    let early = storage.job_outputs(job).await.unwrap_err();
    assert!(
        matches!(
            early,
            Error::NotAvailable {
                state: JobState::Running,
                ..
            }
        ),
        "{early}"
    );
    storage
        .report_success(
            s,
            job,
            TaskId::Index(3),
            d.instance,
            framed(std::slice::from_ref(&out)),
        )
        .await
        .unwrap();
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Succeeded);
    assert_eq!(storage.job_outputs(job).await.unwrap(), framed(&[out]));
    storage.shutdown().await;
}

pub async fn bad_input_is_answered<D: Db + Clone>(db: D) {
    let (storage, group, em) = setup(db).await;
    let s = storage.session();
    let bad = storage.register_job(group, "{", &[]).await.unwrap_err();
    assert!(matches!(bad, Error::Graph(_)), "{bad}");
    let bad = storage
        .register_job(group, &flat_graph(2, false, "{}"), &flat_inputs(1, 4))
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("expected 2 values, frame has 1"),
        "{bad}"
    );
    let unknown = JobId(u64::MAX / 2);
    assert!(matches!(
        storage.start_job(unknown).await,
        Err(Error::JobNotFound(_))
    ));
    assert!(matches!(
        storage.job_state(unknown).await,
        Err(Error::JobNotFound(_))
    ));
    assert!(matches!(
        storage
            .register_instance(s, unknown, TaskId::Index(0), em)
            .await,
        Err(Error::JobNotFound(_))
    ));

    let policy = r#"{"max_retries": 1}"#;
    let job = submit(
        &storage,
        group,
        &flat_graph(1, false, policy),
        &flat_inputs(1, 4),
    )
    .await;
    let t = TaskId::Index(0);
    let stale = storage
        .register_instance(SessionId(s.0 - 1), job, t, em)
        .await
        .unwrap_err();
    assert!(matches!(stale, Error::StaleSession { .. }), "{stale}");
    assert!(matches!(
        storage
            .register_instance(s, job, TaskId::Index(1), em)
            .await,
        Err(Error::NoSuchTask { .. })
    ));
    assert!(matches!(
        storage
            .report_success(s, job, t, TaskInstanceId(999_999), framed(&[bin(&[1])]))
            .await,
        Err(Error::Stale(Stale::UnknownInstance { .. }))
    ));
    // Wrong number of outputs: a clear error, counted as a failure (retry left → queued again).
    let ctx = storage.register_instance(s, job, t, em).await.unwrap();
    let wrong = storage
        .report_success(s, job, t, ctx.instance, framed(&[bin(&[1]), bin(&[2])]))
        .await
        .unwrap_err();
    assert!(
        wrong
            .to_string()
            .contains("task returned 2 output(s), the graph declares 1"),
        "{wrong}"
    );
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Running);
    // Malformed bytes: out of retries, the job fails readably.
    let ctx = storage.register_instance(s, job, t, em).await.unwrap();
    let wrong = storage
        .report_success(s, job, t, ctx.instance, vec![7, 0, 0])
        .await
        .unwrap_err();
    assert!(matches!(wrong, Error::InvalidOutputs { .. }), "{wrong}");
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Failed);
    let error = storage.job_error(job).await.unwrap();
    assert!(
        error
            .message
            .contains("invalid outputs: malformed outputs frame"),
        "{}",
        error.message
    );
    // The service still works.
    let next = submit(
        &storage,
        group,
        &flat_graph(1, false, "{}"),
        &flat_inputs(1, 4),
    )
    .await;
    assert_eq!(storage.job_state(next).await.unwrap(), JobState::Running);
    storage.shutdown().await;
}

pub async fn cancel_rules<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    // Cancelling a Ready job with a cleanup task is allowed (upstream rejected it).
    let job = storage
        .register_job(group, &flat_graph(1, true, "{}"), &flat_inputs(1, 4))
        .await
        .unwrap();
    assert_eq!(
        storage.cancel_job(job).await.unwrap(),
        JobState::CleanupReady
    );
    let again = storage.cancel_job(job).await.unwrap_err();
    assert!(
        again.to_string().contains("CleanupReady -> CleanupReady"),
        "{again}"
    );
    let plain = submit(
        &storage,
        group,
        &flat_graph(1, false, "{}"),
        &flat_inputs(1, 4),
    )
    .await;
    assert_eq!(
        storage.cancel_job(plain).await.unwrap(),
        JobState::Cancelled
    );
    let again = storage.cancel_job(plain).await.unwrap_err();
    assert!(
        again.to_string().contains("Cancelled -> Cancelled"),
        "{again}"
    );
    let start = storage.start_job(plain).await.unwrap_err();
    assert!(
        start.to_string().contains("Cancelled -> Running"),
        "{start}"
    );
    storage.shutdown().await;
}

/// A job that ends early (cancelled, or failed by one task) names its other running instances
/// to their EMs in the heartbeat answers, once.
pub async fn ended_jobs_stop_their_instances<D: Db + Clone>(db: D) {
    let (storage, group, em) = setup(db).await;
    let s = storage.session();
    let (other, _) = storage
        .register_execution_manager("10.9.9.9")
        .await
        .unwrap();
    let stops = |em| {
        let storage = storage.clone();
        async move { storage.heartbeat_and_stops(em).await.unwrap().1 }
    };
    let cancelled = submit(
        &storage,
        group,
        &flat_graph(3, false, "{}"),
        &flat_inputs(3, 4),
    )
    .await;
    let a = storage
        .register_instance(s, cancelled, TaskId::Index(0), em)
        .await
        .unwrap();
    let b = storage
        .register_instance(s, cancelled, TaskId::Index(1), other)
        .await
        .unwrap();
    assert!(stops(em).await.is_empty(), "nothing to stop while it runs");
    storage.cancel_job(cancelled).await.unwrap();
    assert_eq!(stops(em).await, [a.instance]);
    assert_eq!(stops(other).await, [b.instance]);
    assert!(stops(em).await.is_empty(), "named once");

    let policy = r#"{"max_retries": 0}"#;
    let failed = submit(
        &storage,
        group,
        &flat_graph(2, false, policy),
        &flat_inputs(2, 4),
    )
    .await;
    let c = storage
        .register_instance(s, failed, TaskId::Index(0), em)
        .await
        .unwrap();
    let d = storage
        .register_instance(s, failed, TaskId::Index(1), other)
        .await
        .unwrap();
    storage
        .report_failure(
            s,
            failed,
            TaskId::Index(0),
            c.instance,
            silk_ipc::FailureKind::TaskError,
            "boom",
        )
        .await
        .unwrap();
    assert_eq!(
        storage.db().job(failed).await.unwrap().state,
        JobState::Failed
    );
    assert_eq!(stops(other).await, [d.instance]);
    assert!(
        stops(em).await.is_empty(),
        "the failed instance itself is over"
    );
    storage.shutdown().await;
}

pub async fn dead_em_and_soft_timeout<D: Db + Clone>(db: D) {
    let (storage, group, em) = setup(db).await;
    let s = storage.session();
    let policy = r#"{"max_instances": 2, "soft_timeout_ms": 100, "hard_timeout_ms": 60000}"#;
    let job = submit(
        &storage,
        group,
        &flat_graph(2, false, policy),
        &flat_inputs(2, 4),
    )
    .await;
    let drained = storage
        .lanes()
        .poll(LaneKind::Ready, 10, Duration::from_millis(50))
        .await;
    assert_eq!(drained.len(), 2);
    let (other, _) = storage
        .register_execution_manager("10.9.9.9")
        .await
        .unwrap();
    let on_dead = storage
        .register_instance(s, job, TaskId::Index(0), em)
        .await
        .unwrap();
    let on_live = storage
        .register_instance(s, job, TaskId::Index(1), other)
        .await
        .unwrap();
    // Only `other` heartbeats; `em` falls silent past the cutoff.
    let later = silk_runtime_now() + 5_000;
    storage.db().heartbeat(other, later).await.unwrap();
    let dead = storage.sweep_liveness(later).await.unwrap();
    assert_eq!(dead, vec![em]);
    let requeued = storage
        .lanes()
        .poll(LaneKind::Ready, 10, Duration::from_millis(50))
        .await;
    // Task 0 is queued because its EM died; task 1 once for its soft timeout.
    let mut tasks: Vec<TaskId> = requeued.iter().map(|r| r.task).collect();
    tasks.sort_by_key(|t| format!("{t}"));
    assert_eq!(tasks, [TaskId::Index(0), TaskId::Index(1)]);
    let late = storage
        .report_success(
            s,
            job,
            TaskId::Index(0),
            on_dead.instance,
            framed(&[bin(&[1])]),
        )
        .await;
    assert!(
        matches!(late, Err(Error::Stale(Stale::UnknownInstance { .. }))),
        "{late:?}"
    );
    assert!(matches!(
        storage.heartbeat(em).await,
        Err(Error::ExecutionManagerDead(_))
    ));
    let refused = storage
        .register_instance(s, job, TaskId::Index(0), em)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::ExecutionManagerDead(_)),
        "{refused}"
    );
    // Soft timeout fires once per instance.
    storage.sweep_liveness(later + 10).await.unwrap();
    let requeued = storage
        .lanes()
        .poll(LaneKind::Ready, 10, Duration::from_millis(50))
        .await;
    assert_eq!(
        requeued.iter().map(|r| r.task).collect::<Vec<_>>(),
        [TaskId::Index(0)],
        "re-queued by the refused registration only"
    );
    storage
        .report_success(
            s,
            job,
            TaskId::Index(1),
            on_live.instance,
            framed(&[bin(&[1])]),
        )
        .await
        .unwrap();
    storage.shutdown().await;
}

pub async fn retention<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    let job = submit(
        &storage,
        group,
        &flat_graph(1, false, "{}"),
        &flat_inputs(1, 4),
    )
    .await;
    storage.cancel_job(job).await.unwrap();
    let now = silk_runtime_now();
    assert_eq!(
        storage.collect_garbage(now + 1_000).await.unwrap(),
        0,
        "within retention"
    );
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Cancelled);
    storage.collect_garbage(now + 120_000).await.unwrap();
    assert!(matches!(
        storage.job_state(job).await,
        Err(Error::JobNotFound(_))
    ));
    storage.shutdown().await;
}

fn silk_runtime_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

pub async fn replacing_scheduler_gets_ready_tasks_again<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    let job = submit(
        &storage,
        group,
        &flat_graph(2, false, "{}"),
        &flat_inputs(2, 4),
    )
    .await;
    let poll = || {
        storage
            .lanes()
            .poll(LaneKind::Ready, 10, Duration::from_millis(20))
    };
    assert_eq!(poll().await.len(), 2);
    let (first, session) = storage.register_scheduler("10.0.0.1", 7000).await.unwrap();
    assert_eq!(session, storage.session());
    assert!(
        poll().await.is_empty(),
        "the first scheduler gets no resend"
    );
    let (second, _) = storage.register_scheduler("10.0.0.2", 7000).await.unwrap();
    assert_ne!(first, second);
    let resent: Vec<_> = poll()
        .await
        .into_iter()
        .filter(|r| r.job == job)
        .map(|r| r.task)
        .collect();
    assert_eq!(resent, [TaskId::Index(0), TaskId::Index(1)]);
    let schedulers = storage.db().schedulers().await.unwrap();
    assert_eq!(
        schedulers.iter().map(|s| s.id).collect::<Vec<_>>(),
        [second]
    );
    storage.shutdown().await;
}

/// Upstream bug #4: a report lost while its EM stays alive must not hang the job.
pub async fn lost_report_does_not_hang_the_job<D: Db + Clone>(db: D) {
    let (storage, group, em) = setup(db).await;
    let s = storage.session();
    let policy = r#"{"soft_timeout_ms": 100, "hard_timeout_ms": 200}"#;
    let job = submit(
        &storage,
        group,
        &flat_graph(1, false, policy),
        &flat_inputs(1, 4),
    )
    .await;
    let _ = storage
        .lanes()
        .poll(LaneKind::Ready, 10, Duration::from_millis(20))
        .await;
    let lost = storage
        .register_instance(s, job, TaskId::Index(0), em)
        .await
        .unwrap();
    let busy = storage
        .register_instance(s, job, TaskId::Index(0), em)
        .await
        .unwrap_err();
    assert!(
        matches!(busy, Error::Stale(Stale::InstanceLimit { .. })),
        "{busy}"
    );
    // The EM keeps heartbeating, but the report never arrives.
    let later = silk_runtime_now() + 1_500; // past hard timeout (200 ms) + grace (1 s)
    storage.db().heartbeat(em, later).await.unwrap();
    assert!(
        storage.sweep_liveness(later).await.unwrap().is_empty(),
        "the EM is alive"
    );
    let requeued = storage
        .lanes()
        .poll(LaneKind::Ready, 10, Duration::from_millis(20))
        .await;
    assert!(
        requeued
            .iter()
            .any(|r| r.job == job && r.task == TaskId::Index(0))
    );
    let late = storage
        .report_success(
            s,
            job,
            TaskId::Index(0),
            lost.instance,
            framed(&[bin(&[1])]),
        )
        .await;
    assert!(
        matches!(late, Err(Error::Stale(Stale::UnknownInstance { .. }))),
        "{late:?}"
    );
    let again = storage
        .register_instance(s, job, TaskId::Index(0), em)
        .await
        .unwrap();
    storage
        .report_success(
            s,
            job,
            TaskId::Index(0),
            again.instance,
            framed(&[bin(&[1])]),
        )
        .await
        .unwrap();
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Succeeded);
    storage.shutdown().await;
}
