//! Job states and the job state machine, and their wire form.
//!
//! Jobs: `Ready → Running → (CommitReady →) Succeeded`; cancel → `(CleanupReady →) Cancelled`;
//! failure → `Failed`. `Succeeded`, `Failed` and `Cancelled` are terminal and never change.
//! Unlike upstream, cancelling a `Ready` job that has a cleanup task is allowed
//! (`Ready → CleanupReady`), and so is cancelling a `CommitReady` job without one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use silk_proto::storage as pb;

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    /// Registered, not started.
    Ready,
    /// Started; regular tasks are running.
    Running,
    /// Every task succeeded and the outputs are stored; the commit task is to run.
    CommitReady,
    /// Cancelled; the cleanup task is to run.
    CleanupReady,
    /// Finished: outputs available.
    Succeeded,
    /// A task ran out of retries: error available.
    Failed,
    /// Cancelled (and cleaned up).
    Cancelled,
}

impl JobState {
    /// Every state, in declaration order.
    pub const ALL: [Self; 7] = [
        Self::Ready,
        Self::Running,
        Self::CommitReady,
        Self::CleanupReady,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The state's name, as stored in the database.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Running => "Running",
            Self::CommitReady => "CommitReady",
            Self::CleanupReady => "CleanupReady",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
        }
    }

    /// Whether the state never changes again.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// Whether `self → to` is a transition of the state machine.
    #[must_use]
    pub fn can_become(self, to: Self) -> bool {
        use JobState::{Cancelled, CleanupReady, CommitReady, Failed, Ready, Running, Succeeded};
        match to {
            Ready => false,
            Running => self == Ready,
            CommitReady => self == Running,
            CleanupReady => matches!(self, Ready | Running | CommitReady),
            Succeeded => matches!(self, Running | CommitReady),
            Failed => matches!(self, Running | CommitReady | CleanupReady),
            Cancelled => matches!(self, Ready | Running | CommitReady | CleanupReady),
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JobState {
    /// The wire form.
    #[must_use]
    pub fn to_pb(self) -> pb::JobState {
        match self {
            Self::Ready => pb::JobState::Ready,
            Self::Running => pb::JobState::Running,
            Self::CommitReady => pb::JobState::CommitReady,
            Self::CleanupReady => pb::JobState::CleanupReady,
            Self::Succeeded => pb::JobState::Succeeded,
            Self::Failed => pb::JobState::Failed,
            Self::Cancelled => pb::JobState::Cancelled,
        }
    }

    /// The state of a wire state (`None` for unspecified).
    #[must_use]
    pub fn from_pb(s: pb::JobState) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.to_pb() == s)
    }
}

/// A string that names no [`JobState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownJobState(pub String);

impl FromStr for JobState {
    type Err = UnknownJobState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownJobState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::JobState::{self, *};

    #[test]
    fn transition_table() {
        let allowed = [
            (Ready, Running),
            (Running, CommitReady),
            (Ready, CleanupReady),
            (Running, CleanupReady),
            (CommitReady, CleanupReady),
            (Running, Succeeded),
            (CommitReady, Succeeded),
            (Running, Failed),
            (CommitReady, Failed),
            (CleanupReady, Failed),
            (Ready, Cancelled),
            (Running, Cancelled),
            (CommitReady, Cancelled),
            (CleanupReady, Cancelled),
        ];
        for from in JobState::ALL {
            for to in JobState::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn terminal_states_are_final() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert!(JobState::ALL.into_iter().all(|to| !from.can_become(to)));
        }
    }

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
        }
        assert!("Running ".parse::<JobState>().is_err());
    }
}
