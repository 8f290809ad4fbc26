//! Conformance cases of the client-facing lookups: opening a resource group by name (create or
//! verify, race-safe) and listing jobs with filters.

use std::sync::Arc;

use silk_tdl::ResourceGroupId;

use super::super::{Db, DbError, JobFilter, JobSummary, Secret};
use super::{T0, group};
use silk_core::JobState::*;

fn pw() -> Secret {
    Secret::new(b"pw".to_vec())
}

pub(super) async fn open_resource_group<D: Db>(db: D) {
    let a = db.open_resource_group("team", &pw(), T0).await.unwrap();
    assert_eq!(db.open_resource_group("team", &pw(), T0).await.unwrap(), a);
    db.verify_resource_group(a, &pw()).await.unwrap();
    let wrong = db
        .open_resource_group("team", &Secret::new(b"pW".to_vec()), T0)
        .await;
    assert!(
        matches!(wrong, Err(DbError::InvalidSecret(id)) if id == a),
        "{wrong:?}"
    );
    let other = db.open_resource_group("other", &pw(), T0).await.unwrap();
    assert_ne!(other, a);
    // Finding never creates, and checks the secret like opening.
    assert_eq!(
        db.find_resource_group("team", &pw()).await.unwrap(),
        Some(a)
    );
    assert_eq!(db.find_resource_group("nobody", &pw()).await.unwrap(), None);
    assert_eq!(db.find_resource_group("nobody", &pw()).await.unwrap(), None);
    let wrong = db
        .find_resource_group("team", &Secret::new(b"pW".to_vec()))
        .await;
    assert!(
        matches!(wrong, Err(DbError::InvalidSecret(id)) if id == a),
        "{wrong:?}"
    );
    // A group added by name earlier opens with its secret.
    let added = group(&db, "added").await;
    assert_eq!(
        db.open_resource_group("added", &pw(), T0).await.unwrap(),
        added
    );
}

pub(super) async fn open_resource_group_race<D: Db>(db: D) {
    let db = Arc::new(db);
    for round in 0..3 {
        let name = format!("race-{round}");
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let (db, name) = (db.clone(), name.clone());
                tokio::spawn(async move { db.open_resource_group(&name, &pw(), T0).await })
            })
            .collect();
        let mut ids = Vec::new();
        for open in opens {
            ids.push(open.await.unwrap().unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{name}: {ids:?}");
    }
}

fn filter(limit: u32) -> JobFilter {
    JobFilter {
        limit,
        state: None,
        resource_group: None,
    }
}

async fn ids<D: Db>(db: &D, f: JobFilter) -> Vec<u64> {
    db.list_jobs(f)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id.0)
        .collect()
}

pub(super) async fn list_jobs<D: Db>(db: D) {
    let (g, h) = (group(&db, "g").await, group(&db, "h").await);
    let frame = [0, 0, 0, 0];
    let a = db
        .insert_job(g, &[b"{}".to_vec()], &frame, 3, T0)
        .await
        .unwrap();
    let b = db
        .insert_job(h, &[b"{}".to_vec()], &frame, 1, T0 + 1)
        .await
        .unwrap();
    let c = db
        .insert_job(g, &[b"{}".to_vec()], &frame, 2, T0 + 2)
        .await
        .unwrap();
    db.set_state(a, Running, T0 + 3).await.unwrap();
    db.set_state(a, Cancelled, T0 + 4).await.unwrap();

    let all = db.list_jobs(filter(10)).await.unwrap();
    assert_eq!(
        all.iter().map(|j| j.id).collect::<Vec<_>>(),
        [c, b, a],
        "newest first"
    );
    assert_eq!(
        all[2],
        JobSummary {
            id: a,
            resource_group: g,
            state: Cancelled,
            created_at_ms: T0,
            ended_at_ms: Some(T0 + 4),
            task_count: 3,
        }
    );
    assert_eq!(
        (all[0].state, all[0].ended_at_ms, all[0].task_count),
        (Ready, None, 2)
    );

    assert_eq!(ids(&db, filter(2)).await, [c.0, b.0]);
    assert!(ids(&db, filter(0)).await.is_empty());
    let ready = JobFilter {
        state: Some(Ready),
        ..filter(10)
    };
    assert_eq!(ids(&db, ready).await, [c.0, b.0]);
    let cancelled = JobFilter {
        state: Some(Cancelled),
        ..filter(10)
    };
    assert_eq!(ids(&db, cancelled).await, [a.0]);
    let of_g = JobFilter {
        resource_group: Some(g),
        ..filter(10)
    };
    assert_eq!(ids(&db, of_g).await, [c.0, a.0]);
    let ready_of_g = JobFilter {
        state: Some(Ready),
        ..of_g
    };
    assert_eq!(ids(&db, ready_of_g).await, [c.0]);
    let unknown = JobFilter {
        resource_group: Some(ResourceGroupId(h.0 + 100)),
        ..filter(10)
    };
    assert!(ids(&db, unknown).await.is_empty());
}
