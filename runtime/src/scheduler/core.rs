//! The round-robin scheduler core: a synchronous state machine (no I/O, no clock of its own) that
//! ingests lane entries from storage and rescheduled assignments, and decides which assignments
//! go out next. The async loop around it is `runner.rs`.
//!
//! Fairness is two-level: a rotation over resource groups with buffered work, and inside each
//! group a rotation over its bounded set of active jobs (see `group.rs`), commit and cleanup tasks
//! first. Entries are deduplicated against everything buffered, so a task storage delivers twice
//! reaches the dispatch queue once. A job whose commit or cleanup task arrives is *finalizing*:
//! its buffered regular tasks are dropped and later regular entries ignored (until the gate
//! expires). A newer storage session clears everything.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use silk_tdl::{JobId, ResourceGroupId, TaskId};

use super::assignment::{Assignment, IdIssuer};
use super::config::CoreConfig;
use super::group::{Group, JobQueue};
use crate::storage::{LaneKind, ReadyTask};
use silk_core::ids::SessionId;

/// How a polled session compares with the core's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionChange {
    /// The same session.
    Same,
    /// A newer session: state was cleared; the dispatch queue must be bumped.
    Newer,
    /// An older session: its entries must be dropped.
    Older,
}

/// The round-robin core.
#[derive(Debug)]
pub struct RoundRobinCore {
    config: CoreConfig,
    session: SessionId,
    issuer: IdIssuer,
    /// Every buffered `(job, task)`, for deduplication.
    buffered: HashSet<(JobId, TaskId)>,
    /// Buffered entries per lane.
    lane_counts: [usize; 3],
    jobs: HashMap<JobId, JobQueue>,
    groups: HashMap<ResourceGroupId, Group>,
    /// Groups with buffered work, in rotation order.
    ring: VecDeque<ResourceGroupId>,
    finalizing: HashMap<JobId, Instant>,
    finalizing_order: VecDeque<(Instant, JobId)>,
}

fn lane_index(kind: LaneKind) -> usize {
    match kind {
        LaneKind::Ready => 0,
        LaneKind::Commit => 1,
        LaneKind::Cleanup => 2,
    }
}

impl RoundRobinCore {
    /// An empty core in session 0.
    #[must_use]
    pub fn new(config: CoreConfig) -> Self {
        Self::with_issuer(config, IdIssuer::default())
    }

    /// An empty core minting assignment ids from `issuer`.
    #[must_use]
    pub fn with_issuer(config: CoreConfig, issuer: IdIssuer) -> Self {
        Self {
            config,
            session: SessionId(0),
            issuer,
            buffered: HashSet::new(),
            lane_counts: [0; 3],
            jobs: HashMap::new(),
            groups: HashMap::new(),
            ring: VecDeque::new(),
            finalizing: HashMap::new(),
            finalizing_order: VecDeque::new(),
        }
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// The session in force.
    #[must_use]
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Buffered entries (all lanes).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buffered.len()
    }

    /// Whether `(job, task)` is buffered.
    #[must_use]
    pub fn is_buffered(&self, job: JobId, task: TaskId) -> bool {
        self.buffered.contains(&(job, task))
    }

    /// Jobs in rotation in `group`, in ring order.
    #[must_use]
    pub fn active_jobs(&self, group: ResourceGroupId) -> Vec<JobId> {
        self.groups
            .get(&group)
            .map(|g| g.active.clone())
            .unwrap_or_default()
    }

    /// Jobs waiting for an active slot in `group`, FIFO.
    #[must_use]
    pub fn pending_jobs(&self, group: ResourceGroupId) -> Vec<JobId> {
        self.groups
            .get(&group)
            .map(|g| g.pending.iter().copied().collect())
            .unwrap_or_default()
    }

    /// How many more entries of `kind` to ask storage for.
    #[must_use]
    pub fn room(&self, kind: LaneKind) -> usize {
        let cap = match kind {
            LaneKind::Ready => self.config.ready_task_capacity,
            LaneKind::Commit => self.config.commit_task_capacity,
            LaneKind::Cleanup => self.config.cleanup_task_capacity,
        };
        cap.saturating_sub(self.lane_counts[lane_index(kind)])
    }

    /// Compares a polled session with the core's; a newer one clears all state.
    pub fn observe_session(&mut self, session: SessionId) -> SessionChange {
        match session.cmp(&self.session) {
            std::cmp::Ordering::Equal => SessionChange::Same,
            std::cmp::Ordering::Less => SessionChange::Older,
            std::cmp::Ordering::Greater => {
                tracing::info!(old = %self.session, new = %session, "storage session changed; scheduler state cleared");
                let issuer = std::mem::take(&mut self.issuer);
                *self = Self::with_issuer(self.config.clone(), issuer);
                self.session = session;
                SessionChange::Newer
            }
        }
    }

    /// Ingests lane entries of the current session (commit and cleanup before ready entries, as
    /// finalization must win over regular tasks polled together with it). `now` stamps
    /// finalizing gates.
    pub fn ingest(&mut self, entries: &[ReadyTask], now: Instant) {
        for kind in [LaneKind::Commit, LaneKind::Cleanup, LaneKind::Ready] {
            for e in entries.iter().filter(|e| LaneKind::of(e.task) == kind) {
                self.ingest_one(*e, now);
            }
        }
    }

    /// Takes back an assignment an execution manager lost. Returns whether it was buffered
    /// again (false for another session, a finalizing job or a duplicate).
    pub fn reschedule(&mut self, a: &Assignment, now: Instant) -> bool {
        if a.session != self.session {
            tracing::debug!(job_id = %a.job, task = %a.task, session = %a.session, "stale reschedule dropped");
            return false;
        }
        self.ingest_one(a.entry(), now)
    }

    fn ingest_one(&mut self, e: ReadyTask, now: Instant) -> bool {
        let kind = LaneKind::of(e.task);
        if kind == LaneKind::Ready && self.finalizing.contains_key(&e.job) {
            return false;
        }
        if !self.buffered.insert((e.job, e.task)) {
            return false;
        }
        self.lane_counts[lane_index(kind)] += 1;
        let group = self.group_mut(e.group);
        group.queued += 1;
        match e.task {
            TaskId::Commit => group.commits.push_back(e.job),
            TaskId::Cleanup => group.cleanups.push_back(e.job),
            TaskId::Index(index) => {
                if let Some(q) = self.jobs.get_mut(&e.job) {
                    q.tasks.push_back(index);
                } else {
                    let capacity = self.config.active_jobs_per_group;
                    self.group_mut(e.group).admit(e.job, capacity);
                    let queue = JobQueue {
                        group: e.group,
                        tasks: VecDeque::from([index]),
                    };
                    self.jobs.insert(e.job, queue);
                }
                return true;
            }
        }
        self.finalize(e.job, now);
        true
    }

    fn group_mut(&mut self, id: ResourceGroupId) -> &mut Group {
        self.groups.entry(id).or_insert_with(|| {
            self.ring.push_back(id);
            Group::default()
        })
    }

    /// Marks a job finalizing: drops its buffered regular tasks and its active/pending slot.
    fn finalize(&mut self, job: JobId, now: Instant) {
        self.finalizing.insert(job, now);
        self.finalizing_order.push_back((now, job));
        let Some(queue) = self.jobs.remove(&job) else {
            return;
        };
        let group_id = queue.group;
        for index in &queue.tasks {
            self.buffered.remove(&(job, TaskId::Index(*index)));
        }
        self.lane_counts[0] -= queue.tasks.len();
        if let Some(group) = self.groups.get_mut(&group_id) {
            group.queued -= queue.tasks.len();
            group.remove(job);
        }
    }

    /// Lifts finalizing gates older than the configured expiry.
    pub fn expire_finalizing(&mut self, now: Instant) {
        let expiry = self.config.finalizing_expiry();
        while let Some(&(at, job)) = self.finalizing_order.front() {
            if now.saturating_duration_since(at) < expiry {
                break;
            }
            self.finalizing_order.pop_front();
            if self.finalizing.get(&job) == Some(&at) {
                self.finalizing.remove(&job);
            }
        }
    }

    /// Decides up to `max` assignments, in round-robin order.
    pub fn decide(&mut self, max: usize) -> Vec<Assignment> {
        let mut picked: Vec<(JobId, TaskId)> = Vec::new();
        let mut picked_groups: Vec<ResourceGroupId> = Vec::new();
        let burst = self.config.active_jobs_per_group;
        while picked.len() < max {
            let Some(group_id) = self.ring.pop_front() else {
                break;
            };
            let group = self.groups.get_mut(&group_id).expect("ring group exists");
            group.step(&mut self.jobs, burst, max - picked.len(), &mut picked);
            picked_groups.resize(picked.len(), group_id);
            if group.queued > 0 {
                self.ring.push_back(group_id);
            } else {
                // Nothing buffered: its remaining active jobs are empty; forget them.
                let group = self.groups.remove(&group_id).expect("ring group exists");
                for job in group.active.iter().chain(group.pending.iter()) {
                    self.jobs.remove(job);
                }
            }
        }
        picked
            .into_iter()
            .zip(picked_groups)
            .map(|((job, task), group)| self.assign(group, job, task))
            .collect()
    }

    fn assign(&mut self, group: ResourceGroupId, job: JobId, task: TaskId) -> Assignment {
        self.buffered.remove(&(job, task));
        self.lane_counts[lane_index(LaneKind::of(task))] -= 1;
        Assignment {
            id: self.issuer.next_id(),
            session: self.session,
            group,
            job,
            task,
        }
    }
}
