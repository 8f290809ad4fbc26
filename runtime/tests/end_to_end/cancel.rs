//! End to end, real `silk` processes: cancelling a job stops its running tasks at once. An EM
//! with one slot runs a task that sleeps a minute; the job is cancelled; a second job must then
//! run on that slot within seconds — not after the sleep or the task's hard timeout — natively
//! (the executor is killed and replaced) and in wasm (the sandbox is interrupted).

use crate::e2e;

use std::time::{Duration, Instant};

use serde_json::json;

use e2e::graphs::single;
use e2e::jobs::JobState;
use e2e::values::i;
use e2e::{Backend, Cluster, EmSpec, poll, read_lines, watchdog};

/// How long the second job may take after the cancel: a few heartbeats and a task, far below
/// the minute the cancelled task sleeps.
const FREED_WITHIN: Duration = Duration::from_secs(20);

/// Whether any log of `service` has a line containing `text`.
fn logged(cluster: &Cluster, service: &str, text: &str) -> bool {
    cluster
        .logs_of(service)
        .iter()
        .any(|log| read_lines(log).iter().any(|l| l.contains(text)))
}

async fn cancel_frees_the_slot(spec: EmSpec) {
    let cluster = Cluster::start(&Backend::Sqlite, &[spec]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("cancel").await;
    let int = json!("int64");
    let sleeper = json!({"schema_version": "1.0", "tasks": [{
        "package": "fixtures", "function": "sleep_ms", "inputs": ["int64"], "outputs": ["int64"],
        "policy": {"max_retries": 0}}]});
    let sleeping = jobs.submit(group, &sleeper, &[i(60_000)]).await;
    poll(|| async { logged(&cluster, "em", "task started").then_some(()) }).await;
    let cancelled_at = Instant::now();
    let state = jobs.cancel(sleeping).await;
    assert!(
        matches!(state, JobState::Cancelled | JobState::CleanupReady),
        "{state:?}"
    );
    let fib = single("fixtures", "fibonacci", [int.clone()], [int]);
    let next = jobs.submit(group, &fib, &[i(10)]).await;
    let outputs = tokio::time::timeout(FREED_WITHIN, jobs.wait_succeeded(next))
        .await
        .expect("the next job did not run: the cancelled task still holds the only slot");
    assert_eq!(outputs, [i(55)]);
    eprintln!(
        "from cancel to the next job done on the freed slot: {} ms",
        cancelled_at.elapsed().as_millis()
    );
    assert!(logged(&cluster, "em", "stopping tasks whose jobs ended"));
    assert_eq!(jobs.state(sleeping).await, JobState::Cancelled);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_stops_its_native_task_at_once() {
    watchdog(120, cancel_frees_the_slot(EmSpec::native(1))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_stops_its_wasm_task_at_once() {
    watchdog(120, cancel_frees_the_slot(EmSpec::wasm_only(1))).await;
}
