//! The state of one task of a job, its transition table ([`TaskState::can_become`]), and the life
//! of a task instance from registration to its end.
//!
//! A task's state lives in its job's control block (`job::JobControl`, in memory; completions
//! are persisted separately) and changes only through `JobControl::set_task`, which
//! `debug_assert!`s every move against the table below.
//!
//! # The life of an instance
//!
//! * **Registered.** An execution manager (EM) asks for the task the scheduler assigned it:
//!   `Storage::register_instance` / `Storage::register_assigned` (`instances.rs`) call
//!   `JobControl::register`, which admits one more instance (`TaskControl::admit`: the task is
//!   `Ready` or `Running`, under `max_instances`) and moves the task `Ready → Running` (or keeps
//!   it `Running` for a second instance). A registration retried after a lost answer gets the
//!   same instance again (`JobControl::registered_again`).
//! * **Released when the registration response was full.** An instance registered a moment ago
//!   that had no room in its registration response is taken back by `Storage::release_instance`
//!   → `JobControl::force_remove`: no retry is spent and, once the task has no instance left,
//!   it moves `Running → Ready` and is queued again. Storage that cannot hand an instance its
//!   inputs drops it the same way.
//! * **Running on an EM.** The EM runs it and reports; storage tracks the live instance
//!   (`InstanceEntry`) for liveness and soft timeouts.
//! * **Success persisted.** `Storage::report_success` checks the outputs
//!   (`JobControl::check_success` / `declared_outputs`), marks the task `Running → Succeeded`
//!   (`JobControl::succeed`), persists the completion, then releases the children
//!   (`JobControl::release_children`: each child whose parents all succeeded moves
//!   `Pending → Ready`). If the completion is not stored while storage stops,
//!   `JobControl::revert_success` moves the task `Succeeded → Ready` to run again.
//! * **Failure retried.** `Storage::report_failure` → `JobControl::fail` spends a retry: the task
//!   moves `Running → Ready` once it has no other instance, or `Running → Failed` when no retry
//!   is left (or the failure is not worth retrying), and the job fails.
//! * **Lost with its EM.** `Storage::sweep_liveness` (`liveness.rs`) declares an EM silent past
//!   the cutoff dead; each of its instances is lost (`Storage::lose_instance` →
//!   `JobControl::lose`): `Running → Ready` to run again, or `Running → Failed` once losses past
//!   `free_instance_losses` spent the task's retries.
//! * **Report overdue.** The same sweep takes an instance whose report is overdue (hard timeout
//!   plus `lost_report_grace_ms`) as lost, through the same `JobControl::lose`.
//! * **Soft timeout: a second instance.** The same sweep queues the task of an instance past its
//!   soft timeout once more if `JobControl::wants_more`; the second registration keeps the task
//!   `Running → Running` (only if `max_instances` allows it). The first report to arrive wins.
//! * **Stopped when its job ended.** When the job leaves `Running` (cancelled, failed, or on to
//!   its commit), `JobControl::set_state` moves every unfinished task to `Cancelled` and drops
//!   its instances, and `Storage::stop_instances_of` (`stops.rs`) tells their EMs to stop them.
//!   A commit or cleanup task moves `Pending → Ready` when its job enters its phase, and to
//!   `Cancelled` when the job leaves that phase first.
//!
//! Recovery after a restart rebuilds a job from the database: `JobControl::restore_completion`
//! and `JobControl::mark_tasks_done` move stored tasks `Pending`/`Ready → Succeeded`, and
//! `JobControl::settle_ready` moves the tasks whose parents all succeeded `Pending → Ready`.
//!
//! # Transition table
//!
//! | from \ to   | Pending | Ready | Running | Succeeded | Failed | Cancelled |
//! |-------------|---------|-------|---------|-----------|--------|-----------|
//! | `Pending`   |         | yes   |         | yes (recovery) |   | yes       |
//! | `Ready`     |         |       | yes     | yes (recovery) |   | yes       |
//! | `Running`   |         | yes   | yes (another instance) | yes | yes | yes |
//! | `Succeeded` |         | yes (completion not stored) | | |    |           |
//! | `Failed`    |         |       |         |           |        |           |
//! | `Cancelled` |         |       |         |           |        |           |
//!
//! Nothing moves back to `Pending`; `Failed` and `Cancelled` never change again. `Succeeded`
//! is terminal too, except for the one move back to `Ready` when its completion was not stored.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state of one task of a job (kept in memory; completions are persisted separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Waiting for its parents.
    Pending,
    /// May be scheduled.
    Ready,
    /// At least one instance is registered.
    Running,
    /// Finished with outputs.
    Succeeded,
    /// Out of retries.
    Failed,
    /// Its job was cancelled (or failed) before it finished.
    Cancelled,
}

impl TaskState {
    /// Every state, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Ready,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Whether the task is finished one way or another.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// Whether `self → to` is a move of the table in the module docs.
    #[must_use]
    pub fn can_become(self, to: Self) -> bool {
        use TaskState::{Cancelled, Failed, Pending, Ready, Running, Succeeded};
        match to {
            Pending => false,
            // Parents done (or the job entered the termination task's phase); a retry; a
            // completion that was not stored.
            Ready => matches!(self, Pending | Running | Succeeded),
            // Registered; another instance of a running task.
            Running => matches!(self, Ready | Running),
            // Reported (from `Running`), or restored by recovery.
            Succeeded => matches!(self, Pending | Ready | Running),
            Failed => self == Running,
            Cancelled => matches!(self, Pending | Ready | Running),
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::TaskState::{self, *};

    #[test]
    fn transition_table() {
        let allowed = [
            (Pending, Ready),
            (Pending, Succeeded),
            (Pending, Cancelled),
            (Ready, Running),
            (Ready, Succeeded),
            (Ready, Cancelled),
            (Running, Ready),
            (Running, Running),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Cancelled),
            (Succeeded, Ready),
        ];
        for from in TaskState::ALL {
            for to in TaskState::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn failed_and_cancelled_are_final() {
        for from in [Failed, Cancelled] {
            assert!(TaskState::ALL.into_iter().all(|to| !from.can_become(to)));
        }
        assert!(
            TaskState::ALL
                .into_iter()
                .all(|from| !from.can_become(Pending))
        );
    }
}
