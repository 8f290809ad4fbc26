//! End to end: storage, scheduler and one execution manager run as three `silk` processes on
//! random loopback ports; a job of native `fixtures::fibonacci` tasks (one fed by another) and a
//! wasm `wat_echo::echo` task (the package is not trusted) is submitted over gRPC and finishes
//! with the exact outputs. Then every process stops on SIGTERM with exit 0 (the EM after
//! draining).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use silk_proto::storage as pb;
use silk_proto::storage::job_orchestration_client::JobOrchestrationClient;
use silk_proto::storage::resource_groups_client::ResourceGroupsClient;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A child process that is killed if the test fails before stopping it.
struct Proc(Option<Child>);

impl Proc {
    fn spawn(args: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_silk"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Self(Some(child))
    }

    /// SIGTERM, then the exit status within 30 s.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().unwrap();
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        for _ in 0..1200 {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        child.kill().unwrap();
        panic!("process {pid} did not stop on SIGTERM");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

async fn connect(url: &str) -> tonic::transport::Channel {
    for _ in 0..400 {
        if let Ok(c) = silk_runtime::storage::grpc::connect(url).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("storage at {url} never came up");
}

fn int(v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &rmpv::Value::from(v)).unwrap();
    out
}

const GRAPH: &str = r#"{
  "schema_version": "1.0",
  "tasks": [
    {"package": "fixtures", "function": "fibonacci", "inputs": ["int64"], "outputs": ["int64"]},
    {"package": "fixtures", "function": "fibonacci", "inputs": ["int64"], "outputs": ["int64"]},
    {"package": "fixtures", "function": "fibonacci", "inputs": ["int64"], "outputs": ["int64"],
     "sources": [{"task": 1, "output": 0}]},
    {"package": "fixtures", "function": "fibonacci", "inputs": ["int64"], "outputs": ["int64"]},
    {"package": "wat_echo", "function": "echo", "inputs": ["bytes"], "outputs": ["bytes"]}
  ]
}"#;

async fn scenario() {
    let packages = support::packages_dir();
    let dir = tempfile::tempdir().unwrap();
    let (storage_port, scheduler_port) = (free_port(), free_port());
    let storage_url = format!("http://127.0.0.1:{storage_port}");
    let scheduler_url = format!("http://127.0.0.1:{scheduler_port}");
    let storage_cfg = write(
        dir.path(),
        "storage.toml",
        &format!(
            "listen = \"127.0.0.1:{storage_port}\"\ndb = \"sqlite:{}\"\n",
            dir.path().join("storage.db").display()
        ),
    );
    let scheduler_cfg = write(
        dir.path(),
        "scheduler.toml",
        &format!(
            "listen = \"127.0.0.1:{scheduler_port}\"\nstorage_url = \"{storage_url}\"\n[core]\nstorage_poll_wait_ms = 200\n"
        ),
    );
    let em_cfg = write(
        dir.path(),
        "em.toml",
        &format!(
            "storage_url = \"{storage_url}\"\nscheduler_url = \"{scheduler_url}\"\nslots = 2\npackage_dir = \"{}\"\nnative_packages = [\"fixtures\"]\npoll_wait_ms = 200\nheartbeat_interval_ms = 200\ndrain_grace_ms = 5000\n",
            packages.display()
        ),
    );
    // Start in the "wrong" order: the EM and scheduler wait for storage.
    let em = Proc::spawn(&["em", "--config", &em_cfg]);
    let scheduler = Proc::spawn(&["scheduler", "--config", &scheduler_cfg]);
    let storage = Proc::spawn(&["storage", "--config", &storage_cfg]);

    let channel = connect(&storage_url).await;
    let group = ResourceGroupsClient::new(channel.clone())
        .add_resource_group(pb::AddResourceGroupRequest {
            external_id: "e2e".into(),
            secret: b"pw".to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .resource_group_id;
    let mut jobs = JobOrchestrationClient::new(channel.clone());
    let mut blob = Vec::new();
    rmpv::encode::write_value(&mut blob, &rmpv::Value::Binary(b"through wasm".to_vec())).unwrap();
    let inputs = silk_tdl::frame::encode([int(10), int(5), int(20), blob.clone()]).unwrap();
    let job = jobs
        .register_job(pb::RegisterJobRequest {
            resource_group_id: group,
            task_graph_json: GRAPH.into(),
            inputs,
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    jobs.start_job(pb::JobIdRequest { job_id: job })
        .await
        .unwrap();
    loop {
        let state = jobs
            .get_job_state(pb::JobIdRequest { job_id: job })
            .await
            .unwrap()
            .into_inner()
            .state;
        if state == pb::JobState::Succeeded as i32 {
            break;
        }
        assert!(
            state != pb::JobState::Failed as i32 && state != pb::JobState::Cancelled as i32,
            "job ended in state {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outputs = jobs
        .get_job_outputs(pb::JobIdRequest { job_id: job })
        .await
        .unwrap()
        .into_inner()
        .outputs;
    let values = silk_tdl::frame::decode(&outputs).unwrap();
    assert_eq!(values.len(), 4);
    let got: Vec<i64> = values[..3]
        .iter()
        .map(|v| silk_tdl::frame::value::<i64>(v, 0).unwrap())
        .collect();
    // Job outputs: task 0 (fib 10), task 2 (fib(fib 5) = fib 5), task 3 (fib 20) natively, and
    // task 4 echoed by the untrusted `wat_echo` package in the wasm sandbox.
    assert_eq!(got, [55, 5, 6765]);
    assert_eq!(values[3], blob.as_slice());
    drop(jobs);
    drop(channel);

    assert!(em.terminate().await.success(), "em exits 0 after draining");
    assert!(scheduler.terminate().await.success());
    assert!(storage.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_scheduler_and_em_processes_run_a_job_end_to_end() {
    tokio::time::timeout(Duration::from_secs(120), scenario())
        .await
        .expect("watchdog");
}
