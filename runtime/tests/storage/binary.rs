//! The `silk storage` binary: starts from a config file (credentials on), serves gRPC, and on
//! SIGTERM drains and exits 0; a job registered before the restart is still there after it, and
//! its group's token still opens it (the key comes from the same file).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use silk_proto::storage as pb;
use silk_proto::storage::job_orchestration_client::JobOrchestrationClient;
use silk_proto::storage::resource_groups_client::ResourceGroupsClient;
use silk_proto::storage::session_client::SessionClient;
use silk_runtime::auth::{Token, with_token, write_secret_file};
use silk_runtime::storage::grpc;

use crate::harness::{flat_graph, flat_inputs};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn spawn(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(["storage", "--config"])
        .arg(config)
        .env_remove("SILK_STORAGE_DB")
        .env_remove("SILK_STORAGE_LISTEN")
        .env("SILK_STORAGE_METRICS_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn connect(url: &str) -> tonic::transport::Channel {
    for _ in 0..200 {
        if let Ok(c) = grpc::connect(url).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("silk storage did not come up at {url}");
}

async fn terminate(mut child: Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    for _ in 0..400 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().unwrap();
    panic!("silk storage did not stop on SIGTERM");
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("storage.toml");
    let db = dir.path().join("storage.db");
    let token = |name: &str| {
        let (token, path) = (Token::generate().unwrap(), dir.path().join(name));
        write_secret_file(&path, token.expose()).unwrap();
        (token, path)
    };
    let ((cluster, cluster_file), (admin, admin_file), (_, key_file)) =
        (token("cluster"), token("admin"), token("key"));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndb = \"sqlite:{}\"\n[storage]\nsweep_interval_ms = 100\n\
             [auth]\ncluster_token_file = {cluster_file:?}\nadmin_token_file = {admin_file:?}\n\
             group_token_key_file = {key_file:?}\n",
            db.display()
        ),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");

    let child = spawn(&config);
    let channel = connect(&url).await;
    let first = SessionClient::new(with_token(channel.clone(), Some(&cluster)))
        .get_session(pb::Void {})
        .await
        .unwrap()
        .into_inner()
        .session_id;
    let reply = ResourceGroupsClient::new(with_token(channel.clone(), Some(&admin)))
        .add_resource_group(pb::AddResourceGroupRequest {
            external_id: "bin".into(),
            secret: b"pw".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let group = reply.resource_group_id;
    let group_token = Token::new(&reply.token, "group token").unwrap();
    let register = pb::RegisterJobRequest {
        task_graph: None,
        resource_group_id: group,
        task_graph_json: flat_graph(2, false, "{}"),
        inputs: flat_inputs(2, 4),
    };
    let job = JobOrchestrationClient::new(with_token(channel.clone(), Some(&group_token)))
        .register_job(register)
        .await
        .unwrap()
        .into_inner()
        .job_id;
    drop(channel);
    terminate(child).await;

    let child = spawn(&config);
    let channel = connect(&url).await;
    let second = SessionClient::new(with_token(channel.clone(), Some(&cluster)))
        .get_session(pb::Void {})
        .await
        .unwrap()
        .into_inner()
        .session_id;
    assert!(second > first);
    let state = JobOrchestrationClient::new(with_token(channel.clone(), Some(&group_token)))
        .start_job(pb::JobIdRequest { job_id: job })
        .await
        .unwrap()
        .into_inner()
        .state;
    assert_eq!(state, pb::JobState::Running as i32);
    drop(channel);
    terminate(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_binary_serves_and_stops_on_sigterm() {
    tokio::time::timeout(Duration::from_secs(120), run())
        .await
        .expect("watchdog");
}
