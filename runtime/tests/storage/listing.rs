//! Client-facing lookups through the service layer: listing jobs (newest first, filters, the
//! limit rules, terminated jobs included), opening resource groups by name, and the state and
//! progress of terminal jobs, also after a restart when they are no longer cached.

use silk_core::JobState;
use silk_runtime::storage::db::{Db, DbError, Secret};
use silk_runtime::storage::{DEFAULT_LIST_LIMIT, Error, Storage};
use silk_tdl::TaskId;

use crate::harness::{bin, config, flat_graph, flat_inputs, framed, setup, submit};

pub async fn list_jobs_newest_first<D: Db + Clone>(db: D) {
    let (storage, group, em) = setup(db).await;
    let other = storage
        .open_resource_group("listing-other", &Secret::new(b"pw".to_vec()))
        .await
        .unwrap();
    let graph = flat_graph(3, false, "{}");
    let inputs = flat_inputs(3, 4);
    let a = submit(&storage, group, &graph, &inputs).await;
    let b = storage.register_job(other, &graph, &inputs).await.unwrap();
    let c = submit(
        &storage,
        group,
        &flat_graph(1, false, "{}"),
        &flat_inputs(1, 4),
    )
    .await;
    storage.cancel_job(a).await.unwrap();

    // Run c's only task to success: the job is terminal and still listed.
    let s = storage.session();
    let ctx = storage
        .register_instance(s, c, TaskId::Index(0), em)
        .await
        .unwrap();
    storage
        .report_success(s, c, TaskId::Index(0), ctx.instance, framed(&[bin(&[1])]))
        .await
        .unwrap();
    assert_eq!(storage.job_state(c).await.unwrap(), JobState::Succeeded);

    let all = storage.list_jobs(0, None, None).await.unwrap();
    let ids: Vec<_> = all.iter().map(|j| j.id).collect();
    assert_eq!(ids, [c, b, a]);
    let states: Vec<_> = all.iter().map(|j| j.state).collect();
    assert_eq!(
        states,
        [JobState::Succeeded, JobState::Ready, JobState::Cancelled]
    );
    let counts: Vec<_> = all.iter().map(|j| j.task_count).collect();
    assert_eq!(counts, [1, 3, 3]);
    assert!(all[0].ended_at_ms.is_some() && all[1].ended_at_ms.is_none());
    assert!(all.iter().all(|j| j.created_at_ms > 0));

    let one = storage.list_jobs(1, None, None).await.unwrap();
    assert_eq!(one.iter().map(|j| j.id).collect::<Vec<_>>(), [c]);
    let cancelled = storage
        .list_jobs(10, Some(JobState::Cancelled), None)
        .await
        .unwrap();
    assert_eq!(cancelled.iter().map(|j| j.id).collect::<Vec<_>>(), [a]);
    let of_other = storage.list_jobs(10, None, Some(other)).await.unwrap();
    assert_eq!(of_other.iter().map(|j| j.id).collect::<Vec<_>>(), [b]);
    storage.shutdown().await;
}

pub async fn list_limit_rules<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    let graph = flat_graph(1, false, "{}");
    let inputs = flat_inputs(1, 1);
    for _ in 0..=DEFAULT_LIST_LIMIT {
        storage.register_job(group, &graph, &inputs).await.unwrap();
    }
    let default = storage.list_jobs(0, None, None).await.unwrap();
    assert_eq!(
        default.len(),
        DEFAULT_LIST_LIMIT as usize,
        "0 means the default"
    );
    let capped = storage.list_jobs(u32::MAX, None, None).await.unwrap();
    assert_eq!(
        capped.len(),
        DEFAULT_LIST_LIMIT as usize + 1,
        "a huge limit is capped, not refused"
    );
    storage.shutdown().await;
}

pub async fn open_group_by_name<D: Db + Clone>(db: D) {
    let storage = Storage::open(db, config()).await.unwrap();
    let secret = Secret::new(b"s3cret".to_vec());
    let opens = (0..3).map(|_| {
        let (storage, secret) = (storage.clone(), secret.clone());
        tokio::spawn(async move { storage.open_resource_group("team-x", &secret).await })
    });
    let mut ids = Vec::new();
    for open in opens.collect::<Vec<_>>() {
        ids.push(open.await.unwrap().unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    storage
        .verify_resource_group(ids[0], &secret)
        .await
        .unwrap();
    let wrong = storage
        .open_resource_group("team-x", &Secret::new(b"guess".to_vec()))
        .await;
    assert!(
        matches!(wrong, Err(Error::Db(DbError::InvalidSecret(id))) if id == ids[0]),
        "{wrong:?}"
    );
    storage.shutdown().await;
}

pub async fn terminal_job_state_after_restart<D: Db + Clone>(db: D) {
    let (storage, group, _) = setup(db).await;
    let job = submit(
        &storage,
        group,
        &flat_graph(2, false, "{}"),
        &flat_inputs(2, 4),
    )
    .await;
    storage.cancel_job(job).await.unwrap();
    let live = storage.watch_job(job).await.unwrap();
    let p = *live.borrow();
    assert_eq!(
        (p.state, p.total, p.cancelled),
        (Some(JobState::Cancelled), 2, 2)
    );

    let db = storage.db().clone();
    storage.shutdown().await;
    drop(storage);
    let storage = Storage::open(db, config()).await.unwrap();
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Cancelled);
    let stored = *storage.watch_job(job).await.unwrap().borrow();
    assert_eq!(stored.state, Some(JobState::Cancelled));
    assert_eq!(
        (stored.total, stored.cancelled, stored.succeeded),
        (2, 2, 0)
    );
    assert!(stored.is_terminal());
    let listed = storage.list_jobs(0, None, None).await.unwrap();
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), [job]);
    storage.shutdown().await;
}
