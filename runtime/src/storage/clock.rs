//! The storage service's two clocks. Wall-clock milliseconds are for what is persisted or shown
//! (created and ended times, retention). Everything that judges liveness within a session — EM
//! heartbeats and the dead-EM cutoff, soft timeouts, the lost-report expiry — runs on the
//! *session timeline*: the wall clock read once when the service started plus monotonic time
//! since, so a wall-clock step (NTP, an operator) neither kills an execution manager nor expires
//! an instance. Heartbeat times in the database are on the session timeline too (close to wall
//! time, but they never jump).
//!
//! Tests inject steps with [`Clock::step_wall`] and let time pass with [`Clock::advance`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use super::now_ms;

/// The clocks of one storage service.
#[derive(Debug)]
pub struct Clock {
    origin: Instant,
    origin_wall_ms: i64,
    /// Added to the wall clock (tests: a clock step).
    wall_step_ms: AtomicI64,
    /// Added to both clocks (tests: time passing without waiting).
    advanced_ms: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            origin_wall_ms: now_ms(),
            wall_step_ms: AtomicI64::new(0),
            advanced_ms: AtomicI64::new(0),
        }
    }
}

impl Clock {
    /// Milliseconds since the Unix epoch, as the wall clock says (plus injected steps).
    #[must_use]
    pub fn wall_ms(&self) -> i64 {
        now_ms()
            .saturating_add(self.wall_step_ms.load(Ordering::Relaxed))
            .saturating_add(self.advanced_ms.load(Ordering::Relaxed))
    }

    /// Milliseconds on the session timeline: the wall clock when this clock was made plus
    /// monotonic time since. Never jumps with the wall clock.
    #[must_use]
    pub fn session_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.origin_wall_ms
            .saturating_add(elapsed)
            .saturating_add(self.advanced_ms.load(Ordering::Relaxed))
    }

    /// Steps the wall clock by `ms` (negative: back); the session timeline does not move.
    pub fn step_wall(&self, ms: i64) {
        self.wall_step_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Lets `ms` pass on both clocks at once.
    pub fn advance(&self, ms: i64) {
        self.advanced_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_step_moves_only_the_wall_clock() {
        let clock = Clock::default();
        let (wall, session) = (clock.wall_ms(), clock.session_ms());
        clock.step_wall(3_600_000);
        assert!(clock.wall_ms() >= wall + 3_600_000);
        assert!(clock.session_ms() < session + 60_000);
        clock.step_wall(-7_200_000);
        assert!(clock.session_ms() >= session, "never goes back");
        clock.advance(5_000);
        assert!(clock.session_ms() >= session + 5_000);
    }
}
