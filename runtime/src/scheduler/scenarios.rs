//! Upstream's round-robin scenarios, run against the core directly (deterministic: no clock, no
//! I/O), plus the dispatch-queue purge on a session bump.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use silk_tdl::{JobId, ResourceGroupId, TaskId};

use super::assignment::{Assignment, AssignmentId};
use super::config::CoreConfig;
use super::core::{RoundRobinCore, SessionChange};
use super::dispatch::DispatchQueue;
use crate::storage::ReadyTask;
use silk_core::ids::SessionId;

const G: ResourceGroupId = ResourceGroupId(1);

fn config(active: usize) -> CoreConfig {
    CoreConfig {
        active_jobs_per_group: active,
        dispatch_queue_capacity: 1024,
        ready_task_capacity: 16_384,
        commit_task_capacity: 16,
        cleanup_task_capacity: 16,
        storage_poll_wait_ms: 10,
        finalizing_expiry_ms: 6 * 3600 * 1000,
    }
}

fn core(active: usize, session: u64) -> RoundRobinCore {
    let mut c = RoundRobinCore::new(config(active));
    if session > 0 {
        assert_eq!(c.observe_session(SessionId(session)), SessionChange::Newer);
    }
    c
}

fn entry(job: u64, task: TaskId) -> ReadyTask {
    ReadyTask {
        group: G,
        job: JobId(job),
        task,
    }
}

/// Task 0 of every job, then task 1 of every job, …; every `dup`-th entry duplicated adjacently.
fn interleaved(jobs: &[u64], tasks: u64, dup: usize) -> Vec<ReadyTask> {
    let mut out = Vec::new();
    let mut n = 0;
    for t in 0..tasks {
        for &j in jobs {
            let e = entry(j, TaskId::Index(t));
            out.push(e);
            n += 1;
            if dup > 0 && n % dup == 0 {
                out.push(e);
            }
        }
    }
    out
}

fn pairs(a: &[Assignment]) -> Vec<(u64, TaskId)> {
    a.iter().map(|a| (a.job.0, a.task)).collect()
}

fn strict_rotation(jobs: &[u64], tasks: u64) -> Vec<(u64, TaskId)> {
    (0..tasks)
        .flat_map(|t| jobs.iter().map(move |&j| (j, TaskId::Index(t))))
        .collect()
}

fn now() -> Instant {
    Instant::now()
}

#[test]
fn active_capacity_one_serves_jobs_one_after_another() {
    let mut c = core(1, 1);
    c.ingest(&interleaved(&[0, 1, 2], 5, 3), now());
    let got = c.decide(100);
    let expected: Vec<_> = [0, 1, 2]
        .iter()
        .flat_map(|&j| (0..5).map(move |t| (j, TaskId::Index(t))))
        .collect();
    assert_eq!(pairs(&got), expected);
    assert!(c.decide(100).is_empty());
}

#[test]
fn round_robin_is_strict_rotation() {
    let jobs: Vec<u64> = (0..10).collect();
    let mut c = core(10, 1);
    c.ingest(&interleaved(&jobs, 5, 4), now());
    let got = c.decide(1000);
    assert_eq!(pairs(&got), strict_rotation(&jobs, 5));
    assert!(
        got.iter()
            .all(|a| a.session == SessionId(1) && a.group == G)
    );
}

#[test]
fn pending_jobs_are_promoted_fifo() {
    let jobs: Vec<u64> = (0..20).collect();
    let mut c = core(10, 1);
    c.ingest(&interleaved(&jobs, 5, 5), now());
    assert_eq!(c.pending_jobs(G), (10..20).map(JobId).collect::<Vec<_>>());
    let got = c.decide(1000);
    assert_eq!(got.len(), 100);
    assert_eq!(pairs(&got[..50]), strict_rotation(&jobs[..10], 5));
    let tail = &got[50..];
    for window in tail.chunks(10) {
        let js: HashSet<u64> = window.iter().map(|a| a.job.0).collect();
        assert_eq!(js, (10..20).collect::<HashSet<_>>());
    }
    for j in 10..20 {
        let ts: Vec<_> = tail
            .iter()
            .filter(|a| a.job.0 == j)
            .map(|a| a.task)
            .collect();
        assert_eq!(ts, (0..5).map(TaskId::Index).collect::<Vec<_>>());
    }
}

#[test]
fn commit_and_cleanup_go_first_every_round() {
    let mut c = core(4, 1);
    let active = [100, 101, 102, 103];
    c.ingest(&interleaved(&active, 3, 0), now());
    let mut fin: Vec<_> = (0..11).map(|j| entry(200 + j, TaskId::Commit)).collect();
    fin.push(entry(200, TaskId::Commit));
    fin.extend((0..3).map(|j| entry(300 + j, TaskId::Cleanup)));
    c.ingest(&fin, now());
    let got = pairs(&c.decide(1000));
    let mut expected = Vec::new();
    let mut commits = (200..211).peekable();
    for r in 0..3 {
        for _ in 0..4 {
            if let Some(j) = commits.next() {
                expected.push((j, TaskId::Commit));
            }
        }
        expected.push((300 + r, TaskId::Cleanup));
        expected.extend(active.iter().map(|&j| (j, TaskId::Index(r))));
    }
    assert_eq!(got.len(), 26);
    assert_eq!(got, expected);
}

fn finalizing_drops_jobs(kind: TaskId) {
    let cfg = CoreConfig {
        dispatch_queue_capacity: 2,
        ..config(2)
    };
    let mut c = RoundRobinCore::new(cfg);
    c.observe_session(SessionId(1));
    let (a, b, p, q) = (1, 2, 3, 4);
    c.ingest(&interleaved(&[a, b, p, q], 3, 0), now());
    assert_eq!(c.active_jobs(G), vec![JobId(a), JobId(b)]);
    let first = c.decide(2);
    assert_eq!(
        pairs(&first),
        [(a, TaskId::Index(0)), (b, TaskId::Index(0))]
    );
    c.ingest(&[entry(b, kind), entry(q, kind)], now());
    assert_eq!(c.active_jobs(G), vec![JobId(a), JobId(p)]);
    assert!(c.pending_jobs(G).is_empty());
    assert!(!c.is_buffered(JobId(b), TaskId::Index(1)));
    let rest = pairs(&c.decide(100));
    assert_eq!(rest.len(), 7);
    let fin: Vec<_> = rest.iter().filter(|(_, t)| *t == kind).collect();
    assert_eq!(fin, [&(b, kind), &(q, kind)]);
    let of = |j: u64| -> Vec<TaskId> {
        first
            .iter()
            .map(|a| (a.job.0, a.task))
            .chain(rest.iter().copied())
            .filter(|(job, t)| *job == j && matches!(t, TaskId::Index(_)))
            .map(|(_, t)| t)
            .collect()
    };
    let all3: Vec<_> = (0..3).map(TaskId::Index).collect();
    assert_eq!(of(a), all3);
    assert_eq!(of(b), [TaskId::Index(0)]);
    assert_eq!(of(p), all3);
    assert!(of(q).is_empty());
    // Re-delivered regular tasks of b and q are ignored; a fresh canary job is scheduled.
    c.ingest(
        &[
            entry(b, TaskId::Index(2)),
            entry(q, TaskId::Index(0)),
            entry(9, TaskId::Index(0)),
        ],
        now(),
    );
    assert_eq!(pairs(&c.decide(100)), [(9, TaskId::Index(0))]);
}

#[test]
fn finalizing_commit_drops_buffered_tasks() {
    finalizing_drops_jobs(TaskId::Commit);
}

#[test]
fn finalizing_cleanup_drops_buffered_tasks() {
    finalizing_drops_jobs(TaskId::Cleanup);
}

#[test]
fn finalizing_gate_expires() {
    let cfg = CoreConfig {
        finalizing_expiry_ms: 1000,
        ..config(2)
    };
    let mut c = RoundRobinCore::new(cfg);
    c.observe_session(SessionId(1));
    let t0 = Instant::now();
    c.ingest(&[entry(1, TaskId::Commit)], t0);
    c.ingest(&[entry(1, TaskId::Index(0))], t0);
    assert!(!c.is_buffered(JobId(1), TaskId::Index(0)));
    c.expire_finalizing(t0 + Duration::from_millis(999));
    c.ingest(&[entry(1, TaskId::Index(0))], t0);
    assert!(!c.is_buffered(JobId(1), TaskId::Index(0)));
    c.expire_finalizing(t0 + Duration::from_millis(1000));
    c.ingest(&[entry(1, TaskId::Index(0))], t0);
    assert!(c.is_buffered(JobId(1), TaskId::Index(0)));
}

#[tokio::test]
async fn session_bump_clears_state_and_purges_queued_assignments() {
    let mut c = core(4, 0);
    let q = DispatchQueue::new(4);
    c.ingest(&interleaved(&[1, 2, 3, 4], 4, 0), now());
    let queued = c.decide(q.free());
    assert_eq!(q.push(&queued), 4);
    assert_eq!(c.buffered(), 12);
    assert_eq!(c.observe_session(SessionId(1)), SessionChange::Newer);
    assert_eq!(q.bump_session(SessionId(1)).unwrap().len(), 4);
    c.ingest(&interleaved(&[10, 11], 2, 0), now());
    assert_eq!(c.active_jobs(G), vec![JobId(10), JobId(11)]);
    assert!(c.pending_jobs(G).is_empty());
    assert_eq!(c.buffered(), 4);
    let next = c.decide(q.free());
    assert_eq!(q.push(&next), 4);
    let drained = q.pop(100, Duration::ZERO).await;
    assert!(q.is_empty());
    assert_eq!(pairs(&drained), strict_rotation(&[10, 11], 2));
    assert!(drained.iter().all(|a| a.session == SessionId(1)));
    // An older session is refused.
    assert_eq!(c.observe_session(SessionId(0)), SessionChange::Older);
    // Ids are never reused across sessions.
    let ids: HashSet<_> = queued.iter().chain(&drained).map(|a| a.id).collect();
    assert_eq!(ids.len(), 8);
}

fn lost(job: u64, task: TaskId, session: u64, id: u64) -> Assignment {
    Assignment {
        id: AssignmentId(id),
        session: SessionId(session),
        group: G,
        job: JobId(job),
        task,
    }
}

#[test]
fn reschedule_dispatches_under_a_new_id() {
    let mut c = core(4, 1);
    let a = lost(7, TaskId::Index(0), 1, u64::MAX - 3);
    assert!(c.reschedule(&a, now()));
    let got = c.decide(10);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].job, got[0].task, got[0].group, got[0].session),
        (a.job, a.task, a.group, a.session)
    );
    assert_ne!(got[0].id, a.id);
}

#[test]
fn stale_reschedule_is_dropped() {
    let mut c = core(4, 1);
    assert!(!c.reschedule(&lost(7, TaskId::Index(0), 0, 3), now()));
    assert!(c.active_jobs(G).is_empty());
    assert_eq!(c.buffered(), 0);
    assert!(c.decide(10).is_empty());
}

#[test]
fn reschedule_of_a_buffered_task_is_deduplicated() {
    let mut c = core(4, 1);
    c.ingest(
        &[entry(1, TaskId::Index(0)), entry(2, TaskId::Index(0))],
        now(),
    );
    let blocker = c.decide(1);
    assert_eq!(pairs(&blocker), [(1, TaskId::Index(0))]);
    assert!(!c.reschedule(&lost(2, TaskId::Index(0), 1, 99), now()));
    let rest = c.decide(1);
    assert_eq!(pairs(&rest), [(2, TaskId::Index(0))]);
    assert!(c.decide(10).is_empty());
}

#[test]
fn random_rescheduling_completes_every_task() {
    let mut c = core(4, 1);
    c.ingest(&interleaved(&[1, 2, 3, 4], 5, 0), now());
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut coin = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed.is_multiple_of(2)
    };
    let mut sent_back = HashSet::new();
    let mut done = HashSet::new();
    let mut ids = HashSet::new();
    let mut dispatches: HashMap<(JobId, TaskId), usize> = HashMap::new();
    let mut total = 0;
    for _ in 0..1000 {
        let batch = c.decide(3);
        if batch.is_empty() {
            break;
        }
        for a in batch {
            total += 1;
            assert!(ids.insert(a.id), "assignment id reused");
            *dispatches.entry((a.job, a.task)).or_default() += 1;
            if !sent_back.contains(&(a.job, a.task)) && coin() {
                sent_back.insert((a.job, a.task));
                assert!(c.reschedule(&a, now()));
            } else {
                assert!(done.insert((a.job, a.task)));
            }
        }
    }
    assert_eq!(done.len(), 20);
    assert_eq!(total, 20 + sent_back.len());
    for (key, n) in dispatches {
        assert_eq!(n, if sent_back.contains(&key) { 2 } else { 1 });
    }
}

#[test]
fn groups_take_turns() {
    let mut c = core(4, 1);
    let g2 = ResourceGroupId(2);
    let mut entries = interleaved(&[1], 3, 0);
    entries.extend((0..3).map(|t| ReadyTask {
        group: g2,
        job: JobId(2),
        task: TaskId::Index(t),
    }));
    // A group with many jobs does not crowd out a group with one.
    entries.extend(interleaved(&[3, 4, 5], 3, 0));
    c.ingest(&entries, now());
    let got = c.decide(100);
    let groups: Vec<_> = got.iter().map(|a| a.group.0).collect();
    assert_eq!(&groups[..6], &[1, 2, 1, 2, 1, 2]);
    assert_eq!(got.len(), 15);
}

#[test]
fn duplicates_reach_dispatch_once() {
    let mut c = core(4, 1);
    let e = entry(1, TaskId::Index(0));
    c.ingest(&[e, e], now());
    c.ingest(&[e], now());
    assert_eq!(c.decide(10).len(), 1);
    assert!(c.decide(10).is_empty());
}
