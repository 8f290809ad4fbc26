//! End to end: storage, scheduler and one execution manager run as three `silk` processes on
//! random loopback ports; a job of native `fixtures::fibonacci` tasks (one fed by another) and a
//! wasm `wat_echo::echo` task (the package is not trusted) is submitted over gRPC and finishes
//! with the exact outputs. Then every process stops on SIGTERM with exit 0 (the EM after
//! draining). The processes come from the shared harness in `e2e/`.

use crate::e2e;

use e2e::values::i;
use e2e::{Backend, Cluster, EmSpec, watchdog};

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
    // Start in the "wrong" order: the EM and scheduler wait for storage.
    let cluster = Cluster::start_in_order(&Backend::Sqlite, &[EmSpec::native(2)], true).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("e2e").await;
    let blob = rmpv::Value::Binary(b"through wasm".to_vec());
    let graph: serde_json::Value = serde_json::from_str(GRAPH).unwrap();
    let job = jobs
        .submit(group, &graph, &[i(10), i(5), i(20), blob.clone()])
        .await;
    // Job outputs: task 0 (fib 10), task 2 (fib(fib 5) = fib 5), task 3 (fib 20) natively, and
    // task 4 echoed by the untrusted `wat_echo` package in the wasm sandbox.
    assert_eq!(jobs.wait_succeeded(job).await, [i(55), i(5), i(6765), blob]);
    drop(jobs);
    // SIGTERM: the EM drains, then the scheduler and storage stop; each exits 0.
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_scheduler_and_em_processes_run_a_job_end_to_end() {
    watchdog(120, scenario()).await;
}
