//! How an shm endpoint waits: adaptive spin, then bounded futex parks.
//!
//! A waiter that parks pays a kernel wake-up (about 5 µs when both processes share a vCPU,
//! 30–55 µs when the wake crosses to an idle vCPU on this box); one that is still spinning when
//! the answer lands pays about 0.1 µs. A spin window *shorter* than the wait is the worst of both
//! (perf-anchors §3.3), so the window follows the waits actually seen:
//!
//! * spin for about twice the EWMA of recent waits (never less than [`SPIN_FLOOR`]); if the EWMA is
//!   above [`SPIN_CAP`] the wait is long enough that spinning would mostly burn a CPU, so park
//!   at once;
//! * spin only when a CPU is spare: in the EM, spinners plus executors busy with a task must stay
//!   below the CPU count (process-wide counters in this module); an executor spins while idle only
//!   when the EM says so in the segment's hint word;
//! * back off when spinning does not pay: a window that runs out before the answer arrives (the
//!   wait was longer than expected, or the spinner kept the peer off a CPU another process is
//!   using — load this process cannot see) stops spinning for the next 2, 4, … 1024 waits, and a
//!   window that catches its answer resets the back-off;
//! * [`WaitMode::Park`] never spins (for busy machines, and to measure the parked path).
//!
//! Parks are bounded (by the slice a [`Waiter`] is given), so a waiter re-checks its deadline and
//! whether its peer is still alive at least every slice; the process's alarm thread ends them
//! (`alarm.rs`), so a park costs no kernel timer.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::shm::ring::{Idle, Wait};
use crate::transport::TransportError;

/// Shortest spin window, when spinning at all: well under one parked wake-up.
pub const SPIN_FLOOR: Duration = Duration::from_micros(20);
/// Longest spin window; waits longer than this on average are parked at once.
pub const SPIN_CAP: Duration = Duration::from_micros(400);

/// Whether a waiting endpoint may spin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitMode {
    /// Spin within the adaptive window when a CPU is spare, then park (the default).
    #[default]
    Adaptive,
    /// Always park at once.
    Park,
}

impl WaitMode {
    /// `"adaptive"` or `"park"`, as on the executor's command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adaptive => "adaptive",
            Self::Park => "park",
        }
    }
}

impl std::str::FromStr for WaitMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "adaptive" => Ok(Self::Adaptive),
            "park" => Ok(Self::Park),
            _ => Err(format!("unknown wait mode {s:?}: use adaptive or park")),
        }
    }
}

/// EM endpoints currently spinning.
static SPINNING: AtomicUsize = AtomicUsize::new(0);
/// EM endpoints with a request in flight (their executor is, or is about to be, busy).
pub(crate) static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Live EM endpoints (executors that may want to spin while idle).
pub(crate) static LIVE: AtomicUsize = AtomicUsize::new(0);

/// CPUs this process may run on.
pub(crate) fn cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Whether an EM waiter may spin now: its executor is busy, so spinners plus busy executors must
/// leave no CPU short.
fn em_cpu_spare() -> bool {
    SPINNING.load(Ordering::Relaxed) + IN_FLIGHT.load(Ordering::Relaxed) < cpus()
}

/// The adaptive spin window of one endpoint (an EWMA of its recent waits).
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    mode: WaitMode,
    ewma_ns: u64,
    /// Consecutive spin windows that ran out (capped).
    misses: u32,
    /// Waits left before spinning is tried again.
    backoff: u32,
}

impl Pacer {
    pub(crate) fn new(mode: WaitMode) -> Self {
        Self {
            mode,
            ewma_ns: 0,
            misses: 0,
            backoff: 0,
        }
    }

    pub(crate) fn mode(&self) -> WaitMode {
        self.mode
    }

    /// The spin window for the next wait (zero: park at once).
    pub(crate) fn window(&self) -> Duration {
        let ewma = Duration::from_nanos(self.ewma_ns);
        if self.mode == WaitMode::Park || self.backoff > 0 || ewma > SPIN_CAP {
            return Duration::ZERO;
        }
        (2 * ewma).clamp(SPIN_FLOOR, SPIN_CAP)
    }

    /// Records how long a wait took (weight 1/8 for the new sample) and whether its spin window
    /// ran out before the answer came (`Waiter::spun_out`).
    pub(crate) fn record(&mut self, waited: Duration, spun_out: bool) {
        if spun_out {
            self.misses = (self.misses + 1).min(10);
            self.backoff = 1 << self.misses;
        } else if self.backoff > 0 {
            self.backoff -= 1;
        } else {
            self.misses = 0;
        }
        let ns = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.ewma_ns = if self.ewma_ns == 0 {
            ns
        } else {
            self.ewma_ns - self.ewma_ns / 8 + ns / 8
        };
    }
}

/// One blocking wait: spin until `spin_until`, then park in slices, checking the deadline and the
/// peer between slices.
pub(crate) struct Waiter<'a> {
    spin_until: Option<Instant>,
    deadline: Option<Instant>,
    slice: Duration,
    last_check: Instant,
    peer_alive: &'a mut dyn FnMut() -> bool,
    polls: u32,
    counted: bool,
    spun_out: bool,
}

impl std::fmt::Debug for Waiter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<'a> Waiter<'a> {
    /// A wait that spins for `window` (if `spin` allows), parks in `slice`s, gives up at
    /// `deadline` and ends with `Closed` once `peer_alive` says the peer is gone.
    pub(crate) fn new(
        window: Duration,
        em_side: bool,
        deadline: Option<Instant>,
        slice: Duration,
        peer_alive: &'a mut dyn FnMut() -> bool,
    ) -> Self {
        let now = Instant::now();
        let spin = !window.is_zero() && (!em_side || em_cpu_spare());
        let spin_until = spin.then(|| {
            let end = now + window;
            deadline.map_or(end, |d| end.min(d))
        });
        if spin_until.is_some() && em_side {
            SPINNING.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            spin_until,
            deadline,
            slice,
            last_check: now,
            peer_alive,
            polls: 0,
            counted: spin_until.is_some() && em_side,
            spun_out: false,
        }
    }

    /// Whether the spin window ran out before the wait ended.
    pub(crate) fn spun_out(&self) -> bool {
        self.spun_out
    }

    fn stop_spinning(&mut self) {
        self.spin_until = None;
        if std::mem::take(&mut self.counted) {
            SPINNING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.stop_spinning();
    }
}

impl Wait for Waiter<'_> {
    fn idle(&mut self) -> Result<Idle, TransportError> {
        if let Some(until) = self.spin_until {
            self.polls = self.polls.wrapping_add(1);
            // Reading the clock costs about one pause; look at it every 32 polls.
            if !self.polls.is_multiple_of(32) || Instant::now() < until {
                return Ok(Idle::Spin);
            }
            self.spun_out = true;
            self.stop_spinning();
        }
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            return Err(TransportError::TimedOut);
        }
        if now.duration_since(self.last_check) >= self.slice {
            self.last_check = now;
            if !(self.peer_alive)() {
                return Err(TransportError::Closed);
            }
        }
        let timeout = self
            .deadline
            .map_or(self.slice, |d| (d - now).min(self.slice));
        Ok(Idle::Park(Some(timeout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_follows_the_ewma_and_parks_long_waits() {
        let mut p = Pacer::new(WaitMode::Adaptive);
        assert_eq!(p.window(), SPIN_FLOOR, "no history: a short spin");
        p.record(Duration::from_micros(100), false);
        assert_eq!(p.window(), Duration::from_micros(200));
        p.record(Duration::from_micros(100), true);
        p.record(Duration::from_micros(100), false);
        assert_eq!(p.window(), Duration::ZERO, "a missed window backs off");
        p.record(Duration::from_micros(100), false);
        assert_eq!(
            p.window(),
            Duration::from_micros(200),
            "then spinning resumes"
        );
        for _ in 0..64 {
            p.record(Duration::from_millis(5), false);
        }
        assert_eq!(
            p.window(),
            Duration::ZERO,
            "waits above the cap are parked at once"
        );
        assert_eq!(Pacer::new(WaitMode::Park).window(), Duration::ZERO);
    }

    #[test]
    fn waiter_times_out_and_notices_a_dead_peer() {
        let mut alive = || true;
        let deadline = Instant::now() + Duration::from_millis(5);
        let mut w = Waiter::new(
            Duration::ZERO,
            true,
            Some(deadline),
            Duration::from_millis(1),
            &mut alive,
        );
        let err = loop {
            match w.idle() {
                Ok(Idle::Park(t)) => std::thread::sleep(t.unwrap()),
                Ok(Idle::Spin) => {}
                Err(e) => break e,
            }
        };
        assert!(matches!(err, TransportError::TimedOut), "{err}");
        let mut dead = || false;
        let mut w = Waiter::new(
            Duration::ZERO,
            false,
            None,
            Duration::from_millis(1),
            &mut dead,
        );
        let err = loop {
            match w.idle() {
                Ok(Idle::Park(t)) => std::thread::sleep(t.unwrap()),
                Ok(Idle::Spin) => {}
                Err(e) => break e,
            }
        };
        assert!(matches!(err, TransportError::Closed), "{err}");
    }
}
