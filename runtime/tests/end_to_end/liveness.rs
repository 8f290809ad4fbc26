//! Liveness end to end, with real `silk` processes on random loopback ports: a poison task that
//! kills every execution manager it lands on fails its job instead of cycling through the
//! cluster, and — with the services' *default* liveness settings — the tasks of an EM killed
//! with `kill -9` run on another EM within seconds (the time is printed).

use crate::e2e;

use std::time::Instant;

use e2e::graphs::{graph, task, with_policy};
use e2e::jobs::FailureKind;
use e2e::values::{i, s};
use e2e::{Backend, Cluster, EmSpec, children_of, poll, process_alive, read_lines, watchdog};
use serde_json::json;

/// Two EMs of one slot; the job's one task kills the EM that runs it. With
/// `free_instance_losses = 1` and no retries, the first loss is free, the second fails the job
/// with kind `Crashed` — each EM ran it once.
async fn poison_task() {
    let mut cluster = Cluster::start_with(
        &Backend::Sqlite,
        &[EmSpec::native(1), EmSpec::native(1)],
        false,
        "free_instance_losses = 1",
        false,
    )
    .await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("poison").await;
    let log = cluster.path_string("kills.log");
    let poison = with_policy(
        task(
            "fixtures",
            "kill_parent",
            [json!("string")],
            [json!("int64")],
        ),
        json!({"max_retries": 0}),
    );
    let job = jobs.submit(group, &graph(vec![poison]), &[s(&log)]).await;
    let (message, kind) = jobs.wait_failed(job).await;
    eprintln!("job error: {message}");
    assert_eq!(kind, FailureKind::Crashed);
    assert!(
        message.contains("lost with its execution manager 2 time(s)"),
        "{message}"
    );
    let mut ran_in = read_lines(&cluster.path("kills.log"));
    ran_in.sort();
    assert_eq!(ran_in, ["em0", "em1"], "each EM ran the task once");
    cluster.reap_em(0);
    cluster.reap_em(1);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_kills_every_em_fails_its_job() {
    watchdog(90, poison_task()).await;
}

/// Two EMs of two slots with the default heartbeat and dead-EM settings run two long tasks;
/// the EM running at least one of them is killed with `kill -9`. Its tasks must start on the
/// other EM (which then has a native executor per slot). Prints the time from the kill.
async fn em_kill_recovery() {
    let mut cluster = Cluster::start_with(
        &Backend::Sqlite,
        &[EmSpec::native(2), EmSpec::native(2)],
        false,
        "",
        true,
    )
    .await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("recovery").await;
    let long = || {
        with_policy(
            task("fixtures", "sleep_ms", [json!("int64")], [json!("int64")]),
            json!({"soft_timeout_ms": 3_000_000, "hard_timeout_ms": 3_600_000}),
        )
    };
    let job = jobs
        .submit(
            group,
            &graph(vec![long(), long()]),
            &[i(3_600_000), i(3_600_000)],
        )
        .await;
    jobs.watch_until(job, |p| p.running == 2).await;
    // The EM with a native executor runs a task (executors start with their first task).
    let pids = [cluster.em_pid(0).unwrap(), cluster.em_pid(1).unwrap()];
    let executors = |em: usize| children_of(pids[em]).len();
    let (victim, survivor) = poll(|| async {
        match (executors(0), executors(1)) {
            (a, b) if a + b < 2 => None,
            (a, _) if a > 0 => Some((0, 1)),
            _ => Some((1, 0)),
        }
    })
    .await;
    cluster.kill_em(victim);
    let killed = Instant::now();
    poll(|| async { (executors(survivor) == 2).then_some(()) }).await;
    let recovery = killed.elapsed();
    eprintln!(
        "kill -9 of EM {victim} -> its tasks running on EM {survivor}: {} ms (default liveness settings)",
        recovery.as_millis()
    );
    assert_eq!(
        jobs.watch_until(job, |p| p.running == 2).await.running,
        2,
        "both tasks run again"
    );
    cluster.reap_em(survivor);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_em_tasks_run_elsewhere_with_default_settings() {
    watchdog(180, em_kill_recovery()).await;
}

/// A native task starts a subprocess (`sleep 600`), then its EM is killed with `kill -9`: the
/// executor dies with the EM, and so does the task's subprocess (its process group).
async fn subprocess_dies_with_killed_em() {
    let mut cluster = Cluster::start(&Backend::Sqlite, &[EmSpec::native(1)]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("lifeline").await;
    let pid_path = cluster.path_string("sleeper.pid");
    let g = graph(vec![task(
        "fixtures",
        "spawn_sleeper",
        [json!("string"), json!("int64")],
        [json!("int64")],
    )]);
    jobs.submit(group, &g, &[s(&pid_path), i(600_000)]).await;
    let pid: u32 = poll(|| async {
        std::fs::read_to_string(&pid_path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    })
    .await;
    assert!(process_alive(pid), "the sleeper runs");
    cluster.kill_em(0);
    let end = Instant::now() + std::time::Duration::from_secs(10);
    while process_alive(pid) && Instant::now() < end {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let survived = process_alive(pid);
    if survived {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(
        !survived,
        "the task's subprocess {pid} outlived its killed EM"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_subprocess_dies_with_its_killed_em() {
    watchdog(60, subprocess_dies_with_killed_em()).await;
}
