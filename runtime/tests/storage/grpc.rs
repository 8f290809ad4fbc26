//! The storage gRPC server on a random loopback port: a job driven end to end by real clients
//! (batched registration and reports, the progress stream), and bad requests answered with the
//! documented codes while the server keeps serving.

use silk_proto::storage as pb;
use silk_proto::storage::execution_manager_liveness_client::ExecutionManagerLivenessClient;
use silk_proto::storage::inbound_queues_client::InboundQueuesClient;
use silk_proto::storage::job_orchestration_client::JobOrchestrationClient;
use silk_proto::storage::resource_groups_client::ResourceGroupsClient;
use silk_proto::storage::session_client::SessionClient;
use silk_proto::storage::task_instances_client::TaskInstancesClient;
use silk_runtime::storage::db::Db;
use silk_runtime::storage::grpc::{self, convert::ERROR_KIND_KEY};
use silk_runtime::storage::{Storage, StorageConfig};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::{bin, flat_graph, flat_inputs, framed};

async fn start<D: Db + Clone>(
    db: D,
) -> (
    Channel,
    CancellationToken,
    tokio::task::JoinHandle<()>,
    Storage<D>,
) {
    let storage = Storage::open(db, StorageConfig::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (storage, stop) = (storage.clone(), stop.clone());
        async move {
            grpc::serve(storage, listener, stop.cancelled_owned())
                .await
                .unwrap()
        }
    });
    let channel = grpc::connect(&format!("http://{addr}")).await.unwrap();
    (channel, stop, task, storage)
}

fn task(job: u64, index: u64) -> pb::TaskRef {
    pb::TaskRef {
        job_id: job,
        task_id: Some(pb::TaskId {
            kind: Some(pb::task_id::Kind::Index(index)),
        }),
    }
}

fn kind(s: &tonic::Status) -> &str {
    s.metadata()
        .get(ERROR_KIND_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub async fn grpc_job_end_to_end<D: Db + Clone>(db: D) {
    let (channel, stop, server, storage) = start(db).await;
    let mut jobs = JobOrchestrationClient::new(channel.clone());
    let mut groups = ResourceGroupsClient::new(channel.clone());
    let mut instances = TaskInstancesClient::new(channel.clone());
    let mut queues = InboundQueuesClient::new(channel.clone());
    let mut liveness = ExecutionManagerLivenessClient::new(channel.clone());

    let group = groups
        .add_resource_group(pb::AddResourceGroupRequest {
            external_id: "grpc".into(),
            secret: b"pw".to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .resource_group_id;
    let wrong = groups
        .verify_resource_group(pb::VerifyResourceGroupRequest {
            resource_group_id: group,
            secret: b"nope".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let open = |secret: &[u8]| pb::OpenResourceGroupRequest {
        external_id: "grpc".into(),
        secret: secret.to_vec(),
    };
    let reopened = groups.open_resource_group(open(b"pw")).await.unwrap();
    assert_eq!(reopened.into_inner().resource_group_id, group);
    let e = groups.open_resource_group(open(b"nope")).await.unwrap_err();
    assert_eq!(
        (e.code(), kind(&e)),
        (Code::Unauthenticated, "invalid-secret")
    );

    let register = pb::RegisterJobRequest {
        task_graph: None,
        resource_group_id: group,
        task_graph_json: flat_graph(3, true, r#"{"max_retries": 1}"#),
        inputs: flat_inputs(3, 8),
    };
    let job = jobs
        .register_job(register)
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let mut watch = jobs
        .watch_job(pb::JobIdRequest { job_id: job })
        .await
        .unwrap()
        .into_inner();
    let started = jobs
        .start_job(pb::JobIdRequest { job_id: job })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.state, pb::JobState::Running as i32);

    let reg = liveness
        .register_execution_manager(pb::RegisterExecutionManagerRequest {
            address: "127.0.0.1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let (em, session) = (reg.id, reg.session_id);
    let polled = queues
        .poll_ready_tasks(pb::PollRequest {
            max_items: 10,
            wait_ms: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(polled.session_id, session);
    assert_eq!(polled.tasks.len(), 3);

    let batch = pb::RegisterTaskInstancesRequest {
        session_id: session,
        execution_manager_id: em,
        tasks: vec![task(job, 0), task(job, 1), task(job, 2), task(job, 9)],
        ..Default::default()
    };
    let results = instances
        .register_task_instances(batch)
        .await
        .unwrap()
        .into_inner()
        .results;
    let mut contexts = Vec::new();
    for r in &results[..3] {
        match &r.result {
            Some(pb::register_result::Result::Context(c)) => contexts.push(c.clone()),
            other => panic!("{other:?}"),
        }
    }
    match &results[3].result {
        Some(pb::register_result::Result::Error(e)) => {
            assert_eq!(
                (e.code, e.kind.as_str()),
                (Code::InvalidArgument as i32, "no-such-task")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(contexts[0].inputs, framed(&[bin(&[0; 8])]));
    // One batch: two successes and one report with a wrong number of outputs (fails that task
    // once; it has a retry left).
    let outcome = |i: usize, outputs: Vec<u8>| pb::TaskOutcome {
        task: Some(task(job, i as u64)),
        task_instance_id: contexts[i].task_instance_id,
        outcome: Some(pb::task_outcome::Outcome::Outputs(outputs)),
    };
    let report = pb::ReportTaskOutcomesRequest {
        session_id: session,
        execution_manager_id: em,
        outcomes: vec![
            outcome(0, framed(&[bin(&[1])])),
            outcome(1, framed(&[])),
            outcome(2, framed(&[bin(&[3])])),
        ],
    };
    let results = instances
        .report_task_outcomes(report)
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(
        results[0].error.is_none() && results[2].error.is_none(),
        "{results:?}"
    );
    let e = results[1].error.as_ref().unwrap();
    assert_eq!(
        (e.code, e.kind.as_str()),
        (Code::InvalidArgument as i32, "invalid-outputs")
    );
    assert!(
        e.message
            .contains("task returned 0 output(s), the graph declares 1"),
        "{}",
        e.message
    );

    let early = jobs
        .get_job_outputs(pb::GetJobOutputsRequest {
            job_id: job,
            offset: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (early.code(), kind(&early)),
        (Code::FailedPrecondition, "not-available")
    );

    let again = queues
        .poll_ready_tasks(pb::PollRequest {
            max_items: 10,
            wait_ms: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.tasks.len(), 1);
    let retry = instances
        .register_task_instance(pb::RegisterTaskInstanceRequest {
            session_id: session,
            execution_manager_id: em,
            task: Some(task(job, 1)),
        })
        .await
        .unwrap()
        .into_inner();
    instances
        .report_task_success(pb::TaskSuccess {
            session_id: session,
            execution_manager_id: em,
            task: Some(task(job, 1)),
            task_instance_id: retry.task_instance_id,
            outputs: framed(&[bin(&[2])]),
        })
        .await
        .unwrap();

    let commits = queues
        .poll_commit_tasks(pb::PollRequest {
            max_items: 10,
            wait_ms: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(commits.tasks.len(), 1);
    let commit_ref = pb::TaskRef {
        job_id: job,
        task_id: commits.tasks[0].task_id,
    };
    let commit = instances
        .register_task_instance(pb::RegisterTaskInstanceRequest {
            session_id: session,
            execution_manager_id: em,
            task: Some(commit_ref),
        })
        .await
        .unwrap()
        .into_inner();
    let expected = framed(&[bin(&[1]), bin(&[2]), bin(&[3])]);
    assert_eq!(commit.job_outputs.as_deref(), Some(expected.as_slice()));
    assert_eq!(commit.inputs, [0, 0, 0, 0]);
    instances
        .report_task_success(pb::TaskSuccess {
            session_id: session,
            execution_manager_id: em,
            task: Some(commit_ref),
            task_instance_id: commit.task_instance_id,
            outputs: Vec::new(),
        })
        .await
        .unwrap();

    let mut last = None;
    while let Some(p) = watch.message().await.unwrap() {
        last = Some(p);
    }
    let last = last.unwrap();
    assert_eq!(
        (last.state, last.succeeded, last.total),
        (pb::JobState::Succeeded as i32, 3, 3)
    );
    let listed = jobs
        .list_jobs(pb::ListJobsRequest {
            state: Some(pb::JobState::Succeeded as i32),
            resource_group_id: Some(group),
            ..pb::ListJobsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].job_id, listed[0].task_count, listed[0].state),
        (job, 3, pb::JobState::Succeeded as i32)
    );
    assert!(listed[0].ended_at_ms.is_some());
    let outputs = jobs
        .get_job_outputs(pb::GetJobOutputsRequest {
            job_id: job,
            offset: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .outputs;
    assert_eq!(outputs, expected);

    stop.cancel();
    server.await.unwrap();
    storage.shutdown().await;
}

pub async fn grpc_bad_requests<D: Db + Clone>(db: D) {
    let (channel, stop, server, storage) = start(db).await;
    let mut jobs =
        JobOrchestrationClient::new(channel.clone()).max_encoding_message_size(128 << 20);
    let mut instances = TaskInstancesClient::new(channel.clone());
    let mut session = SessionClient::new(channel.clone());
    let current = session
        .get_session(pb::Void {})
        .await
        .unwrap()
        .into_inner()
        .session_id;

    let unknown = jobs
        .get_job_state(pb::JobIdRequest { job_id: 987_654 })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad_graph = pb::RegisterJobRequest {
        task_graph: None,
        resource_group_id: 1,
        task_graph_json: "{".into(),
        inputs: Vec::new(),
    };
    let e = jobs.register_job(bad_graph).await.unwrap_err();
    assert_eq!(
        (e.code(), kind(&e)),
        (Code::InvalidArgument, "invalid-graph")
    );
    // A compact graph whose columns do not fit together.
    let malformed = pb::RegisterJobRequest {
        resource_group_id: 1,
        task_graph_json: String::new(),
        inputs: Vec::new(),
        task_graph: Some(pb::CompactTaskGraph {
            schema_version: "1.0".into(),
            package: vec![0, 0],
            function: vec![0],
            ..pb::CompactTaskGraph::default()
        }),
    };
    let e = jobs.register_job(malformed).await.unwrap_err();
    assert_eq!(
        (e.code(), kind(&e)),
        (Code::InvalidArgument, "invalid-graph")
    );
    assert!(
        e.message().contains("`function` has 1 entries for 2 tasks"),
        "{}",
        e.message()
    );
    let no_group = pb::RegisterJobRequest {
        task_graph: None,
        resource_group_id: 424_242,
        task_graph_json: flat_graph(1, false, "{}"),
        inputs: flat_inputs(1, 1),
    };
    assert_eq!(
        jobs.register_job(no_group).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let unspecified = pb::ListJobsRequest {
        limit: 10,
        state: Some(pb::JobState::Unspecified as i32),
        resource_group_id: None,
    };
    assert_eq!(
        jobs.list_jobs(unspecified).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let unknown_state = pb::ListJobsRequest {
        state: Some(99),
        ..pb::ListJobsRequest::default()
    };
    assert_eq!(
        jobs.list_jobs(unknown_state).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let stale = pb::RegisterTaskInstanceRequest {
        session_id: current + 100,
        execution_manager_id: 1,
        task: Some(task(1, 0)),
    };
    let e = instances.register_task_instance(stale).await.unwrap_err();
    assert_eq!((e.code(), kind(&e)), (Code::Aborted, "stale-session"));
    let missing = pb::RegisterTaskInstanceRequest {
        session_id: current,
        execution_manager_id: 1,
        task: None,
    };
    assert_eq!(
        instances
            .register_task_instance(missing)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let oversized = pb::RegisterJobRequest {
        task_graph: None,
        resource_group_id: 1,
        task_graph_json: String::new(),
        inputs: vec![0; 65 << 20],
    };
    let e = jobs.register_job(oversized).await.unwrap_err();
    assert_ne!(e.code(), Code::Ok);
    // Still serving.
    assert_eq!(
        session
            .get_session(pb::Void {})
            .await
            .unwrap()
            .into_inner()
            .session_id,
        current
    );
    stop.cancel();
    server.await.unwrap();
    storage.shutdown().await;
}
