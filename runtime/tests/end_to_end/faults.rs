//! Fault tolerance, end to end with real `silk` processes on random loopback ports: `kill -9`
//! an execution manager (with its executors), storage (restarted on the same port and database,
//! SQLite and MySQL/MariaDB), or the scheduler (restarted on the same port) in the middle of a
//! job of slow `fixtures::step` chains. Each step logs its task index and the EM it ran in, so
//! the tests count executions.

use crate::e2e;

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::graphs::{StepChains, run_counts, step_runs};
use e2e::{Backend, Cluster, DEAD_CUTOFF_MS, EmSpec, persisted_tasks, poll, watchdog};

/// Two EMs; EM 0 is killed (its executors die with it) while it runs tasks. Storage and
/// the scheduler declare it dead and EM 1 finishes the job.
async fn em_killed() {
    let mut cluster =
        Cluster::start(&Backend::Sqlite, &[EmSpec::native(2), EmSpec::native(2)]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("em-kill").await;
    let job_spec = StepChains {
        chains: 4,
        len: 4,
        ms: 400,
        log: cluster.path_string("steps.log"),
    };
    let log = cluster.path("steps.log");
    let job = jobs
        .submit(group, &job_spec.graph(), &job_spec.inputs())
        .await;
    // Both EMs are busy: EM 0 finished a step and at least 3 of the 4 slots hold instances.
    poll(|| async {
        let em0_ran = step_runs(&log).iter().any(|r| r.em == "em0");
        (em0_ran && jobs.state(job).await == e2e::jobs::JobState::Running).then_some(())
    })
    .await;
    jobs.watch_until(job, |p| p.running >= 3).await;
    cluster.kill_em(0);
    let before = step_runs(&log).len();
    eprintln!("killed EM 0 after {before} steps ran");

    assert_eq!(jobs.wait_succeeded(job).await, job_spec.outputs());
    let runs = step_runs(&log);
    let counts = run_counts(&runs, job_spec.tasks());
    eprintln!("runs per task: {counts:?}");
    assert!(counts.iter().all(|&n| n >= 1), "every task ran: {counts:?}");
    assert!(
        runs.len() <= job_spec.tasks() + 2,
        "only the killed EM's 2 in-flight tasks may run twice: {runs:?}"
    );
    assert!(
        runs[before..].iter().all(|r| r.em == "em1"),
        "after the kill only EM 1 runs tasks: {runs:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn em_killed_mid_job_other_em_finishes_it() {
    watchdog(60, em_killed()).await;
}

/// Storage is killed after it persisted some completions and restarted on the same port and
/// database: the job finishes with the right outputs, no task whose completion was in the
/// database at the kill runs again, and only tasks the EM held at the kill run twice.
async fn storage_restart(backend: Backend) {
    let mut cluster = Cluster::start(&backend, &[EmSpec::native(2)]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("storage-restart").await;
    let job_spec = StepChains {
        chains: 4,
        len: 4,
        ms: 300,
        log: cluster.path_string("steps.log"),
    };
    let log = cluster.path("steps.log");
    let job = jobs
        .submit(group, &job_spec.graph(), &job_spec.inputs())
        .await;
    let db = cluster.db_url().to_owned();
    // Completions only grow, so what the database holds now it still holds at the kill.
    let persisted: BTreeSet<u64> = poll(|| async {
        let done = persisted_tasks(&db, job).await;
        (done.len() >= 3).then(|| done.into_iter().collect())
    })
    .await;
    cluster.kill_storage();
    eprintln!(
        "killed storage with tasks {persisted:?} persisted and {} steps run",
        step_runs(&log).len()
    );
    assert!(
        persisted.len() < job_spec.tasks(),
        "the kill came mid-job: {persisted:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every task the EM held at the kill (running, finished but not reported, or prefetched and
    // started while storage was down) has run by now.
    let held = step_runs(&log).len();
    cluster.start_storage();

    assert_eq!(jobs.wait_succeeded(job).await, job_spec.outputs());
    let runs = step_runs(&log);
    let counts = run_counts(&runs, job_spec.tasks());
    eprintln!("runs per task: {counts:?}");
    assert!(counts.iter().all(|&n| n >= 1), "every task ran: {counts:?}");
    for &t in &persisted {
        assert_eq!(
            counts[usize::try_from(t).unwrap()],
            1,
            "task {t} was persisted before the kill and must not run again: {runs:?}"
        );
    }
    // Only what the EM held at the kill may run again (its reports were of the old session);
    // how many that is depends on its prefetch and report batching, not on the 2 slots alone.
    let held_tasks: BTreeSet<u64> = runs[..held].iter().map(|r| r.task).collect();
    for (t, &n) in counts.iter().enumerate() {
        let t = u64::try_from(t).unwrap();
        assert!(
            n == 1 || (n == 2 && held_tasks.contains(&t)),
            "task {t} ran {n} times; only tasks held at the kill may run twice: {runs:?}"
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_killed_and_restarted_resumes_job_sqlite() {
    watchdog(60, storage_restart(Backend::Sqlite)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_killed_and_restarted_resumes_job_mysql() {
    let Some(url) = silk_runtime::storage::testing::mysql_url("storage_killed_and_restarted")
    else {
        return;
    };
    watchdog(60, storage_restart(Backend::MySql(url))).await;
}

/// The scheduler is killed mid-job and started again on the same port: the EM and storage
/// reconnect and the job finishes.
async fn scheduler_restart() {
    let mut cluster = Cluster::start(&Backend::Sqlite, &[EmSpec::native(2)]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("scheduler-restart").await;
    let job_spec = StepChains {
        chains: 2,
        len: 4,
        ms: 300,
        log: cluster.path_string("steps.log"),
    };
    let log = cluster.path("steps.log");
    let job = jobs
        .submit(group, &job_spec.graph(), &job_spec.inputs())
        .await;
    poll(|| async { (step_runs(&log).len() >= 2).then_some(()) }).await;
    cluster.kill_scheduler();
    eprintln!(
        "killed the scheduler after {} steps ran",
        step_runs(&log).len()
    );
    tokio::time::sleep(Duration::from_millis(DEAD_CUTOFF_MS / 4)).await;
    cluster.start_scheduler();

    assert_eq!(jobs.wait_succeeded(job).await, job_spec.outputs());
    let runs = step_runs(&log);
    let counts = run_counts(&runs, job_spec.tasks());
    eprintln!("runs per task: {counts:?}");
    assert!(counts.iter().all(|&n| n >= 1), "every task ran: {counts:?}");
    assert!(
        runs.len() <= job_spec.tasks() + 2,
        "only the 2 in-flight tasks may run twice: {runs:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_killed_and_restarted_job_finishes() {
    watchdog(60, scheduler_restart()).await;
}
