//! What the scheduler hands an execution manager: an [`Assignment`] — one task of one job, under
//! the storage session it was scheduled in, with an [`AssignmentId`] unique for the scheduler's
//! lifetime (a re-dispatched task gets a new one). [`IdIssuer`] mints the ids.

use silk_tdl::{JobId, ResourceGroupId, TaskId, id_type};

use crate::storage::ReadyTask;
use silk_core::ids::SessionId;

id_type!(
    /// One hand-out of a task by one scheduler. Never reused, also not across storage sessions.
    AssignmentId
);

/// One task handed to an execution manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Assignment {
    /// Unique per hand-out.
    pub id: AssignmentId,
    /// The storage session the task was scheduled in.
    pub session: SessionId,
    /// The job's resource group.
    pub group: ResourceGroupId,
    /// The job.
    pub job: JobId,
    /// The task.
    pub task: TaskId,
}

impl Assignment {
    /// The lane entry this assignment was made from.
    #[must_use]
    pub fn entry(&self) -> ReadyTask {
        ReadyTask {
            group: self.group,
            job: self.job,
            task: self.task,
        }
    }
}

/// Mints increasing assignment ids.
#[derive(Debug, Default)]
pub struct IdIssuer {
    next: u64,
}

impl IdIssuer {
    /// Starts at `first`.
    #[must_use]
    pub fn starting_at(first: u64) -> Self {
        Self { next: first }
    }

    /// The next id (wraps around only after 2^64 hand-outs).
    pub fn next_id(&mut self) -> AssignmentId {
        let id = AssignmentId(self.next);
        self.next = self.next.wrapping_add(1);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase() {
        let mut issuer = IdIssuer::starting_at(7);
        assert_eq!(issuer.next_id(), AssignmentId(7));
        assert_eq!(issuer.next_id(), AssignmentId(8));
    }
}
