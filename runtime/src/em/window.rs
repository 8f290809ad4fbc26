//! How many assignments an EM holds at once (running plus queued for a slot). Each slot runs one
//! task at a time; for short tasks the round trips to the scheduler and storage would leave slots
//! idle between tasks, so the EM also queues up to [`HORIZON`] of work per slot, sized from the
//! pool's recent mean task time and capped by `max_prefetched_tasks`. Long tasks get no queue
//! (a queued task's soft timeout already runs), trivial ones a deep one.

use std::time::Duration;

/// Work queued per slot, beyond the task it runs.
pub const HORIZON: Duration = Duration::from_millis(2);

/// Assignments to hold: one per slot, plus what fills [`HORIZON`] per slot at the mean task
/// time (none before the first task finished), at most `max_queued` more.
#[must_use]
pub fn target(slots: usize, max_queued: usize, mean_task_time: Option<Duration>) -> usize {
    let queued = mean_task_time.map_or(0, |mean| {
        let per_slot = HORIZON.as_nanos() / mean.as_nanos().max(1);
        usize::try_from(per_slot)
            .unwrap_or(usize::MAX)
            .saturating_mul(slots)
            .min(max_queued)
    });
    slots + queued
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_depth_follows_task_time() {
        assert_eq!(target(2, 256, None), 2, "nothing queued before a task ran");
        assert_eq!(
            target(2, 256, Some(Duration::from_secs(1))),
            2,
            "long tasks: none"
        );
        assert_eq!(target(2, 256, Some(Duration::from_micros(500))), 2 + 8);
        assert_eq!(
            target(2, 256, Some(Duration::from_nanos(100))),
            2 + 256,
            "capped"
        );
        assert_eq!(
            target(4, 0, Some(Duration::from_nanos(100))),
            4,
            "prefetch off"
        );
        assert_eq!(target(1, 256, Some(Duration::ZERO)), 1 + 256);
    }
}
