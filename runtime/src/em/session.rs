//! The EM's view of storage's session: the newest session id seen (registration, heartbeats,
//! assignments). Shared by the liveness actor and the runtime loop; only moves forward.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use silk_core::ids::SessionId;

/// A shared, forward-only session id.
#[derive(Debug, Clone, Default)]
pub struct SessionTracker(Arc<AtomicU64>);

impl SessionTracker {
    /// A tracker at `session`.
    #[must_use]
    pub fn new(session: SessionId) -> Self {
        Self(Arc::new(AtomicU64::new(session.0)))
    }

    /// The newest session seen.
    #[must_use]
    pub fn get(&self) -> SessionId {
        SessionId(self.0.load(Ordering::Acquire))
    }

    /// Moves to `session` if it is newer; returns whether it moved.
    pub fn advance(&self, session: SessionId) -> bool {
        self.0.fetch_max(session.0, Ordering::AcqRel) < session.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_moves_forward() {
        let t = SessionTracker::new(SessionId(5));
        assert!(t.advance(SessionId(7)));
        assert!(!t.advance(SessionId(6)));
        assert!(!t.advance(SessionId(7)));
        assert_eq!(t.get(), SessionId(7));
    }
}
