//! Liveness rules of the storage service: a retried registration (its answer was lost) gets the
//! same instance; instances lost with their execution manager spend retries past the free
//! ones, so a poison task fails its job; a wall-clock step kills no EM and expires no instance.

use std::sync::Arc;
use std::time::Duration;

use silk_core::JobState;
use silk_ipc::FailureKind;
use silk_runtime::storage::db::Db;
use silk_runtime::storage::{
    Clock, Error, LaneKind, RegistrationKey, Stale, Storage, StorageConfig,
};
use silk_tdl::TaskId;

use crate::harness::{bin, config, flat_graph, flat_inputs, framed, setup, submit};

/// A registration whose answer was lost is retried with the same assignment: storage answers
/// with the instance it registered the first time (same inputs), not an instance-limit
/// rejection; another assignment of the running task is still refused.
pub async fn retried_registration_gets_the_same_instance<D: Db + Clone>(db: D) {
    let (storage, group, em) = setup(db).await;
    let s = storage.session();
    let policy = r#"{"soft_timeout_ms": 30000, "hard_timeout_ms": 60000}"#;
    let job = submit(
        &storage,
        group,
        &flat_graph(1, false, policy),
        &flat_inputs(1, 4),
    )
    .await;
    let key = RegistrationKey {
        em,
        scheduler: 1,
        assignment: 41,
    };
    let task = TaskId::Index(0);
    let first = storage
        .register_assigned(s, job, task, em, Some(key))
        .await
        .unwrap();
    // The answer is lost; the EM retries the same request.
    let retried = storage
        .register_assigned(s, job, task, em, Some(key))
        .await
        .unwrap();
    assert_eq!(retried, first, "the same instance and context");
    let other = storage
        .register_assigned(
            s,
            job,
            task,
            em,
            Some(RegistrationKey {
                assignment: 42,
                ..key
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(other, Error::Stale(Stale::InstanceLimit { .. })),
        "{other}"
    );
    storage
        .report_success(s, job, task, retried.instance, framed(&[bin(&[0; 4])]))
        .await
        .unwrap();
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Succeeded);
    storage.shutdown().await;
}

/// A task whose execution manager dies every time it runs: the first loss is free
/// (`free_instance_losses` = 1), the next spends its one retry, the third fails the job with
/// kind `Crashed` and a message naming the losses — it does not cycle forever.
pub async fn poison_task_fails_its_job<D: Db + Clone>(db: D) {
    let config = StorageConfig {
        free_instance_losses: 1,
        ..config()
    };
    let storage = Storage::open(db, config).await.unwrap();
    let s = storage.session();
    let group = storage
        .add_resource_group(
            "poison",
            &silk_runtime::storage::db::Secret::new(b"pw".to_vec()),
        )
        .await
        .unwrap();
    let policy = r#"{"max_retries": 1, "soft_timeout_ms": 30000, "hard_timeout_ms": 60000}"#;
    let job = submit(
        &storage,
        group,
        &flat_graph(1, false, policy),
        &flat_inputs(1, 4),
    )
    .await;
    let task = TaskId::Index(0);
    let mut now = silk_runtime_now();
    for loss in 1..=3 {
        let queued = storage
            .lanes()
            .poll(LaneKind::Ready, 10, Duration::from_millis(200))
            .await;
        assert_eq!(
            queued.iter().map(|r| r.task).collect::<Vec<_>>(),
            [task],
            "queued before loss {loss}"
        );
        let (em, _) = storage
            .register_execution_manager(&format!("10.0.0.{loss}"))
            .await
            .unwrap();
        storage.db().heartbeat(em, now).await.unwrap();
        storage.register_instance(s, job, task, em).await.unwrap();
        // The task kills its EM: it falls silent past the cutoff.
        now += 5_000;
        let dead = storage.sweep_liveness(now).await.unwrap();
        assert!(dead.contains(&em), "loss {loss}: {dead:?}");
    }
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Failed);
    let error = storage.job_error(job).await.unwrap();
    assert_eq!(error.kind, FailureKind::Crashed);
    assert!(
        error
            .message
            .contains("lost with its execution manager 3 time(s)")
            && error.message.contains("free_instance_losses = 1"),
        "{}",
        error.message
    );
    assert!(
        storage
            .lanes()
            .poll(LaneKind::Ready, 10, Duration::from_millis(50))
            .await
            .is_empty(),
        "not queued again"
    );
    storage.shutdown().await;
}

/// The wall clock jumps an hour forward, then two hours back, while an EM heartbeats and runs
/// an instance: the background sweeps (every 20 ms) neither declare the EM dead nor expire the
/// instance, whose report is accepted.
pub async fn wall_clock_step_kills_no_em<D: Db + Clone>(db: D) {
    let clock = Arc::new(Clock::default());
    let config = StorageConfig {
        sweep_interval_ms: 20,
        dead_em_cutoff_ms: 1_000,
        lost_report_grace_ms: 1_000,
        ..config()
    };
    let storage = Storage::open_with_clock(db, config, clock.clone())
        .await
        .unwrap();
    let s = storage.session();
    let group = storage
        .add_resource_group(
            "clock",
            &silk_runtime::storage::db::Secret::new(b"pw".to_vec()),
        )
        .await
        .unwrap();
    let (em, _) = storage
        .register_execution_manager("127.0.0.1")
        .await
        .unwrap();
    let policy = r#"{"soft_timeout_ms": 1000, "hard_timeout_ms": 2000}"#;
    let job = submit(
        &storage,
        group,
        &flat_graph(1, false, policy),
        &flat_inputs(1, 4),
    )
    .await;
    let task = TaskId::Index(0);
    let _ = storage
        .lanes()
        .poll(LaneKind::Ready, 10, Duration::from_millis(200))
        .await;
    let ctx = storage.register_instance(s, job, task, em).await.unwrap();
    for step in [3_600_000, -7_200_000] {
        clock.step_wall(step);
        for _ in 0..10 {
            storage.heartbeat(em).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    storage
        .report_success(s, job, task, ctx.instance, framed(&[bin(&[0; 4])]))
        .await
        .unwrap();
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Succeeded);
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

/// Over gRPC: the EM's batched registration names its assignments; the same request sent
/// again (its answer was lost) gets the same instances, another assignment of a running task
/// is refused as stale, and more assignment ids than tasks is a bad request.
pub async fn registration_retry_over_grpc<D: Db + Clone>(db: D) {
    use silk_proto::storage as pb;
    use silk_proto::storage::execution_manager_liveness_client::ExecutionManagerLivenessClient;
    use silk_proto::storage::task_instances_client::TaskInstancesClient;
    use silk_runtime::storage::grpc;
    use tokio_util::sync::CancellationToken;

    let (storage, group, _) = setup(db).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(grpc::serve(
        storage.clone(),
        listener,
        stop.clone().cancelled_owned(),
    ));
    let channel = grpc::connect(&format!("http://{addr}")).await.unwrap();
    let registration = ExecutionManagerLivenessClient::new(channel.clone())
        .register_execution_manager(pb::RegisterExecutionManagerRequest {
            address: "127.0.0.1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let policy = r#"{"soft_timeout_ms": 30000, "hard_timeout_ms": 60000}"#;
    let job = submit(
        &storage,
        group,
        &flat_graph(2, false, policy),
        &flat_inputs(2, 4),
    )
    .await;
    let task = |index: u64| pb::TaskRef {
        job_id: job.0,
        task_id: Some(pb::TaskId {
            kind: Some(pb::task_id::Kind::Index(index)),
        }),
    };
    let request = |tasks: Vec<pb::TaskRef>, ids: Vec<u64>| pb::RegisterTaskInstancesRequest {
        session_id: registration.session_id,
        execution_manager_id: registration.id,
        tasks,
        scheduler_id: 3,
        assignment_ids: ids,
    };
    let mut client = TaskInstancesClient::new(channel);
    let instances = |r: pb::RegisterTaskInstancesResponse| -> Vec<Result<u64, i32>> {
        r.results
            .into_iter()
            .map(|r| match r.result {
                Some(pb::register_result::Result::Context(c)) => Ok(c.task_instance_id),
                Some(pb::register_result::Result::Error(e)) => Err(e.code),
                None => Err(-1),
            })
            .collect()
    };
    let first = client
        .register_task_instances(request(vec![task(0), task(1)], vec![10, 11]))
        .await
        .unwrap()
        .into_inner();
    let first = instances(first);
    assert!(first.iter().all(Result::is_ok), "{first:?}");
    let retried = client
        .register_task_instances(request(vec![task(0), task(1)], vec![10, 11]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(instances(retried), first, "the same instances");
    let other = client
        .register_task_instances(request(vec![task(0)], vec![12]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        instances(other),
        [Err(tonic::Code::FailedPrecondition as i32)]
    );
    let bad = client
        .register_task_instances(request(vec![task(0)], vec![10, 11]))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    stop.cancel();
    server.await.unwrap().unwrap();
    storage.shutdown().await;
}
