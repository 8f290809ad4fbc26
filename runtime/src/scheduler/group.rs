//! One resource group's share of the round-robin core: its active jobs (served in rotation), its
//! pending jobs (promoted FIFO when an active job retires), and its owed commit and cleanup
//! tasks, which come first in every rotation.
//!
//! The rotation ("ring") is `[Commit, Cleanup, active job 0, active job 1, …]`; a visit to the
//! commit slot yields up to `active_jobs_per_group` commit tasks, to the cleanup slot one cleanup
//! task, to a job slot one of its tasks. An active job whose queue is empty when visited retires.

use std::collections::{HashMap, VecDeque};

use silk_tdl::{JobId, ResourceGroupId, TaskId};

/// A buffered job: its group and its queued regular task indexes, FIFO.
#[derive(Debug)]
pub(super) struct JobQueue {
    pub(super) group: ResourceGroupId,
    pub(super) tasks: VecDeque<u64>,
}

/// Per-group state.
#[derive(Debug, Default)]
pub(super) struct Group {
    pub(super) active: Vec<JobId>,
    pub(super) pending: VecDeque<JobId>,
    pub(super) commits: VecDeque<JobId>,
    pub(super) cleanups: VecDeque<JobId>,
    /// Position in the ring: 0 commit, 1 cleanup, `2 + i` active job `i`.
    cursor: usize,
    /// Buffered items of this group (commits, cleanups and regular tasks).
    pub(super) queued: usize,
}

impl Group {
    fn ring_len(&self) -> usize {
        2 + self.active.len()
    }

    /// Adds a newly seen job: active if there is room, pending otherwise.
    pub(super) fn admit(&mut self, job: JobId, capacity: usize) {
        if self.active.len() < capacity.max(1) {
            self.active.push(job);
        } else {
            self.pending.push_back(job);
        }
    }

    /// Removes a job from the active or pending set; a freed active slot is backfilled.
    pub(super) fn remove(&mut self, job: JobId) {
        if let Some(i) = self.active.iter().position(|&j| j == job) {
            self.retire_at(i);
        } else {
            self.pending.retain(|&j| j != job);
        }
    }

    fn retire_at(&mut self, i: usize) {
        self.active.remove(i);
        let pos = 2 + i;
        if self.cursor > pos {
            self.cursor -= 1;
        }
        if let Some(next) = self.pending.pop_front() {
            self.active.push(next);
        }
        if self.cursor >= self.ring_len() {
            self.cursor = 0;
        }
    }

    /// One visit: yields up to `max` items (≥ 1 when `queued > 0` and `max > 0`). Jobs retired on
    /// the way are removed from `jobs`.
    pub(super) fn step(
        &mut self,
        jobs: &mut HashMap<JobId, JobQueue>,
        commit_burst: usize,
        max: usize,
        out: &mut Vec<(JobId, TaskId)>,
    ) {
        if max == 0 {
            return;
        }
        // Every visit either yields, or retires a job; more visits than that mean `queued` is out
        // of step with the queues, which must not hang the core.
        let mut budget = 2 * (self.ring_len() + self.pending.len()) + 2;
        while self.queued > 0 && budget > 0 {
            budget -= 1;
            let pos = self.cursor;
            let mut yielded = 0;
            match pos {
                0 => {
                    while yielded < commit_burst.max(1).min(max) {
                        let Some(job) = self.commits.pop_front() else {
                            break;
                        };
                        out.push((job, TaskId::Commit));
                        yielded += 1;
                    }
                }
                1 => {
                    if let Some(job) = self.cleanups.pop_front() {
                        out.push((job, TaskId::Cleanup));
                        yielded = 1;
                    }
                }
                _ => {
                    let job = self.active[pos - 2];
                    let next = jobs.get_mut(&job).and_then(|q| q.tasks.pop_front());
                    if let Some(index) = next {
                        out.push((job, TaskId::Index(index)));
                        yielded = 1;
                    } else {
                        jobs.remove(&job);
                        self.retire_at(pos - 2);
                        continue;
                    }
                }
            }
            self.cursor = (pos + 1) % self.ring_len();
            if yielded > 0 {
                self.queued -= yielded;
                return;
            }
        }
        debug_assert!(self.queued == 0, "group queue count out of step");
    }
}
