//! The execution-manager registry: which assignments each EM holds but has not acknowledged yet
//! (an EM acknowledges an assignment once storage accepted — or rejected — its task instance).
//! An EM that stops heartbeating for the cutoff, or shuts down with unacknowledged assignments,
//! has them sent back to the core (the reschedule channel), which re-dispatches them under new
//! assignment ids. An EM that shut down is remembered as dead and gets no more work.
//!
//! Every assignment is a lease: one still unacknowledged `assignment_lease_ms` after it was
//! handed out is sent back too, even while its EM lives — the `NextTasks` answer carrying it
//! may have been lost after it was recorded here. (A lease that expires while the EM is still
//! registering the task costs nothing: storage refuses the second instance.)

use prometheus_client::metrics::counter::Counter;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::assignment::{Assignment, AssignmentId};
use super::error::{Error, Result};
use crate::storage::lock;
use silk_core::ids::ExecutionManagerId;

/// Registry settings (the `[registry]` table of the scheduler config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// An EM not heard from (heartbeat, poll or acknowledgement) for this long is dead.
    pub dead_em_cutoff_ms: u64,
    /// How often to look for dead EMs and expired leases.
    pub sweep_interval_ms: u64,
    /// An assignment not acknowledged this long after it was handed out is dispatched again.
    pub assignment_lease_ms: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            dead_em_cutoff_ms: 5_000,
            sweep_interval_ms: 1_000,
            assignment_lease_ms: 10_000,
        }
    }
}

#[derive(Debug)]
struct EmState {
    last_seen: Instant,
    /// Unacknowledged assignments and when they were handed out.
    outstanding: HashMap<AssignmentId, (Assignment, Instant)>,
}

#[derive(Debug, Default)]
struct State {
    ems: HashMap<ExecutionManagerId, EmState>,
    shut_down: HashSet<ExecutionManagerId>,
}

#[derive(Debug)]
struct Inner {
    config: RegistryConfig,
    state: Mutex<State>,
    reschedule: mpsc::UnboundedSender<Assignment>,
    /// Assignments sent back for re-dispatch (metrics).
    redispatched: Counter,
}

/// A cloneable handle on the registry.
#[derive(Debug, Clone)]
pub struct EmRegistry {
    inner: Arc<Inner>,
}

impl EmRegistry {
    /// A registry sending lost assignments to `reschedule`.
    #[must_use]
    pub fn new(config: RegistryConfig, reschedule: mpsc::UnboundedSender<Assignment>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State::default()),
                reschedule,
                redispatched: Counter::default(),
            }),
        }
    }

    /// Counts assignments sent back for re-dispatch (register it to expose it).
    #[must_use]
    pub fn redispatched(&self) -> &Counter {
        &self.inner.redispatched
    }

    fn send_back(&self, lost: impl IntoIterator<Item = Assignment>) -> usize {
        let mut n = 0;
        for a in lost {
            // The core outlives the registry's users; a closed channel means shutdown.
            if self.inner.reschedule.send(a).is_ok() {
                n += 1;
            }
        }
        self.inner.redispatched.inc_by(n as u64);
        n
    }

    fn touch(state: &mut State, em: ExecutionManagerId, now: Instant) -> Result<&mut EmState> {
        if state.shut_down.contains(&em) {
            return Err(Error::MarkedDead { em });
        }
        let entry = state.ems.entry(em).or_insert_with(|| {
            tracing::info!(em_id = %em, "execution manager seen");
            EmState {
                last_seen: now,
                outstanding: HashMap::new(),
            }
        });
        entry.last_seen = now;
        Ok(entry)
    }

    /// Records a heartbeat (registers the EM if new).
    pub fn heartbeat(&self, em: ExecutionManagerId, now: Instant) -> Result<()> {
        Self::touch(&mut lock(&self.inner.state), em, now).map(|_| ())
    }

    /// Records assignments handed to `em`. For an EM that shut down they go straight back to
    /// the core and the call fails.
    pub fn assign(&self, em: ExecutionManagerId, batch: &[Assignment], now: Instant) -> Result<()> {
        let mut state = lock(&self.inner.state);
        match Self::touch(&mut state, em, now) {
            Ok(entry) => {
                entry
                    .outstanding
                    .extend(batch.iter().map(|a| (a.id, (*a, now))));
                Ok(())
            }
            Err(e) => {
                drop(state);
                self.send_back(batch.iter().copied());
                Err(e)
            }
        }
    }

    /// Acknowledges assignments of `em`; returns how many were outstanding (unknown ids, e.g.
    /// already rescheduled, are ignored).
    pub fn complete(&self, em: ExecutionManagerId, ids: &[AssignmentId], now: Instant) -> usize {
        let mut state = lock(&self.inner.state);
        let Some(entry) = state.ems.get_mut(&em) else {
            if !ids.is_empty() {
                tracing::debug!(em_id = %em, count = ids.len(), "acknowledgements of unknown execution manager ignored");
            }
            return 0;
        };
        entry.last_seen = now;
        let found = ids
            .iter()
            .filter(|id| entry.outstanding.remove(id).is_some())
            .count();
        if found < ids.len() {
            tracing::debug!(em_id = %em, unknown = ids.len() - found, "unknown assignment acknowledgements ignored");
        }
        found
    }

    /// An EM shut down: its outstanding assignments are rescheduled (returns how many) and it
    /// gets no more work.
    pub fn mark_dead(&self, em: ExecutionManagerId) -> usize {
        let mut state = lock(&self.inner.state);
        state.shut_down.insert(em);
        let lost = state.ems.remove(&em);
        drop(state);
        let n = lost.map_or(0, |s| {
            self.send_back(s.outstanding.into_values().map(|(a, _)| a))
        });
        tracing::info!(em_id = %em, rescheduled = n, "execution manager shut down");
        n
    }

    /// Removes EMs not heard from for the cutoff and reschedules their assignments; returns
    /// the removed EMs. (A removed EM that comes back is registered again.)
    pub fn sweep(&self, now: Instant) -> Vec<ExecutionManagerId> {
        let cutoff = Duration::from_millis(self.inner.config.dead_em_cutoff_ms);
        let mut state = lock(&self.inner.state);
        let dead: Vec<_> = state
            .ems
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_seen) >= cutoff)
            .map(|(&em, _)| em)
            .collect();
        let mut lost: Vec<_> = dead
            .iter()
            .filter_map(|em| state.ems.remove(em))
            .flat_map(|s| s.outstanding.into_values().map(|(a, _)| a))
            .collect();
        let lease = Duration::from_millis(self.inner.config.assignment_lease_ms);
        for (em, s) in &mut state.ems {
            let expired: Vec<AssignmentId> = s
                .outstanding
                .iter()
                .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= lease)
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                if let Some((a, _)) = s.outstanding.remove(&id) {
                    tracing::warn!(em_id = %em, job_id = %a.job, task = %a.task, assignment = %a.id, "assignment lease expired unacknowledged; dispatching again");
                    lost.push(a);
                }
            }
        }
        drop(state);
        for em in &dead {
            tracing::warn!(em_id = %em, "execution manager timed out");
        }
        self.send_back(lost);
        dead
    }

    /// Sweeps every `sweep_interval_ms` until cancelled.
    pub async fn run_sweeper(self, cancel: CancellationToken) {
        let period = Duration::from_millis(self.inner.config.sweep_interval_ms.max(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {
                    self.sweep(Instant::now());
                }
            }
        }
    }

    /// Whether `em` is registered (seen and not removed).
    #[must_use]
    pub fn is_registered(&self, em: ExecutionManagerId) -> bool {
        lock(&self.inner.state).ems.contains_key(&em)
    }

    /// Unacknowledged assignments of `em`.
    #[must_use]
    pub fn outstanding(&self, em: ExecutionManagerId) -> usize {
        lock(&self.inner.state)
            .ems
            .get(&em)
            .map_or(0, |s| s.outstanding.len())
    }
}

#[cfg(test)]
mod tests {
    use silk_tdl::{JobId, ResourceGroupId, TaskId};

    use super::*;
    use silk_core::ids::SessionId;

    fn registry() -> (EmRegistry, mpsc::UnboundedReceiver<Assignment>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = RegistryConfig {
            dead_em_cutoff_ms: 1000,
            sweep_interval_ms: 50,
            assignment_lease_ms: 60_000,
        };
        (EmRegistry::new(config, tx), rx)
    }

    fn a(id: u64) -> Assignment {
        Assignment {
            id: AssignmentId(id),
            session: SessionId(1),
            group: ResourceGroupId(1),
            job: JobId(id),
            task: TaskId::Index(0),
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<Assignment>) -> Vec<Assignment> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    const EM: ExecutionManagerId = ExecutionManagerId(3);

    #[test]
    fn assign_or_heartbeat_registers() {
        let (r, _rx) = registry();
        r.heartbeat(EM, Instant::now()).unwrap();
        assert!(r.is_registered(EM));
        let other = ExecutionManagerId(4);
        r.assign(other, &[a(1)], Instant::now()).unwrap();
        assert!(r.is_registered(other));
        assert_eq!(r.outstanding(other), 1);
    }

    #[test]
    fn hundred_assignments_completed_leave_nothing_outstanding() {
        let (r, mut rx) = registry();
        let batch: Vec<_> = (0..100).map(a).collect();
        r.assign(EM, &batch, Instant::now()).unwrap();
        assert_eq!(r.outstanding(EM), 100);
        let ids: Vec<_> = batch.iter().map(|a| a.id).collect();
        assert_eq!(r.complete(EM, &ids, Instant::now()), 100);
        assert_eq!(r.outstanding(EM), 0);
        // A second acknowledgement of the same ids finds nothing.
        assert_eq!(r.complete(EM, &ids, Instant::now()), 0);
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn mark_dead_reschedules_outstanding_and_refuses_more_work() {
        let (r, mut rx) = registry();
        let batch: Vec<_> = (0..10).map(a).collect();
        r.assign(EM, &batch, Instant::now()).unwrap();
        r.complete(EM, &[AssignmentId(0)], Instant::now());
        assert_eq!(r.mark_dead(EM), 9);
        assert_eq!(r.redispatched().get(), 9);
        assert!(!r.is_registered(EM));
        let mut back: Vec<_> = drain(&mut rx).iter().map(|a| a.id.0).collect();
        back.sort_unstable();
        assert_eq!(back, (1..10).collect::<Vec<_>>());
        assert!(matches!(
            r.assign(EM, &[a(50)], Instant::now()),
            Err(Error::MarkedDead { .. })
        ));
        assert_eq!(drain(&mut rx), vec![a(50)]);
        assert!(r.heartbeat(EM, Instant::now()).is_err());
    }

    #[test]
    fn concurrent_assigns_racing_mark_dead_reschedule_each_once() {
        let (r, mut rx) = registry();
        r.heartbeat(EM, Instant::now()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let r = r.clone();
                s.spawn(move || {
                    for i in 0..25 {
                        let _ = r.assign(EM, &[a(t * 25 + i)], Instant::now());
                    }
                });
            }
            let r = r.clone();
            s.spawn(move || r.mark_dead(EM));
        });
        let mut back: Vec<_> = drain(&mut rx).iter().map(|a| a.id.0).collect();
        back.sort_unstable();
        assert_eq!(back, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn idle_em_times_out_and_its_assignment_is_rescheduled() {
        let (r, mut rx) = registry();
        let t0 = Instant::now();
        r.assign(EM, &[a(1)], t0).unwrap();
        r.heartbeat(ExecutionManagerId(9), t0).unwrap();
        assert!(r.sweep(t0 + Duration::from_millis(999)).is_empty());
        let mut dead = r.sweep(t0 + Duration::from_millis(1000));
        dead.sort_unstable();
        assert_eq!(dead, [EM, ExecutionManagerId(9)]);
        assert_eq!(drain(&mut rx), vec![a(1)]);
        assert_eq!(r.redispatched().get(), 1);
        // A timed-out EM may come back.
        r.heartbeat(EM, t0 + Duration::from_secs(2)).unwrap();
        assert!(r.is_registered(EM));
    }

    #[test]
    fn activity_keeps_an_em_alive() {
        let (r, mut rx) = registry();
        let t0 = Instant::now();
        r.assign(EM, &[a(1), a(2)], t0).unwrap();
        for step in 1..=8u64 {
            let t = t0 + Duration::from_millis(250 * step);
            if step % 2 == 0 {
                r.heartbeat(EM, t).unwrap();
            } else {
                r.complete(EM, &[AssignmentId(99)], t);
            }
            assert!(r.sweep(t).is_empty());
        }
        assert!(drain(&mut rx).is_empty());
        assert_eq!(r.outstanding(EM), 2);
    }

    #[test]
    fn unacknowledged_assignment_of_a_live_em_is_dispatched_again_after_its_lease() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let config = RegistryConfig {
            dead_em_cutoff_ms: 1000,
            sweep_interval_ms: 50,
            assignment_lease_ms: 600,
        };
        let r = EmRegistry::new(config, tx);
        let t0 = Instant::now();
        // The NextTasks answer carrying these was lost: the EM never acknowledges a(1).
        r.assign(EM, &[a(1), a(2)], t0).unwrap();
        r.complete(EM, &[AssignmentId(2)], t0 + Duration::from_millis(10));
        for step in 1..=5u64 {
            let t = t0 + Duration::from_millis(100 * step);
            r.heartbeat(EM, t).unwrap();
            assert!(r.sweep(t).is_empty());
        }
        assert!(drain(&mut rx).is_empty(), "the lease has not expired yet");
        let t = t0 + Duration::from_millis(600);
        r.heartbeat(EM, t).unwrap();
        assert!(r.sweep(t).is_empty(), "the EM lives");
        assert_eq!(drain(&mut rx), vec![a(1)]);
        assert_eq!(r.outstanding(EM), 0);
    }

    #[tokio::test]
    async fn sweeper_task_removes_dead_ems() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let config = RegistryConfig {
            dead_em_cutoff_ms: 100,
            sweep_interval_ms: 10,
            ..RegistryConfig::default()
        };
        let r = EmRegistry::new(config, tx);
        r.assign(EM, &[a(1)], Instant::now()).unwrap();
        let cancel = CancellationToken::new();
        let sweeper = tokio::spawn(r.clone().run_sweeper(cancel.clone()));
        let back = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("rescheduled");
        assert_eq!(back, Some(a(1)));
        assert!(!r.is_registered(EM));
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), sweeper)
            .await
            .unwrap()
            .unwrap();
    }
}
