//! Restart recovery: a storage stopped and started again over the same database resumes jobs in
//! every non-terminal state, under a new (larger) session, without re-running succeeded tasks.

use std::time::Duration;

use silk_core::JobState;
use silk_runtime::storage::db::Db;
use silk_runtime::storage::{Error, LaneKind, Stale, Storage};
use silk_tdl::{JobId, TaskId};

use crate::harness::{bin, config, flat_graph, flat_inputs, framed, setup, submit};

async fn restart<D: Db + Clone>(storage: Storage<D>) -> Storage<D> {
    let old = storage.session();
    let db = storage.db().clone();
    storage.shutdown().await;
    drop(storage);
    let storage = Storage::open(db, config()).await.unwrap();
    assert!(storage.session() > old);
    storage
}

async fn ready_entries<D: Db + Clone>(
    storage: &Storage<D>,
    lane: LaneKind,
    job: JobId,
) -> Vec<TaskId> {
    let entries = storage
        .lanes()
        .poll(lane, 1000, Duration::from_millis(50))
        .await;
    entries
        .into_iter()
        .filter(|e| e.job == job)
        .map(|e| e.task)
        .collect()
}

/// Runs one task to success on a fresh EM.
async fn run<D: Db + Clone>(storage: &Storage<D>, job: JobId, task: TaskId, outputs: Vec<u8>) {
    let (em, s) = storage
        .register_execution_manager("10.0.0.1")
        .await
        .unwrap();
    let ctx = storage.register_instance(s, job, task, em).await.unwrap();
    storage
        .report_success(s, job, task, ctx.instance, outputs)
        .await
        .unwrap();
}

fn out() -> Vec<u8> {
    framed(&[bin(&[1, 1, 1, 1])])
}

pub async fn recover_ready<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    let job = storage
        .register_job(group, &flat_graph(1, false, "{}"), &flat_inputs(1, 4))
        .await
        .unwrap();
    let storage = restart(storage).await;
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Ready);
    assert!(
        ready_entries(&storage, LaneKind::Ready, job)
            .await
            .is_empty(),
        "not started"
    );
    storage.start_job(job).await.unwrap();
    assert_eq!(
        ready_entries(&storage, LaneKind::Ready, job).await,
        [TaskId::Index(0)]
    );
    run(&storage, job, TaskId::Index(0), out()).await;
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Succeeded);
    let storage = restart(storage).await;
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Succeeded);
    assert_eq!(
        storage.job_outputs(job).await.unwrap(),
        framed(&[bin(&[1, 1, 1, 1])])
    );
    storage.shutdown().await;
}

pub async fn recover_running_without_rerun<D: Db + Clone>(db: D) {
    let (storage, group, em) = setup(db).await;
    // Chain 0 -> 1, plus independent 2 and 3: 0 and 2 succeed before the restart.
    let graph = r#"{"schema_version": "1.0", "tasks": [
        {"package": "t", "function": "f", "inputs": ["bytes"], "outputs": ["bytes"]},
        {"package": "t", "function": "g", "inputs": ["bytes"], "outputs": ["bytes"], "sources": [{"task": 0, "output": 0}]},
        {"package": "t", "function": "f", "inputs": ["bytes"], "outputs": ["bytes"]},
        {"package": "t", "function": "f", "inputs": ["bytes"], "outputs": ["bytes"]}]}"#;
    let job = submit(&storage, group, graph, &flat_inputs(3, 4)).await;
    let s = storage.session();
    for task in [0, 2] {
        let ctx = storage
            .register_instance(s, job, TaskId::Index(task), em)
            .await
            .unwrap();
        storage
            .report_success(
                s,
                job,
                TaskId::Index(task),
                ctx.instance,
                framed(&[bin(&[task as u8 + 10])]),
            )
            .await
            .unwrap();
    }
    // Task 3 is running when storage stops.
    let running = storage
        .register_instance(s, job, TaskId::Index(3), em)
        .await
        .unwrap();
    let storage = restart(storage).await;
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Running);
    let mut ready = ready_entries(&storage, LaneKind::Ready, job).await;
    ready.sort_by_key(|t| format!("{t}"));
    assert_eq!(
        ready,
        [TaskId::Index(1), TaskId::Index(3)],
        "succeeded tasks 0 and 2 are not queued"
    );
    let stale = storage
        .report_success(s, job, TaskId::Index(3), running.instance, out())
        .await
        .unwrap_err();
    assert!(matches!(stale, Error::StaleSession { .. }), "{stale}");
    let (em, s2) = storage
        .register_execution_manager("10.0.0.2")
        .await
        .unwrap();
    for done in [0, 2] {
        let again = storage
            .register_instance(s2, job, TaskId::Index(done), em)
            .await
            .unwrap_err();
        assert!(
            matches!(again, Error::Stale(Stale::TaskTerminated { .. })),
            "task {done} must not run again: {again}"
        );
    }
    // Task 1 gets task 0's persisted output as its input.
    let ctx = storage
        .register_instance(s2, job, TaskId::Index(1), em)
        .await
        .unwrap();
    assert_eq!(ctx.inputs, framed(&[bin(&[10])]));
    storage
        .report_success(
            s2,
            job,
            TaskId::Index(1),
            ctx.instance,
            framed(&[bin(&[11])]),
        )
        .await
        .unwrap();
    run(&storage, job, TaskId::Index(3), framed(&[bin(&[13])])).await;
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Succeeded);
    let storage = restart(storage).await;
    // Job outputs: tasks without children (1, 2, 3).
    assert_eq!(
        storage.job_outputs(job).await.unwrap(),
        framed(&[bin(&[11]), bin(&[12]), bin(&[13])])
    );
    storage.shutdown().await;
}

pub async fn recover_commit_ready<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    let job = submit(
        &storage,
        group,
        &flat_graph(1, true, "{}"),
        &flat_inputs(1, 4),
    )
    .await;
    let storage = restart(storage).await;
    run(&storage, job, TaskId::Index(0), out()).await;
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::CommitReady);
    let storage = restart(storage).await;
    assert_eq!(
        ready_entries(&storage, LaneKind::Commit, job).await,
        [TaskId::Commit]
    );
    let (em, s) = storage
        .register_execution_manager("10.0.0.3")
        .await
        .unwrap();
    let regular = storage
        .register_instance(s, job, TaskId::Index(0), em)
        .await
        .unwrap_err();
    assert!(
        matches!(
            regular,
            Error::Stale(Stale::JobNotRunning {
                state: JobState::CommitReady,
                ..
            })
        ),
        "{regular}"
    );
    let ctx = storage
        .register_instance(s, job, TaskId::Commit, em)
        .await
        .unwrap();
    assert_eq!(
        ctx.job_outputs,
        Some(out()),
        "outputs produced before the restart"
    );
    storage
        .report_success(s, job, TaskId::Commit, ctx.instance, Vec::new())
        .await
        .unwrap();
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Succeeded);
    let storage = restart(storage).await;
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Succeeded);
    assert_eq!(storage.job_outputs(job).await.unwrap(), out());
    storage.shutdown().await;
}

pub async fn recover_cleanup_ready<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    let job = submit(
        &storage,
        group,
        &flat_graph(1, true, "{}"),
        &flat_inputs(1, 4),
    )
    .await;
    assert_eq!(
        storage.cancel_job(job).await.unwrap(),
        JobState::CleanupReady
    );
    let storage = restart(storage).await;
    assert_eq!(
        ready_entries(&storage, LaneKind::Cleanup, job).await,
        [TaskId::Cleanup]
    );
    let (em, s) = storage
        .register_execution_manager("10.0.0.4")
        .await
        .unwrap();
    let regular = storage
        .register_instance(s, job, TaskId::Index(0), em)
        .await
        .unwrap_err();
    assert!(
        matches!(regular, Error::Stale(Stale::JobNotRunning { .. })),
        "{regular}"
    );
    let ctx = storage
        .register_instance(s, job, TaskId::Cleanup, em)
        .await
        .unwrap();
    assert_eq!(ctx.inputs, [0, 0, 0, 0]);
    storage
        .report_success(s, job, TaskId::Cleanup, ctx.instance, Vec::new())
        .await
        .unwrap();
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Cancelled);
    assert_eq!(
        storage.db().job(job).await.unwrap().state,
        JobState::Cancelled
    );
    storage.shutdown().await;
}

fn wall_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// After an outage longer than the dead-EM cutoff, a restarted storage judges EMs only on the
/// heartbeats it could have received: none is dead on the first sweep; one that stays silent
/// for the cutoff after the restart is, one that heartbeats again is not.
pub async fn restart_grants_ems_a_grace_period<D: Db + Clone>(db: D) {
    let (storage, _, silent) = setup(db).await;
    let (talking, _) = storage
        .register_execution_manager("10.0.0.5")
        .await
        .unwrap();
    // Both last heartbeats predate the outage by far more than the cutoff (1 s in tests).
    let before_outage = wall_ms() - 60_000;
    for em in [silent, talking] {
        storage.db().heartbeat(em, before_outage).await.unwrap();
    }
    let storage = restart(storage).await;
    let restarted = wall_ms();
    assert!(
        storage.sweep_liveness(restarted).await.unwrap().is_empty(),
        "no EM is dead on the first sweep after a restart"
    );
    let cutoff = i64::try_from(config().dead_em_cutoff_ms).unwrap();
    assert!(
        storage
            .sweep_liveness(restarted + cutoff / 2)
            .await
            .unwrap()
            .is_empty(),
        "still within the grace period"
    );
    // `talking` heartbeats after the restart; `silent` never does.
    let later = restarted + cutoff + 1;
    storage.db().heartbeat(talking, later).await.unwrap();
    assert_eq!(storage.sweep_liveness(later).await.unwrap(), [silent]);
    assert!(matches!(
        storage.heartbeat(silent).await,
        Err(Error::ExecutionManagerDead(_))
    ));
    storage.heartbeat(talking).await.unwrap();
    storage.shutdown().await;
}
