//! End to end, real `silk` processes (storage on SQLite, scheduler, execution managers) on
//! random loopback ports: what jobs do. A graph mixing native and wasm packages, retries,
//! commit and cleanup tasks, cancellation, and every failure kind natively and in the wasm
//! sandbox (after which the same cluster still runs a normal job).

use crate::e2e;

use serde_json::json;

use e2e::graphs::{StepChains, fed, graph, single, step_runs, task, with_policy};
use e2e::jobs::{FailureKind, JobState};
use e2e::values::{c, f, i, list, s};
use e2e::{Backend, Cluster, EmSpec, read_lines, watchdog};

/// Stages: `complex::add` and `complex::sub` (wasm: `complex` is not allow-listed) feed
/// `complex::dot_product` (wasm), whose `Complex` feeds `fixtures::norm_sq` (native); a native
/// `fibonacci` feeds another; a native `echo_bytes` feeds the hand-written WAT package; a
/// native `record` logs one line.
async fn mixed_native_and_wasm() {
    let cluster = Cluster::start(&Backend::Sqlite, &[EmSpec::native(2)]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("mixed").await;
    let vc = json!({"list": {"struct": "Complex"}});
    let cs = json!({"struct": "Complex"});
    let (int, string) = (json!("int64"), json!("string"));
    let g = graph(vec![
        task("complex", "add", [vc.clone(), vc.clone()], [vc.clone()]),
        task("complex", "sub", [vc.clone(), vc.clone()], [vc.clone()]),
        fed(
            task("complex", "dot_product", [vc.clone(), vc], [cs.clone()]),
            &[(0, 0), (1, 0)],
        ),
        fed(
            task("fixtures", "norm_sq", [cs], [json!("float64")]),
            &[(2, 0)],
        ),
        task("fixtures", "fibonacci", [int.clone()], [int.clone()]),
        fed(
            task("fixtures", "fibonacci", [int.clone()], [int]),
            &[(4, 0)],
        ),
        task("fixtures", "echo_bytes", [string.clone()], [string.clone()]),
        fed(
            task("wat_echo", "echo", [string.clone()], [string.clone()]),
            &[(6, 0)],
        ),
        task(
            "fixtures",
            "record",
            [string, json!("int64")],
            [json!("int64")],
        ),
    ]);
    let text = "silk e2e: native, then wasm";
    let job = jobs
        .submit(
            group,
            &g,
            &[
                list(vec![c(1.0, 2.0), c(3.0, 4.0)]),
                list(vec![c(5.0, 6.0), c(7.0, 8.0)]),
                list(vec![c(1.0, 1.0), c(2.0, 2.0)]),
                list(vec![c(0.0, 1.0), c(1.0, 0.0)]),
                i(7),
                s(text),
                s(&cluster.path_string("record.log")),
                i(42),
            ],
        )
        .await;
    // add = [6+8i, 10+12i]; sub = [1+0i, 1+2i];
    // dot = (6+8i)(1) + (10+12i)(1+2i) = (6+8i) + (-14+32i) = -8+40i; |dot|² = 64 + 1600.
    // fib(7) = 13, fib(13) = 233.
    let outputs = jobs.wait_succeeded(job).await;
    assert_eq!(outputs, [f(1664.0), i(233), s(text), i(42)]);
    assert_eq!(read_lines(&cluster.path("record.log")), ["42"], "ran once");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_mixing_native_and_wasm_packages_gives_exact_outputs() {
    watchdog(60, mixed_native_and_wasm()).await;
}

/// `fail_until` with `max_retries` 2 fails twice then succeeds on its third run; with
/// `max_retries` 1 a task that keeps failing runs exactly twice and fails the job; so does
/// `always_fail`, with a readable error naming the task.
async fn retries() {
    let cluster = Cluster::start(&Backend::Sqlite, &[EmSpec::native(2)]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("retries").await;
    let (int, string) = (json!("int64"), json!("string"));
    let fail_until = |retries: u32| {
        graph(vec![with_policy(
            task(
                "fixtures",
                "fail_until",
                [string.clone(), int.clone()],
                [int.clone()],
            ),
            json!({"max_retries": retries}),
        )])
    };
    let (c1, c2) = (cluster.path_string("c1"), cluster.path_string("c2"));
    let recovers = jobs.submit(group, &fail_until(2), &[s(&c1), i(2)]).await;
    let exhausted = jobs.submit(group, &fail_until(1), &[s(&c2), i(100)]).await;
    let always = jobs
        .submit(
            group,
            &graph(vec![with_policy(
                task("fixtures", "always_fail", [], [int]),
                json!({"max_retries": 1}),
            )]),
            &[],
        )
        .await;

    assert_eq!(jobs.wait_succeeded(recovers).await, [i(3)]);
    assert_eq!(read_lines(&cluster.path("c1")), ["3"], "three runs");

    let (message, kind) = jobs.wait_failed(exhausted).await;
    assert_eq!(kind, FailureKind::TaskError, "{message}");
    assert!(message.contains("fail_until"), "{message}");
    assert_eq!(
        read_lines(&cluster.path("c2")),
        ["2"],
        "one run plus one retry"
    );

    let (message, kind) = jobs.wait_failed(always).await;
    eprintln!("always_fail job error ({kind:?}): {message}");
    assert_eq!(kind, FailureKind::TaskError, "{message}");
    assert!(
        message.contains("always_fail: intentional failure"),
        "the job error carries the task's message readably: {message}"
    );
    assert!(
        message.contains("fixtures::always_fail"),
        "the job error names the task: {message}"
    );
    assert!(
        jobs.try_outputs(always).await.is_err(),
        "a failed job has no outputs"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_then_success_and_retries_exhausted() {
    watchdog(60, retries()).await;
}

/// A commit task that accepts the outputs, one that rejects them, a cancelled job whose cleanup
/// task runs (it logs to its EM's directory), and a cancelled chain whose later links never run.
async fn commit_cleanup_and_cancel() {
    let cluster = Cluster::start(&Backend::Sqlite, &[EmSpec::native(3)]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("commit").await;
    let int = json!("int64");
    let sum_graph = with_final(
        graph(vec![
            task("fixtures", "fibonacci", [int.clone()], [int.clone()]),
            task("fixtures", "negate", [int.clone()], [int]),
        ]),
        "commit",
        "assert_outputs_sum_zero",
    );
    let commits = jobs.submit(group, &sum_graph, &[i(10), i(55)]).await;
    let rejected = jobs.submit(group, &sum_graph, &[i(10), i(54)]).await;

    let chain = |log: &str| StepChains {
        chains: 1,
        len: 3,
        ms: 1500,
        log: cluster.path_string(log),
    };
    let (cleaned, plain) = (chain("cleaned.log"), chain("plain.log"));
    let cleaned_job = jobs
        .submit(
            group,
            &with_final(cleaned.graph(), "cleanup", "record_in_cwd"),
            &cleaned.inputs(),
        )
        .await;
    let plain_job = jobs.submit(group, &plain.graph(), &plain.inputs()).await;

    assert_eq!(jobs.wait_succeeded(commits).await, [i(55), i(-55)]);
    let (message, kind) = jobs.wait_failed(rejected).await;
    assert_eq!(kind, FailureKind::TaskError, "{message}");
    assert!(message.contains("outputs sum is 1, not zero"), "{message}");

    // Cancel both chains while a link (normally the first) runs.
    let mut done_at_cancel = Vec::new();
    for (spec, job) in [(&cleaned, cleaned_job), (&plain, plain_job)] {
        jobs.watch_until(job, |p| p.running >= 1).await;
        done_at_cancel.push(step_runs(std::path::Path::new(&spec.log)).len() as u64);
        let state = jobs.cancel(job).await;
        assert!(
            matches!(state, JobState::CleanupReady | JobState::Cancelled),
            "{state:?}"
        );
    }
    assert_eq!(jobs.wait_terminal(cleaned_job).await, JobState::Cancelled);
    assert_eq!(jobs.wait_terminal(plain_job).await, JobState::Cancelled);
    let cleanup_log = cluster.em_dir(0).join("silk-fixtures.log");
    assert_eq!(
        read_lines(&cleanup_log),
        [format!("{cleaned_job} cleanup")],
        "the cleanup task ran once, for the cancelled job that has one"
    );
    assert!(jobs.try_outputs(plain_job).await.is_err());
    // The links running at the cancel may still finish (1.5 s); give the next ones time to
    // (wrongly) start.
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    for ((spec, job), done) in [(&cleaned, cleaned_job), (&plain, plain_job)]
        .into_iter()
        .zip(done_at_cancel)
    {
        assert!(
            done + 1 < spec.len as u64,
            "job {job}: the cancel came mid-chain"
        );
        let runs = step_runs(std::path::Path::new(&spec.log));
        assert!(
            runs.iter().all(|r| r.task <= done),
            "job {job}: {done} links had run at the cancel; only the running one may finish, \
             none may start: {runs:?}"
        );
        assert_eq!(jobs.state(job).await, JobState::Cancelled);
    }
    cluster.stop().await;
}

/// `g` with a `commit` or `cleanup` task (`key`) of `fixtures::function`.
fn with_final(mut g: serde_json::Value, key: &str, function: &str) -> serde_json::Value {
    g[key] = json!({"package": "fixtures", "function": function});
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_task_checks_outputs_and_cancel_runs_cleanup_only() {
    watchdog(60, commit_cleanup_and_cancel()).await;
}

/// One job per failure kind, all at once; each fails with its kind. Then a normal job succeeds
/// on the same cluster (native executors were respawned after the crash and the timeout).
async fn failure_kinds(native: bool) {
    let em = if native {
        EmSpec::native(3)
    } else {
        EmSpec::wasm_only(3).with("[wasm_packages.fixtures]\nmax_memory_bytes = 33554432\n")
    };
    let cluster = Cluster::start(&Backend::Sqlite, &[em]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("failures").await;
    let int = json!("int64");
    let no_input = |function: &str| single("fixtures", function, [], [int.clone()]);
    let sleeper = graph(vec![with_policy(
        task("fixtures", "sleep_ms", [int.clone()], [int.clone()]),
        json!({"soft_timeout_ms": 200, "hard_timeout_ms": 1000}),
    )]);
    let allocate = single("fixtures", "allocate", [int.clone()], [int.clone()]);

    let mut cases = vec![
        (
            jobs.submit(group, &no_input("always_panic"), &[]).await,
            FailureKind::Panicked,
            "fixtures::always_panic",
        ),
        (
            jobs.submit(group, &no_input("abort"), &[]).await,
            if native {
                FailureKind::Crashed
            } else {
                FailureKind::Trap
            },
            "fixtures::abort",
        ),
        (
            jobs.submit(group, &sleeper, &[i(30_000)]).await,
            FailureKind::Timeout,
            "fixtures::sleep_ms",
        ),
    ];
    if !native {
        cases.push((
            jobs.submit(group, &allocate, &[i(64 << 20)]).await,
            FailureKind::MemoryLimit,
            "fixtures::allocate",
        ));
    }
    for (job, kind, task) in cases {
        let (message, got) = jobs.wait_failed(job).await;
        eprintln!("job {job} failed as expected ({got:?}): {message}");
        assert_eq!(got, kind, "job {job}: {message}");
        assert!(message.contains(task), "names the task: {message}");
        if kind == FailureKind::Panicked {
            assert!(
                message.contains("always_panic: intentional panic"),
                "{message}"
            );
        }
    }

    let normal = graph(vec![
        task("fixtures", "fibonacci", [int.clone()], [int.clone()]),
        task("fixtures", "allocate", [int.clone()], [int]),
    ]);
    let job = jobs.submit(group, &normal, &[i(20), i(1 << 20)]).await;
    assert_eq!(jobs.wait_succeeded(job).await, [i(6765), i(1 << 20)]);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_kinds_native_then_a_normal_job() {
    watchdog(60, failure_kinds(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_kinds_wasm_then_a_normal_job() {
    watchdog(60, failure_kinds(false)).await;
}
