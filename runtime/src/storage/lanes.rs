//! The inbound queues ("lanes") the scheduler polls: ready regular tasks, ready commit tasks and
//! ready cleanup tasks. Entries only mean "may be schedulable": duplicates and stale entries are
//! expected, and registration decides. Lanes are unbounded, so pushing never blocks a storage
//! operation (upstream's bounded lanes could deadlock a restart, #398). With tracing on, entries
//! carry when they were queued (the start of their `task.queued` span).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use silk_tdl::{JobId, ResourceGroupId, TaskId};
use tokio::sync::Notify;

/// A task that may be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReadyTask {
    /// The job's resource group.
    pub group: ResourceGroupId,
    /// The job.
    pub job: JobId,
    /// The task.
    pub task: TaskId,
}

/// Which lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LaneKind {
    /// Regular tasks.
    Ready,
    /// Commit tasks.
    Commit,
    /// Cleanup tasks.
    Cleanup,
}

impl LaneKind {
    /// The lane a task goes to.
    #[must_use]
    pub fn of(task: TaskId) -> Self {
        match task {
            TaskId::Index(_) => Self::Ready,
            TaskId::Commit => Self::Commit,
            TaskId::Cleanup => Self::Cleanup,
        }
    }
}

/// One multi-producer, multi-consumer queue with a long-poll.
#[derive(Debug, Default)]
struct Lane {
    /// Each entry with when it was queued (when [`Lanes::set_timed`]).
    queue: Mutex<VecDeque<(ReadyTask, Option<Instant>)>>,
    notify: Notify,
}

impl Lane {
    fn push_all(&self, tasks: impl IntoIterator<Item = ReadyTask>, now: Option<Instant>) {
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = q.len();
        q.extend(tasks.into_iter().map(|t| (t, now)));
        if q.len() > before {
            drop(q);
            self.notify.notify_waiters();
        }
    }

    fn take(&self, max: usize) -> Vec<(ReadyTask, Option<Instant>)> {
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = max.min(q.len());
        q.drain(..n).collect()
    }

    /// Up to `max` entries: returns as soon as there is at least one, or empty after `wait`.
    async fn poll(&self, max: usize, wait: Duration) -> Vec<(ReadyTask, Option<Instant>)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.take(max);
            if !got.is_empty() || max == 0 {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.take(max);
            }
        }
    }

    fn len(&self) -> usize {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// The three lanes.
#[derive(Debug, Default)]
pub struct Lanes {
    ready: Lane,
    commit: Lane,
    cleanup: Lane,
    /// Entries carry when they were queued (for `task.queued` spans; off unless tracing).
    timed: AtomicBool,
}

impl Lanes {
    fn lane(&self, kind: LaneKind) -> &Lane {
        match kind {
            LaneKind::Ready => &self.ready,
            LaneKind::Commit => &self.commit,
            LaneKind::Cleanup => &self.cleanup,
        }
    }

    /// From now on, entries carry when they were queued ([`Self::poll_timed`]).
    pub fn set_timed(&self) {
        self.timed.store(true, Ordering::Relaxed);
    }

    /// Queues tasks of one job (each goes to its kind's lane).
    pub fn push(&self, group: ResourceGroupId, job: JobId, tasks: &[TaskId]) {
        let now = self.timed.load(Ordering::Relaxed).then(Instant::now);
        for kind in [LaneKind::Ready, LaneKind::Commit, LaneKind::Cleanup] {
            let mine = tasks.iter().filter(|t| LaneKind::of(**t) == kind);
            let mut entries = mine.map(|&task| ReadyTask { group, job, task }).peekable();
            if entries.peek().is_some() {
                self.lane(kind).push_all(entries, now);
            }
        }
    }

    /// Long-polls one lane.
    pub async fn poll(&self, kind: LaneKind, max: usize, wait: Duration) -> Vec<ReadyTask> {
        let got = self.lane(kind).poll(max, wait).await;
        got.into_iter().map(|(t, _)| t).collect()
    }

    /// As [`Self::poll`], each entry with when it was queued (`None` for entries queued before
    /// [`Self::set_timed`]).
    pub async fn poll_timed(
        &self,
        kind: LaneKind,
        max: usize,
        wait: Duration,
    ) -> Vec<(ReadyTask, Option<Instant>)> {
        self.lane(kind).poll(max, wait).await
    }

    /// Entries waiting in a lane.
    #[must_use]
    pub fn len(&self, kind: LaneKind) -> usize {
        self.lane(kind).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> TaskId {
        TaskId::Index(i)
    }

    #[tokio::test]
    async fn poll_returns_early_and_caps_items() {
        let lanes = Lanes::default();
        lanes.push(
            ResourceGroupId(1),
            JobId(2),
            &[entry(0), entry(1), entry(2), TaskId::Commit],
        );
        let got = tokio::time::timeout(
            Duration::from_secs(5),
            lanes.poll(LaneKind::Ready, 2, Duration::from_secs(60)),
        )
        .await
        .expect("returns without waiting");
        assert_eq!(
            got.iter().map(|r| r.task).collect::<Vec<_>>(),
            [entry(0), entry(1)]
        );
        assert_eq!(lanes.len(LaneKind::Ready), 1);
        assert_eq!(lanes.len(LaneKind::Commit), 1);
        assert_eq!(lanes.len(LaneKind::Cleanup), 0);
    }

    #[tokio::test]
    async fn entries_carry_their_queue_time_only_when_timed() {
        let lanes = Lanes::default();
        let wait = Duration::from_millis(1);
        lanes.push(ResourceGroupId(1), JobId(2), &[entry(0)]);
        let got = lanes.poll_timed(LaneKind::Ready, 10, wait).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, None, "untimed lanes never read the clock");
        lanes.set_timed();
        let before = Instant::now();
        lanes.push(ResourceGroupId(1), JobId(2), &[entry(1)]);
        let got = lanes.poll_timed(LaneKind::Ready, 10, wait).await;
        let queued = got[0].1.expect("timed");
        assert!(queued >= before && queued <= Instant::now());
    }

    #[tokio::test]
    async fn poll_empty_after_wait() {
        let lanes = Lanes::default();
        let got = lanes
            .poll(LaneKind::Cleanup, 10, Duration::from_millis(20))
            .await;
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn poll_wakes_on_push() {
        let lanes = std::sync::Arc::new(Lanes::default());
        let waiter = tokio::spawn({
            let lanes = lanes.clone();
            async move {
                lanes
                    .poll(LaneKind::Ready, 10, Duration::from_secs(60))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        lanes.push(ResourceGroupId(1), JobId(7), &[entry(3)]);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(
            got,
            vec![ReadyTask {
                group: ResourceGroupId(1),
                job: JobId(7),
                task: entry(3)
            }]
        );
    }
}
