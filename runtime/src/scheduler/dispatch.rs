//! The bounded dispatch queue between the scheduler core and the execution managers' `NextTasks`
//! calls. It carries the storage session in force: a bump (strictly forward) purges every queued
//! assignment of the older session, so no reader ever receives one after the bump, and pushes of
//! assignments from another session are refused. Unlike upstream, readers do not hold a lock
//! while they wait, so a bump never stalls behind a long-poll.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::assignment::Assignment;
use super::error::{Error, Result};
use crate::metrics::scheduler::DispatchMetrics;
use crate::storage::lock;
use silk_core::ids::SessionId;

#[derive(Debug, Default)]
struct State {
    session: SessionId,
    /// Each assignment with when it was queued.
    items: VecDeque<(Assignment, Instant)>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    state: Mutex<State>,
    /// Signalled when items are pushed.
    items: Notify,
    /// Signalled when items are taken or purged.
    space: Notify,
    metrics: DispatchMetrics,
}

/// A cloneable handle on one dispatch queue.
#[derive(Debug, Clone)]
pub struct DispatchQueue {
    inner: Arc<Inner>,
}

impl DispatchQueue {
    /// An empty queue for session 0 holding at most `capacity` (≥ 1) assignments.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                state: Mutex::new(State::default()),
                items: Notify::new(),
                space: Notify::new(),
                metrics: DispatchMetrics::default(),
            }),
        }
    }

    /// The queue's metrics (register them to expose them).
    #[must_use]
    pub fn metrics(&self) -> &DispatchMetrics {
        &self.inner.metrics
    }

    /// The session in force.
    #[must_use]
    pub fn session(&self) -> SessionId {
        lock(&self.inner.state).session
    }

    /// Queued assignments.
    #[must_use]
    pub fn len(&self) -> usize {
        lock(&self.inner.state).items.len()
    }

    /// Whether nothing is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room left.
    #[must_use]
    pub fn free(&self) -> usize {
        self.inner.capacity.saturating_sub(self.len())
    }

    /// Moves to a strictly newer session and purges (returns) every queued assignment.
    pub fn bump_session(&self, session: SessionId) -> Result<Vec<Assignment>> {
        let mut state = lock(&self.inner.state);
        if session <= state.session {
            return Err(Error::SessionNotNewer {
                current: state.session,
                requested: session,
            });
        }
        state.session = session;
        let purged: Vec<_> = state.items.drain(..).map(|(a, _)| a).collect();
        drop(state);
        let metrics = &self.inner.metrics;
        metrics.queue_length.set(0);
        metrics.purged.inc_by(purged.len() as u64);
        self.inner.space.notify_waiters();
        Ok(purged)
    }

    /// Queues as many of `batch` as fit and carry the current session, in order; returns how
    /// many of the batch were consumed (queued or dropped as stale). Stops at the first
    /// assignment that does not fit.
    pub fn push(&self, batch: &[Assignment]) -> usize {
        let now = Instant::now();
        let mut state = lock(&self.inner.state);
        let mut consumed = 0;
        let mut queued = false;
        for a in batch {
            if a.session != state.session {
                consumed += 1;
                continue;
            }
            if state.items.len() >= self.inner.capacity {
                break;
            }
            state.items.push_back((*a, now));
            consumed += 1;
            queued = true;
        }
        let length = state.items.len();
        drop(state);
        self.inner.metrics.queue_length.set(length as i64);
        if queued {
            self.inner.items.notify_waiters();
        }
        consumed
    }

    /// Up to `max` assignments: returns as soon as there is at least one, or empty after `wait`.
    pub async fn pop(&self, max: usize, wait: Duration) -> Vec<Assignment> {
        self.pop_timed(max, wait)
            .await
            .into_iter()
            .map(|(a, _)| a)
            .collect()
    }

    /// As [`Self::pop`], each assignment with how long it waited in the queue.
    pub async fn pop_timed(&self, max: usize, wait: Duration) -> Vec<(Assignment, Duration)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.inner.items.notified();
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

    fn take(&self, max: usize) -> Vec<(Assignment, Duration)> {
        let mut state = lock(&self.inner.state);
        let n = max.min(state.items.len());
        let got: Vec<_> = state.items.drain(..n).collect();
        let length = state.items.len();
        drop(state);
        if got.is_empty() {
            return Vec::new();
        }
        self.inner.space.notify_waiters();
        let metrics = &self.inner.metrics;
        metrics.queue_length.set(length as i64);
        metrics.dispatched.inc_by(got.len() as u64);
        let now = Instant::now();
        got.into_iter()
            .map(|(a, queued)| {
                let waited = now.saturating_duration_since(queued);
                metrics.latency.observe(waited);
                (a, waited)
            })
            .collect()
    }

    /// Resolves once the queue has room (at once if it has now).
    pub async fn space(&self) {
        loop {
            let notified = self.inner.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.free() > 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use silk_tdl::{JobId, ResourceGroupId, TaskId};

    use super::*;
    use crate::scheduler::assignment::AssignmentId;

    fn a(id: u64, session: u64) -> Assignment {
        Assignment {
            id: AssignmentId(id),
            session: SessionId(session),
            group: ResourceGroupId(1),
            job: JobId(id),
            task: TaskId::Index(0),
        }
    }

    #[test]
    fn bump_to_same_or_lower_session_is_rejected() {
        let q = DispatchQueue::new(4);
        q.bump_session(SessionId(3)).unwrap();
        assert!(matches!(
            q.bump_session(SessionId(3)),
            Err(Error::SessionNotNewer { .. })
        ));
        assert!(q.bump_session(SessionId(2)).is_err());
        assert_eq!(q.session(), SessionId(3));
    }

    #[tokio::test]
    async fn items_before_a_bump_are_never_delivered_after_it() {
        let q = DispatchQueue::new(8);
        assert_eq!(q.push(&[a(1, 0), a(2, 0), a(3, 0)]), 3);
        let purged = q.bump_session(SessionId(1)).unwrap();
        assert_eq!(purged.len(), 3);
        assert_eq!(q.len(), 0);
        // Stale pushes are consumed but not queued.
        assert_eq!(q.push(&[a(4, 0), a(5, 1)]), 2);
        let got = q.pop(10, Duration::from_millis(10)).await;
        assert_eq!(got, vec![a(5, 1)]);
        // Metrics: three purged, one dispatched (with its wait observed), none left queued.
        let m = q.metrics();
        assert_eq!(m.purged.get(), 3);
        assert_eq!(m.dispatched.get(), 1);
        assert_eq!(m.latency.count(), 1);
        assert_eq!(m.queue_length.get(), 0);
    }

    #[tokio::test]
    async fn push_stops_when_full_and_space_wakes() {
        let q = DispatchQueue::new(2);
        assert_eq!(q.push(&[a(1, 0), a(2, 0), a(3, 0)]), 2);
        assert_eq!(q.free(), 0);
        assert_eq!(q.metrics().queue_length.get(), 2);
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.space().await }
        });
        assert_eq!(q.pop(1, Duration::ZERO).await, vec![a(1, 0)]);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("space signalled")
            .unwrap();
    }

    #[tokio::test]
    async fn hundred_items_over_four_consumers_each_delivered_once() {
        let q = DispatchQueue::new(16);
        let mut readers = Vec::new();
        for _ in 0..4 {
            let q = q.clone();
            readers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = q.pop(3, Duration::from_millis(200)).await;
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch);
                }
            }));
        }
        let items: Vec<_> = (0..100).map(|i| a(i, 0)).collect();
        let mut rest = &items[..];
        while !rest.is_empty() {
            let n = q.push(rest);
            rest = &rest[n..];
            if n == 0 {
                tokio::time::timeout(Duration::from_secs(5), q.space())
                    .await
                    .unwrap();
            }
        }
        let mut seen = HashSet::new();
        for r in readers {
            for item in tokio::time::timeout(Duration::from_secs(10), r)
                .await
                .unwrap()
                .unwrap()
            {
                assert!(seen.insert(item.id), "delivered twice: {item:?}");
            }
        }
        assert_eq!(seen.len(), 100);
    }

    #[tokio::test]
    async fn stress_every_delivered_item_carries_the_session_of_its_enqueue() {
        let q = DispatchQueue::new(16);
        let mut seed = 0x2545_f491_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let reader = tokio::spawn({
            let (q, stop) = (q.clone(), stop.clone());
            async move {
                let mut got = Vec::new();
                while !stop.is_cancelled() || !q.is_empty() {
                    got.extend(q.pop(5, Duration::from_millis(5)).await);
                }
                got
            }
        });
        let mut id = 0;
        for round in 1..=20u64 {
            let session = q.session().0;
            let n = usize::try_from(next() % 20).unwrap();
            let batch: Vec<_> = (0..n)
                .map(|_| {
                    id += 1;
                    a(id, session)
                })
                .collect();
            let mut rest = &batch[..];
            while !rest.is_empty() {
                let k = q.push(rest);
                rest = &rest[k..];
                tokio::task::yield_now().await;
            }
            if next() % 2 == 0 {
                q.bump_session(SessionId(round)).unwrap();
            }
        }
        stop.cancel();
        let got = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .unwrap()
            .unwrap();
        // Every item id encodes nothing about the session, so check monotonicity instead: a
        // delivered item's session never goes backwards and ids are unique.
        let mut last = SessionId(0);
        let mut ids = HashSet::new();
        for item in got {
            assert!(item.session >= last);
            last = item.session;
            assert!(ids.insert(item.id));
        }
    }
}
