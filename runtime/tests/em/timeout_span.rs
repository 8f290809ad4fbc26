//! Hard timeouts on real native executors: a task killed at its hard timeout takes its
//! subprocesses with it (the executor's whole process group dies), and a task's hard timeout
//! runs from when its instance was registered — a task still queued in the EM at its deadline
//! is never started, so it cannot run on after storage gave up on it and queued it elsewhere.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmpv::Value;
use silk_executor_wasm::{HostConfig, SandboxPolicy, WasmHost};
use silk_ipc::TaskFailure;
use silk_runtime::em::pool::{
    NativeExecutor, NativeExecutorConfig, NativePolicy, PackagePolicy, SlotConfig, SlotPool,
};
use support::{executor_bin, frame, packages_dir, request};

/// Whether `pid` runs (exists and is not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

fn wait_for_file(path: &Path, within: Duration) -> String {
    let end = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(Instant::now() < end, "{} never written", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_timed_out_task_leaves_no_subprocess_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pid_path = dir.path().join("sleeper.pid");
    let mut executor =
        NativeExecutor::spawn(NativeExecutorConfig::new(executor_bin(), packages_dir())).unwrap();
    let inputs = frame(&[
        Value::from(pid_path.to_str().unwrap()),
        Value::from(60_000u64),
    ]);
    let result = executor.execute(
        &request("fixtures", "spawn_sleeper", inputs),
        Duration::from_millis(1500),
    );
    assert!(
        matches!(result, Err(TaskFailure::Timeout { .. })),
        "{result:?}"
    );
    let pid: u32 = wait_for_file(&pid_path, Duration::from_secs(5))
        .trim()
        .parse()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while running(pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let survived = running(pid);
    if survived {
        // Clean up before failing.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(
        !survived,
        "the task's subprocess {pid} outlived its killed executor"
    );
    drop(executor);
}

async fn queued_task_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("record.log");
    let log_str = log.to_str().unwrap();
    let host = WasmHost::new(HostConfig {
        package_dir: Some(packages_dir()),
        max_concurrent_tasks: 1,
        ..HostConfig::default()
    })
    .unwrap();
    let config = SlotConfig {
        policy: PackagePolicy::trusting(["fixtures"]),
        native: NativeExecutorConfig::new(executor_bin(), packages_dir()),
        native_default: NativePolicy::default(),
        native_packages: BTreeMap::new(),
        wasm_default: SandboxPolicy::default(),
        wasm_packages: BTreeMap::new(),
    };
    let pool = Arc::new(SlotPool::start(1, Arc::new(config), &host).unwrap());
    // The one slot is busy for 800 ms.
    let busy = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.execute(
                request("fixtures", "sleep_ms", frame(&[Value::from(800u64)])),
                Duration::from_secs(20),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Registered now with a 300 ms hard timeout; it waits behind the busy slot past it.
    let hard = Duration::from_millis(300);
    let queued = pool
        .execute_by(
            request(
                "fixtures",
                "record",
                frame(&[Value::from(log_str), Value::from(1u64)]),
            ),
            hard,
            Instant::now() + hard,
        )
        .await;
    assert!(
        matches!(queued, Err(TaskFailure::Timeout { after_ms: 300 })),
        "{queued:?}"
    );
    busy.await.unwrap().unwrap();
    assert!(!log.exists(), "the task was started past its deadline");
    // A task with time left runs as usual.
    pool.execute_by(
        request(
            "fixtures",
            "record",
            frame(&[Value::from(log_str), Value::from(2u64)]),
        ),
        hard,
        Instant::now() + Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_queued_past_its_hard_timeout_is_not_started() {
    tokio::time::timeout(Duration::from_secs(60), queued_task_scenario())
        .await
        .expect("watchdog");
}
