//! Storage's side of its metrics ([`crate::metrics::storage`]): registering them, and the
//! snapshot of storage's state the gauges read at each scrape.

use std::collections::HashMap;
use std::sync::Arc;

use super::db::Db;
use super::lanes::LaneKind;
use super::service::{Shared, Storage};
use crate::metrics::Metrics;
use crate::metrics::storage::Snapshot;
use silk_core::JobState;

impl<D: Db + Clone> Storage<D> {
    /// Exposes storage's metrics in `metrics` (see [`crate::metrics::storage`]). The gauges hold
    /// no reference that keeps storage alive: once it is dropped they read as empty.
    pub fn register_metrics(&self, metrics: &Metrics) {
        let weak = Arc::downgrade(&self.shared);
        metrics.register(|registry| {
            crate::metrics::storage::register(
                registry,
                &self.shared.counters,
                self.shared.db.stats(),
                move || weak.upgrade().map(|s| snapshot(&s)).unwrap_or_default(),
            );
        });
    }
}

/// What the metrics gauges read at a scrape: one pass over the cached jobs (their published
/// progress, no job lock) and the lanes' lengths.
fn snapshot<D>(shared: &Shared<D>) -> Snapshot {
    let mut states = [0_u64; JobState::ALL.len()];
    let mut by_group: HashMap<u64, u64> = HashMap::new();
    {
        let jobs = shared
            .jobs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for job in jobs.values() {
            let progress = *job.progress.borrow();
            let Some(state) = progress.state else {
                continue;
            };
            if let Some(i) = JobState::ALL.iter().position(|s| *s == state) {
                states[i] += 1;
            }
            if state == JobState::Running && progress.ready > 0 {
                *by_group.entry(job.group.0).or_default() += progress.ready;
            }
        }
    }
    let lane = |kind| shared.lanes.len(kind) as u64;
    Snapshot {
        jobs_by_state: JobState::ALL
            .iter()
            .zip(states)
            .map(|(s, n)| (s.as_str(), n))
            .collect(),
        lanes: vec![
            ("ready", lane(LaneKind::Ready)),
            ("commit", lane(LaneKind::Commit)),
            ("cleanup", lane(LaneKind::Cleanup)),
        ],
        ready_by_group: by_group.into_iter().collect(),
        memory: vec![
            ("jobs", shared.job_memory.used()),
            ("outputs", shared.budget.used()),
        ],
    }
}
