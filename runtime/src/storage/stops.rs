//! Stopping the work of jobs that ended early. When a job is cancelled or fails while some of
//! its tasks run, those instances are no longer wanted: each is queued for its execution
//! manager, which learns of it in the answer to its next heartbeat and stops the task at once
//! (its slot is free for other work instead of running out the task's hard timeout). The
//! stopped task's report then comes back stale and changes nothing.

use std::collections::HashMap;

use silk_tdl::{JobId, TaskInstanceId};

use super::db::Db;
use super::lock;
use super::service::Storage;
use silk_core::JobState;
use silk_core::ids::ExecutionManagerId;

/// Most instances one heartbeat answer names; the rest follow in the next answers.
pub const MAX_STOPS_PER_HEARTBEAT: usize = 4096;

/// Instances to stop, by the execution manager running them.
pub(super) type Stops = HashMap<ExecutionManagerId, Vec<TaskInstanceId>>;

/// Whether a job moving to `to` leaves its running regular tasks unwanted.
pub(super) fn ends_work(to: JobState) -> bool {
    matches!(
        to,
        JobState::CleanupReady | JobState::Cancelled | JobState::Failed
    )
}

impl<D: Db + Clone> Storage<D> {
    /// Queues a stop for every live instance of `job` (called when it ended early).
    pub(super) fn stop_instances_of(&self, job: JobId) {
        let instances = lock(&self.shared.instances);
        let mut stops = lock(&self.shared.stops);
        let mut count = 0_usize;
        for (id, entry) in instances.iter().filter(|(_, e)| e.job == job) {
            stops.entry(entry.em).or_default().push(*id);
            count += 1;
        }
        if count > 0 {
            tracing::info!(
                job_id = job.0,
                instances = count,
                "stopping the running tasks of an ended job"
            );
        }
    }

    /// The instances `em` should stop, taken from the queue (at most
    /// [`MAX_STOPS_PER_HEARTBEAT`]).
    pub(super) fn take_stops(&self, em: ExecutionManagerId) -> Vec<TaskInstanceId> {
        let mut stops = lock(&self.shared.stops);
        let Some(queued) = stops.get_mut(&em) else {
            return Vec::new();
        };
        if queued.len() <= MAX_STOPS_PER_HEARTBEAT {
            return stops.remove(&em).unwrap_or_default();
        }
        queued.drain(..MAX_STOPS_PER_HEARTBEAT).collect()
    }

    /// Drops the stops queued for execution managers declared dead (their tasks are gone).
    pub(super) fn forget_stops_of(&self, dead: &[ExecutionManagerId]) {
        let mut stops = lock(&self.shared.stops);
        for em in dead {
            stops.remove(em);
        }
    }
}
