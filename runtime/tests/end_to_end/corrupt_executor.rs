//! End to end, real `silk` processes: a native executor that turns corrupt — it takes its task,
//! then overwrites the control block and rings of the shared segment it shares with its EM — is
//! killed, its task fails `Crashed` (not retried past its policy, not a timeout), and the EM
//! keeps serving: a normal job on the same cluster succeeds.

use crate::e2e;

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use e2e::graphs::single;
use e2e::jobs::FailureKind;
use e2e::values::i;
use e2e::{Backend, Cluster, EmSpec, watchdog};

/// Stands in for `silk-executor-native`: waits for its task, fills the first 64 KiB of the
/// segment at fd 3 with 0xff, and hangs. The EM clears the environment, so paths are absolute.
const CORRUPT_EXECUTOR: &str = "#!/bin/sh
/usr/bin/sleep 1
/usr/bin/tr '\\000' '\\377' < /dev/zero |
  /usr/bin/dd of=/proc/$$/fd/3 bs=4096 count=16 conv=notrunc 2>/dev/null
exec /usr/bin/sleep 600
";

async fn corrupt_segment() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("corrupt-executor");
    std::fs::write(&bin, CORRUPT_EXECUTOR).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = EmSpec {
        slots: 2,
        native: vec!["hostile".into()],
        extra: String::new(),
    }
    .with(&format!("executor_bin = \"{}\"", bin.display()));
    let cluster = Cluster::start(&Backend::Sqlite, &[spec]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("corrupt").await;
    let g = json!({"schema_version": "1.0", "tasks": [{
        "package": "hostile", "function": "blob", "inputs": ["int64"], "outputs": ["string"],
        "policy": {"max_retries": 1}}]});
    let job = jobs.submit(group, &g, &[i(10)]).await;
    let (message, kind) = jobs.wait_failed(job).await;
    assert_eq!(kind, FailureKind::Crashed, "{message}");
    assert!(
        message.contains("corrupt"),
        "names the corruption: {message}"
    );
    assert!(message.contains("after 2 attempt"), "{message}");
    // The EM lives on and its slots serve (fixtures run as wasm here).
    let int = json!("int64");
    let fib = single("fixtures", "fibonacci", [int.clone()], [int]);
    let job = jobs.submit(group, &fib, &[i(10)]).await;
    assert_eq!(jobs.wait_succeeded(job).await, [i(55)]);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_executor_is_killed_and_its_task_crashes() {
    watchdog(120, corrupt_segment()).await;
}
