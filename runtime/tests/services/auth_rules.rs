//! Every RPC of every silk service against the credentials it must refuse: no credential, a
//! wrong one, another kind's (cluster / admin / group token), and another group's. The rows
//! below state what each RPC needs independently of `silk_runtime::auth::rules`; the test walks
//! the RPCs the `.proto` files define (`silk_proto::METHOD_PATHS`), so a new RPC without a row
//! here fails it. The servers and the raw gRPC calls are in `auth/mod.rs`.

use crate::auth;

use std::collections::BTreeMap;

use auth::{CREDS, Cluster, Cred, call, cluster};
use prost::Message;
use silk_proto::scheduler as sched;
use silk_proto::storage as pb;
use silk_runtime::auth::Token;
use silk_runtime::storage::grpc;
use silk_tdl::JobId;
use tonic::{Code, Status};

/// What an RPC needs, as this test states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// The cluster token; anything else is `UNAUTHENTICATED`.
    Service,
    /// The admin token.
    Admin,
    /// Group A's token (the RPC is about group A's job or group A).
    GroupA,
    /// Group A's token or the admin token.
    GroupAOrAdmin,
    /// Nothing: the request carries group A's secret.
    Secret,
}

/// How a call ended, as far as authorization goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Past the checks (the call may still fail for what it carries).
    Allowed,
    Unauthenticated,
    Denied,
}

fn expected(needs: Needs, cred: Cred) -> Verdict {
    use Verdict::*;
    match (needs, cred) {
        (Needs::Secret, _)
        | (Needs::Service, Cred::Cluster)
        | (Needs::Admin, Cred::Admin)
        | (Needs::GroupA | Needs::GroupAOrAdmin, Cred::GroupA)
        | (Needs::GroupAOrAdmin, Cred::Admin) => Allowed,
        (Needs::Service, _) | (_, Cred::None | Cred::Wrong) => Unauthenticated,
        _ => Denied,
    }
}

fn verdict(status: Option<&Status>) -> Verdict {
    match status.map(Status::code) {
        Some(Code::Unauthenticated) => Verdict::Unauthenticated,
        Some(Code::PermissionDenied) => Verdict::Denied,
        _ => Verdict::Allowed,
    }
}

/// Every RPC's row: what it needs and a request about group A (or its job).
fn rows(c: &Cluster) -> BTreeMap<&'static str, (Needs, Vec<u8>)> {
    let job = pb::JobIdRequest { job_id: c.job_a.0 }.encode_to_vec();
    let a = c.group_a.0;
    let poll = pb::PollRequest {
        max_items: 1,
        wait_ms: 0,
    }
    .encode_to_vec();
    let s = "/silk.storage.v1.";
    let rows: Vec<(&'static str, Needs, Vec<u8>)> = vec![
        (
            "JobOrchestration/RegisterJob",
            Needs::GroupA,
            pb::RegisterJobRequest {
                task_graph: None,
                resource_group_id: a,
                task_graph_json: "{}".into(),
                inputs: Vec::new(),
            }
            .encode_to_vec(),
        ),
        (
            "JobOrchestration/RegisterJobStream",
            Needs::GroupA,
            pb::RegisterJobPart {
                resource_group_id: a,
                graph: Vec::new(),
                inputs: Vec::new(),
            }
            .encode_to_vec(),
        ),
        ("JobOrchestration/StartJob", Needs::GroupA, job.clone()),
        ("JobOrchestration/CancelJob", Needs::GroupA, job.clone()),
        ("JobOrchestration/GetJobState", Needs::GroupA, job.clone()),
        (
            "JobOrchestration/GetJobOutputs",
            Needs::GroupA,
            pb::GetJobOutputsRequest {
                job_id: c.job_a.0,
                offset: 0,
            }
            .encode_to_vec(),
        ),
        ("JobOrchestration/GetJobError", Needs::GroupA, job.clone()),
        ("JobOrchestration/WatchJob", Needs::GroupA, job),
        (
            "JobOrchestration/ListJobs",
            Needs::GroupAOrAdmin,
            pb::ListJobsRequest {
                limit: 10,
                state: None,
                resource_group_id: Some(a),
            }
            .encode_to_vec(),
        ),
        (
            "ResourceGroups/AddResourceGroup",
            Needs::Admin,
            pb::AddResourceGroupRequest {
                external_id: "added".into(),
                secret: b"s".to_vec(),
            }
            .encode_to_vec(),
        ),
        (
            "ResourceGroups/OpenResourceGroup",
            Needs::Secret,
            pb::OpenResourceGroupRequest {
                external_id: "a".into(),
                secret: b"secret-a".to_vec(),
            }
            .encode_to_vec(),
        ),
        (
            "ResourceGroups/VerifyResourceGroup",
            Needs::Secret,
            pb::VerifyResourceGroupRequest {
                resource_group_id: a,
                secret: b"secret-a".to_vec(),
            }
            .encode_to_vec(),
        ),
        (
            "TaskInstances/RegisterTaskInstance",
            Needs::Service,
            pb::RegisterTaskInstanceRequest::default().encode_to_vec(),
        ),
        (
            "TaskInstances/ReportTaskSuccess",
            Needs::Service,
            pb::TaskSuccess::default().encode_to_vec(),
        ),
        (
            "TaskInstances/ReportTaskFailure",
            Needs::Service,
            pb::TaskFailure::default().encode_to_vec(),
        ),
        (
            "TaskInstances/RegisterTaskInstances",
            Needs::Service,
            pb::RegisterTaskInstancesRequest::default().encode_to_vec(),
        ),
        (
            "TaskInstances/ReportTaskOutcomes",
            Needs::Service,
            pb::ReportTaskOutcomesRequest::default().encode_to_vec(),
        ),
        ("InboundQueues/PollReadyTasks", Needs::Service, poll.clone()),
        (
            "InboundQueues/PollCommitTasks",
            Needs::Service,
            poll.clone(),
        ),
        ("InboundQueues/PollCleanupTasks", Needs::Service, poll),
        (
            "ExecutionManagerLiveness/RegisterExecutionManager",
            Needs::Service,
            pb::RegisterExecutionManagerRequest {
                address: "test".into(),
            }
            .encode_to_vec(),
        ),
        (
            "ExecutionManagerLiveness/Heartbeat",
            Needs::Service,
            pb::ExecutionManagerIdRequest {
                execution_manager_id: 999,
            }
            .encode_to_vec(),
        ),
        (
            "SchedulerRegistration/RegisterScheduler",
            Needs::Service,
            pb::RegisterSchedulerRequest {
                host: "127.0.0.1".into(),
                port: 1,
            }
            .encode_to_vec(),
        ),
        (
            "SchedulerRegistration/GetSchedulers",
            Needs::Service,
            pb::Void {}.encode_to_vec(),
        ),
        (
            "Session/GetSession",
            Needs::Service,
            pb::Void {}.encode_to_vec(),
        ),
    ];
    let mut all: BTreeMap<&'static str, (Needs, Vec<u8>)> = BTreeMap::new();
    for (method, needs, body) in rows {
        all.insert(leak(format!("{s}{method}")), (needs, body));
    }
    let scheduler = [
        (
            "NextTasks",
            sched::NextTasksRequest {
                execution_manager_id: 1,
                max_items: 1,
                wait_ms: 0,
                acks: None,
            }
            .encode_to_vec(),
        ),
        (
            "Heartbeat",
            sched::HeartbeatRequest {
                execution_manager_id: 1,
            }
            .encode_to_vec(),
        ),
        (
            "Shutdown",
            sched::ShutdownRequest {
                execution_manager_id: 1,
                acks: None,
            }
            .encode_to_vec(),
        ),
    ];
    for (method, body) in scheduler {
        all.insert(
            leak(format!("/silk.scheduler.v1.Scheduler/{method}")),
            (Needs::Service, body),
        );
    }
    all
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[tokio::test]
async fn every_rpc_refuses_the_wrong_credentials() {
    let c = cluster().await;
    let rows = rows(&c);
    for path in silk_proto::METHOD_PATHS {
        assert!(
            rows.contains_key(path),
            "RPC {path} has no row in this test: say which credential it needs"
        );
    }
    let mut failures = Vec::new();
    for (path, (needs, body)) in &rows {
        assert!(
            silk_proto::METHOD_PATHS.contains(path),
            "row {path} names no RPC of the protocol"
        );
        let addr = if path.starts_with("/silk.scheduler.v1.") {
            c.scheduler
        } else {
            c.storage
        };
        for cred in CREDS {
            let status = call(addr, path, body.clone(), c.token(cred)).await;
            let (got, want) = (verdict(status.as_ref()), expected(*needs, cred));
            if got != want {
                failures.push(format!(
                    "{path} with {cred:?}: {want:?} expected, got {status:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    c.stop.cancel();
}

#[tokio::test]
async fn another_groups_job_looks_like_no_job() {
    let c = cluster().await;
    let missing = JobId(c.job_a.0 + 1000);
    let b = c.token(Cred::GroupB);
    let a = c.token(Cred::GroupA);
    for method in [
        "GetJobState",
        "GetJobOutputs",
        "GetJobError",
        "WatchJob",
        "CancelJob",
        "StartJob",
    ] {
        let path = format!("/silk.storage.v1.JobOrchestration/{method}");
        let body = |job: JobId| {
            if method == "GetJobOutputs" {
                pb::GetJobOutputsRequest {
                    job_id: job.0,
                    offset: 0,
                }
                .encode_to_vec()
            } else {
                pb::JobIdRequest { job_id: job.0 }.encode_to_vec()
            }
        };
        let theirs = call(c.storage, &path, body(c.job_a), b).await.unwrap();
        let none = call(c.storage, &path, body(missing), a).await.unwrap();
        assert_eq!(
            theirs.code(),
            Code::PermissionDenied,
            "{method}: {theirs:?}"
        );
        assert_eq!(none.code(), Code::PermissionDenied, "{method}: {none:?}");
        assert_eq!(
            theirs.message().replace(&c.job_a.to_string(), "JOB"),
            none.message().replace(&missing.to_string(), "JOB"),
            "{method}: the answers tell the two apart"
        );
    }
    c.stop.cancel();
}

#[tokio::test]
async fn groups_open_with_their_secret_and_only_the_admin_creates_them() {
    let c = cluster().await;
    let open = "/silk.storage.v1.ResourceGroups/OpenResourceGroup";
    let request = |name: &str, secret: &[u8]| {
        pb::OpenResourceGroupRequest {
            external_id: name.into(),
            secret: secret.to_vec(),
        }
        .encode_to_vec()
    };
    // Unknown name and wrong secret: one answer, and no group is created.
    let unknown = call(c.storage, open, request("new", b"s"), None)
        .await
        .unwrap();
    let wrong = call(c.storage, open, request("a", b"nope"), None)
        .await
        .unwrap();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(unknown.message(), wrong.message());
    let again = call(c.storage, open, request("new", b"s"), c.token(Cred::GroupA))
        .await
        .unwrap();
    assert_eq!(
        again.code(),
        Code::Unauthenticated,
        "a group token does not create"
    );
    // The admin creates it; its answer carries a token that opens the new group's listing.
    let channel = grpc::connect(&format!("http://{}", c.storage))
        .await
        .unwrap();
    let admin = silk_runtime::auth::with_token(
        channel.clone(),
        Some(&Token::new(c.token(Cred::Admin).unwrap(), "admin").unwrap()),
    );
    let reply = pb::resource_groups_client::ResourceGroupsClient::new(admin)
        .open_resource_group(pb::OpenResourceGroupRequest {
            external_id: "new".into(),
            secret: b"s".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.token.starts_with("silk-group-"));
    let group =
        silk_runtime::auth::with_token(channel, Some(&Token::new(&reply.token, "group").unwrap()));
    let listed = pb::job_orchestration_client::JobOrchestrationClient::new(group)
        .list_jobs(pb::ListJobsRequest {
            limit: 10,
            state: None,
            resource_group_id: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.jobs.is_empty(),
        "group A's job is not listed: {listed:?}"
    );
    c.stop.cancel();
}
