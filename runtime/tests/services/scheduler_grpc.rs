//! The scheduler over gRPC on random loopback ports: it starts before storage is up and waits
//! for it, dispatches a job's tasks to an execution manager client through `NextTasks`,
//! acknowledges at most once, and reschedules what an EM held unacknowledged at `Shutdown` under
//! new assignment ids; a shut-down EM gets no more work; after storage restarts (new session) the
//! scheduler carries on and dispatches the job again under the new session.

use std::collections::HashSet;
use std::time::Duration;

use silk_proto::scheduler as pb;
use silk_proto::scheduler::scheduler_client::SchedulerClient;
use silk_runtime::scheduler::{CoreConfig, RegistryConfig, SchedulerConfig, run_scheduler};
use silk_runtime::storage::db::{Secret, SqliteDb};
use silk_runtime::storage::{Storage, StorageConfig, grpc};
use tokio_util::sync::CancellationToken;

fn graph(n: usize) -> String {
    let task = r#"{"package": "test", "function": "t", "inputs": ["bytes"], "outputs": ["bytes"]}"#;
    format!(
        r#"{{"schema_version": "1.0", "tasks": [{}]}}"#,
        vec![task; n].join(",")
    )
}

fn inputs(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    rmpv::encode::write_value(&mut v, &rmpv::Value::Binary(vec![1, 2])).unwrap();
    silk_tdl::frame::encode(vec![v; n]).unwrap()
}

async fn next(
    client: &mut SchedulerClient<tonic::transport::Channel>,
    em: u64,
    acks: Option<pb::Acks>,
) -> Result<pb::NextTasksResponse, tonic::Status> {
    client
        .next_tasks(pb::NextTasksRequest {
            execution_manager_id: em,
            max_items: 10,
            wait_ms: 200,
            acks,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Polls until `n` assignments arrived (acks only on the first call).
async fn collect(
    client: &mut SchedulerClient<tonic::transport::Channel>,
    em: u64,
    n: usize,
) -> (u64, Vec<pb::Assignment>) {
    let mut got = Vec::new();
    let mut scheduler = 0;
    while got.len() < n {
        let r = next(client, em, None).await.unwrap();
        scheduler = r.scheduler_id;
        got.extend(r.assignments);
    }
    (scheduler, got)
}

async fn scenario() {
    // Reserve a port for storage, but start storage only after the scheduler.
    let storage_port = crate::support::free_port();
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheduler_addr = listener.local_addr().unwrap();
    let config = SchedulerConfig {
        storage_url: format!("http://127.0.0.1:{storage_port}"),
        core: CoreConfig {
            storage_poll_wait_ms: 100,
            ..CoreConfig::default()
        },
        ..SchedulerConfig::default()
    };
    let scheduler = tokio::spawn(run_scheduler(config, listener, stop.child_token()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!scheduler.is_finished(), "waits for storage");

    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("storage.db");
    let storage_stop = CancellationToken::new();
    let (storage, storage_server) = start_storage(&db_path, storage_port, &storage_stop).await;
    let group = storage
        .add_resource_group("g", &Secret::new(b"pw".to_vec()))
        .await
        .unwrap();
    let job = storage
        .register_job(group, &graph(3), &inputs(3))
        .await
        .unwrap();
    storage.start_job(job).await.unwrap();

    let channel = grpc::connect(&format!("http://{scheduler_addr}"))
        .await
        .unwrap();
    let mut client = SchedulerClient::new(channel);
    let (sched_id, first) = collect(&mut client, 1, 3).await;
    assert_eq!(first.len(), 3);
    assert!(
        first
            .iter()
            .all(|a| a.job_id == job.0 && a.session_id == storage.session().0)
    );
    let indexes: HashSet<_> = first.iter().map(|a| a.task_index).collect();
    assert_eq!(indexes, HashSet::from([0, 1, 2]));
    client
        .heartbeat(pb::HeartbeatRequest {
            execution_manager_id: 1,
        })
        .await
        .unwrap();

    // EM 1 consumed one assignment and shuts down: the other two are rescheduled.
    let acked = first[0].assignment_id;
    let down = client
        .shutdown(pb::ShutdownRequest {
            execution_manager_id: 1,
            acks: Some(pb::Acks {
                scheduler_id: sched_id,
                assignment_ids: vec![acked],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(down.rescheduled, 2);
    let e = next(&mut client, 1, None).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);

    let (_, again) = collect(&mut client, 2, 2).await;
    let old: HashSet<_> = first[1..].iter().map(|a| a.task_index).collect();
    assert_eq!(
        again.iter().map(|a| a.task_index).collect::<HashSet<_>>(),
        old
    );
    let old_ids: HashSet<_> = first.iter().map(|a| a.assignment_id).collect();
    assert!(again.iter().all(|a| !old_ids.contains(&a.assignment_id)));

    // EM 2 acknowledges them; a repeated acknowledgement is harmless and nothing is left.
    let acks = pb::Acks {
        scheduler_id: sched_id,
        assignment_ids: again.iter().map(|a| a.assignment_id).collect(),
    };
    assert!(
        next(&mut client, 2, Some(acks.clone()))
            .await
            .unwrap()
            .assignments
            .is_empty()
    );
    let down = client
        .shutdown(pb::ShutdownRequest {
            execution_manager_id: 2,
            acks: Some(acks),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(down.rescheduled, 0);

    // Storage restarts (a new session): the scheduler keeps running, drops what it held of the
    // old session and dispatches the job's tasks again under the new one.
    let old_session = storage.session();
    storage_stop.cancel();
    storage_server.await.unwrap().unwrap();
    storage.shutdown().await;
    drop(storage);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !scheduler.is_finished(),
        "a storage outage does not stop the scheduler"
    );
    let storage_stop = CancellationToken::new();
    let (storage, storage_server) = start_storage(&db_path, storage_port, &storage_stop).await;
    assert!(storage.session() > old_session);
    let (_, after) = collect(&mut client, 3, 3).await;
    assert!(after.iter().all(|a| a.session_id == storage.session().0));
    assert_eq!(
        after.iter().map(|a| a.task_index).collect::<HashSet<_>>(),
        HashSet::from([0, 1, 2])
    );

    stop.cancel();
    scheduler.await.unwrap().unwrap();
    storage_stop.cancel();
    storage_server.await.unwrap().unwrap();
    storage.shutdown().await;
}

async fn start_storage(
    path: &std::path::Path,
    port: u16,
    stop: &CancellationToken,
) -> (
    Storage<SqliteDb>,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
) {
    let db = SqliteDb::open(path).await.unwrap();
    let storage = Storage::open(db, StorageConfig::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let server = tokio::spawn(grpc::serve(
        storage.clone(),
        listener,
        stop.clone().cancelled_owned(),
    ));
    (storage, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_dispatches_over_grpc_and_reschedules_on_shutdown() {
    tokio::time::timeout(Duration::from_secs(60), scenario())
        .await
        .expect("watchdog");
}

/// A `NextTasks` answer is lost after the scheduler recorded its assignment: the EM lives on
/// (it heartbeats and polls) but never acknowledges it, so the assignment's lease expires and
/// the task is dispatched again under a new id. An acknowledged assignment is not.
async fn lost_next_tasks_answer() {
    let storage_port = crate::support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let storage_stop = CancellationToken::new();
    let (storage, storage_server) =
        start_storage(&dir.path().join("storage.db"), storage_port, &storage_stop).await;
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheduler_addr = listener.local_addr().unwrap();
    let config = SchedulerConfig {
        storage_url: format!("http://127.0.0.1:{storage_port}"),
        core: CoreConfig {
            storage_poll_wait_ms: 100,
            ..CoreConfig::default()
        },
        registry: RegistryConfig {
            assignment_lease_ms: 500,
            sweep_interval_ms: 50,
            ..RegistryConfig::default()
        },
        ..SchedulerConfig::default()
    };
    let scheduler = tokio::spawn(run_scheduler(config, listener, stop.child_token()));
    let group = storage
        .add_resource_group("g", &Secret::new(b"pw".to_vec()))
        .await
        .unwrap();
    let job = storage
        .register_job(group, &graph(2), &inputs(2))
        .await
        .unwrap();
    storage.start_job(job).await.unwrap();
    let channel = grpc::connect(&format!("http://{scheduler_addr}"))
        .await
        .unwrap();
    let mut client = SchedulerClient::new(channel);
    let (sched_id, first) = collect(&mut client, 7, 2).await;
    // The answer carrying first[1] is "lost": only first[0] is acknowledged (ack-only call).
    let ack_only = client
        .next_tasks(pb::NextTasksRequest {
            execution_manager_id: 7,
            max_items: 0,
            wait_ms: 0,
            acks: Some(pb::Acks {
                scheduler_id: sched_id,
                assignment_ids: vec![first[0].assignment_id],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ack_only.assignments.is_empty());
    // The EM lives on; within a few leases the lost task comes back under a new id.
    let mut again = Vec::new();
    for _ in 0..50 {
        client
            .heartbeat(pb::HeartbeatRequest {
                execution_manager_id: 7,
            })
            .await
            .unwrap();
        again.extend(next(&mut client, 7, None).await.unwrap().assignments);
        if !again.is_empty() {
            break;
        }
    }
    assert_eq!(
        again.len(),
        1,
        "the lost assignment is dispatched again: {again:?}"
    );
    assert_eq!(again[0].task_index, first[1].task_index);
    assert_ne!(again[0].assignment_id, first[1].assignment_id);
    stop.cancel();
    scheduler.await.unwrap().unwrap();
    storage_stop.cancel();
    storage_server.await.unwrap().unwrap();
    storage.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_next_tasks_answer_is_dispatched_again_after_its_lease() {
    tokio::time::timeout(Duration::from_secs(60), lost_next_tasks_answer())
        .await
        .expect("watchdog");
}
