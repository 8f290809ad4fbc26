//! The Prometheus endpoint of a real `silk dev` process (all three services' metrics on one
//! port, chosen free by the test and read from the banner), scraped over HTTP before, during and
//! after jobs: slot gauges rise while a task runs and return to zero, the dispatch queue and the
//! ready lane drain, jobs are counted by state, a failed task counts under its failure kind,
//! package and backend, wasm tasks burn fuel, and group commits and bytes moved are counted.

use crate::support;

use std::path::Path;
use std::time::Duration;

use support::dev::Dev;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const SLOW: &str = r#"{"schema_version": "1.0", "tasks": [
  {"package": "fixtures", "function": "sleep_ms", "inputs": ["int64"], "outputs": ["int64"]}
]}"#;

const FAILING: &str = r#"{"schema_version": "1.0", "tasks": [
  {"package": "fixtures", "function": "always_fail", "outputs": ["int64"]}
]}"#;

const NATIVE: &str = "backend=\"native\"";

#[test]
fn metrics_follow_jobs_through_the_cluster() {
    // Watchdog: a hung cluster fails the test instead of stalling the suite.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(240));
        if !flag.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("metrics_scrape: watchdog fired after 240 s");
            std::process::abort();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start();

    // At rest: two slots, none busy, nothing queued, other paths are not metrics.
    // The scheduler registers its metrics once storage answered it, the EM its own before it
    // registers: wait for both.
    let s = dev.scrape_until("two slots alive and the scheduler's metrics", |s| {
        s.get("silk_em_slots") == Some(2.0)
            && s.get("silk_scheduler_dispatch_queue_length").is_some()
    });
    assert_eq!(s.value("silk_em_slots_busy"), 0.0);
    assert_eq!(s.value("silk_scheduler_dispatch_queue_length"), 0.0);
    assert_eq!(s.value("silk_storage_jobs{state=\"Running\"}"), 0.0);
    assert!(dev.get("/").0.contains(" 404 "));

    // While a 2 s task runs: one slot busy, its job running, its start counted.
    let slow = write(dir.path(), "slow.json", SLOW);
    let slow_inputs = write(dir.path(), "slow-inputs.json", "[2000]");
    let (code, slow_id) = dev.job(&["submit", &slow, "--inputs", &slow_inputs, "--no-wait"]);
    assert_eq!(code, Some(0));
    let sleep = format!("{{package=\"fixtures\",{NATIVE}}}");
    let s = dev.scrape_until("a busy slot", |s| s.get("silk_em_slots_busy") == Some(1.0));
    assert_eq!(s.value("silk_storage_jobs{state=\"Running\"}"), 1.0);
    assert_eq!(s.value(&format!("silk_em_tasks_started_total{sleep}")), 1.0);
    assert_eq!(
        s.value(&format!("silk_em_tasks_succeeded_total{sleep}")),
        0.0
    );
    assert_eq!(dev.job(&["wait", &slow_id]).0, Some(0));

    // A failing native task: counted under its kind; its job failed.
    let failing = write(dir.path(), "failing.json", FAILING);
    assert_eq!(dev.job(&["submit", &failing]).0, Some(1));
    // A wasm job of three tasks (the diamond example, package `complex`).
    let diamond = support::repo_path("docs/examples/diamond.json");
    let inputs = support::repo_path("docs/examples/diamond-inputs.json");
    assert_eq!(
        dev.job(&["submit", &diamond, "--inputs", &inputs]).0,
        Some(0)
    );

    // Afterwards every gauge is back at rest and the counters add up.
    let s = dev.scrape_until("idle slots", |s| s.get("silk_em_slots_busy") == Some(0.0));
    let fail = |kind: &str| {
        s.value(&format!(
            "silk_em_tasks_failed_total{{package=\"fixtures\",{NATIVE},kind=\"{kind}\"}}"
        ))
    };
    assert_eq!(fail("TaskError"), 1.0);
    assert_eq!(fail("Panicked"), 0.0);
    assert_eq!(
        s.value(&format!("silk_em_tasks_succeeded_total{sleep}")),
        1.0
    );
    assert_eq!(s.value(&format!("silk_em_tasks_started_total{sleep}")), 2.0);
    let complex = "{package=\"complex\",backend=\"wasm\"}";
    assert_eq!(
        s.value(&format!("silk_em_tasks_succeeded_total{complex}")),
        3.0
    );
    assert_eq!(
        s.value(&format!("silk_em_task_duration_seconds_count{complex}")),
        3.0
    );
    assert!(s.value("silk_em_wasm_fuel_consumed_total{package=\"complex\"}") > 0.0);
    assert!(s.value(&format!("silk_em_task_input_bytes_total{complex}")) > 0.0);
    assert!(s.value(&format!("silk_em_task_output_bytes_total{complex}")) > 0.0);
    // The 2 s sleep lands in the 2.5 s bucket, not below 1 s.
    let slow_bucket = |le: &str| {
        s.value(&format!(
            "silk_em_task_duration_seconds_bucket{{package=\"fixtures\",{NATIVE},le=\"{le}\"}}"
        ))
    };
    assert_eq!(
        slow_bucket("1"),
        1.0,
        "only always_fail is quicker than 1 s"
    );
    assert_eq!(slow_bucket("2.5"), 2.0);
    assert_eq!(s.value("silk_em_executor_restarts_total"), 0.0);

    assert_eq!(s.value("silk_storage_jobs{state=\"Succeeded\"}"), 2.0);
    assert_eq!(s.value("silk_storage_jobs{state=\"Failed\"}"), 1.0);
    assert_eq!(s.value("silk_storage_jobs{state=\"Running\"}"), 0.0);
    assert_eq!(s.value("silk_storage_lane_tasks{lane=\"ready\"}"), 0.0);
    // Every job ended: none holds memory any more.
    assert_eq!(
        s.value("silk_storage_memory_bytes{budget=\"outputs\"}"),
        0.0
    );
    assert_eq!(s.value("silk_storage_memory_bytes{budget=\"jobs\"}"), 0.0);
    assert_eq!(s.value("silk_storage_reports_failed_total"), 1.0);
    assert_eq!(s.value("silk_storage_reports_succeeded_total"), 4.0);
    assert_eq!(s.value("silk_storage_instances_registered_total"), 5.0);
    // Four completions persisted (the failed task has none), in one or more batches.
    assert_eq!(s.value("silk_storage_group_commit_batch_size_sum"), 4.0);
    let batches = s.value("silk_storage_group_commit_duration_seconds_count");
    assert!((1.0..=4.0).contains(&batches), "{batches}");
    assert!(s.value("silk_storage_task_output_bytes_total") > 0.0);

    assert_eq!(s.value("silk_scheduler_dispatch_queue_length"), 0.0);
    let dispatched = s.value("silk_scheduler_assignments_dispatched_total");
    assert!(dispatched >= 5.0, "{dispatched}");
    assert_eq!(
        s.value("silk_scheduler_assignment_latency_seconds_count"),
        dispatched
    );
    done.store(true, std::sync::atomic::Ordering::SeqCst);
}
