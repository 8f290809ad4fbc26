//! Bounded parks without a kernel timer per park: one thread per process wakes the endpoints
//! parked on shm futexes at the end of their slices.
//!
//! A park must end at least every slice so the waiter can check its deadline and its peer
//! (`wait.rs`). Handing the kernel that timeout makes every park arm and cancel a high-resolution
//! timer, and on a virtual machine reprogramming the timer is a trap to the hypervisor: the IPC
//! bench's parked round trip around a 50 µs task took ~12.5 µs at p50 with a timeout on each
//! futex wait and ~8.5 µs without. So a waiter registers here instead ([`arm`]), parks with no
//! timeout, and unregisters when it wakes ([`Ticket`]'s drop). This thread wakes every waiter
//! whose slice ran out, and again every slice until it unregisters — a wake that lands just
//! before the waiter sleeps is lost, the next one is not — so every park still ends within about
//! a slice, as with the kernel's timer.
//!
//! The thread sleeps until the earliest end of a slice. A new waiter whose slice ends after that
//! costs no system call; after a second with nobody parked the thread sleeps until someone parks
//! again. If the thread cannot be started, [`arm`] says so and the waiter uses the kernel's
//! timeout.

use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::shm::raw::MappedRing;
use crate::shm::ring::RingMem;
use crate::shm::sync::AtomicU32;

/// How long the thread keeps looking every [`IDLE_TICK`] with nobody parked before it sleeps
/// until a waiter arms it (which then costs that waiter a wake-up of this thread).
const LINGER: Duration = Duration::from_secs(1);
/// How often the thread looks while nobody is parked but someone was within [`LINGER`].
const IDLE_TICK: Duration = Duration::from_millis(2);

/// Which sleeping word of a ring's control block a waiter parks on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Word {
    Consumer,
    Producer,
}

impl Word {
    /// Which of `ring`'s words `word` is, if it is one of them.
    pub(crate) fn of(ring: &MappedRing, word: &AtomicU32) -> Option<Self> {
        let ctl = ring.ctl();
        if std::ptr::eq(word, &ctl.consumer_sleeping.0) {
            Some(Self::Consumer)
        } else if std::ptr::eq(word, &ctl.producer_sleeping.0) {
            Some(Self::Producer)
        } else {
            None
        }
    }

    fn wake(self, ring: &MappedRing) {
        let ctl = ring.ctl();
        ring.wake(match self {
            Self::Consumer => &ctl.consumer_sleeping.0,
            Self::Producer => &ctl.producer_sleeping.0,
        });
    }
}

struct Entry {
    id: u64,
    ring: MappedRing,
    word: Word,
    every: Duration,
    due: Instant,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    next_id: u64,
    /// When the thread looks next; `None` while it sleeps until notified.
    looks_at: Option<Instant>,
}

struct Alarm {
    state: Mutex<State>,
    cv: Condvar,
}

impl Alarm {
    /// The process's alarm, its thread started on first use; `None` if it could not start.
    fn get() -> Option<&'static Self> {
        static ALARM: OnceLock<Option<&'static Alarm>> = OnceLock::new();
        *ALARM.get_or_init(|| {
            let alarm: &'static Self = Box::leak(Box::new(Self {
                state: Mutex::new(State::default()),
                cv: Condvar::new(),
            }));
            std::thread::Builder::new()
                .name("silk-shm-alarm".into())
                .spawn(move || alarm.run())
                .ok()
                .map(|_| alarm)
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn run(&self) {
        let mut state = self.lock();
        let mut empty_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            for e in state.entries.iter_mut().filter(|e| e.due <= now) {
                e.word.wake(&e.ring);
                e.due = now + e.every;
            }
            let next = match state.entries.iter().map(|e| e.due).min() {
                Some(due) => {
                    empty_since = None;
                    due
                }
                None if now.duration_since(*empty_since.get_or_insert(now)) < LINGER => {
                    now + IDLE_TICK
                }
                None => {
                    state.looks_at = None;
                    state = self
                        .cv
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    continue;
                }
            };
            state.looks_at = Some(next);
            state = self
                .cv
                .wait_timeout(state, next.saturating_duration_since(now))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// A waiter's registration; dropping it unregisters.
pub(crate) struct Ticket {
    alarm: &'static Alarm,
    id: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.alarm.lock();
        if let Some(i) = state.entries.iter().position(|e| e.id == self.id) {
            state.entries.swap_remove(i);
        }
    }
}

/// Has the waiter about to park on `word` of `ring` woken after `every`, and every `every` after
/// that, until the ticket is dropped. `None`: no alarm thread; park with a kernel timeout.
pub(crate) fn arm(ring: &MappedRing, word: Word, every: Duration) -> Option<Ticket> {
    let alarm = Alarm::get()?;
    let due = Instant::now() + every;
    let mut state = alarm.lock();
    let id = state.next_id;
    state.next_id += 1;
    state.entries.push(Entry {
        id,
        ring: ring.clone(),
        word,
        every,
        due,
    });
    let notify = state.looks_at.is_none_or(|at| at > due);
    drop(state);
    if notify {
        alarm.cv.notify_one();
    }
    Some(Ticket { alarm, id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::segment::Segment;
    use crate::shm::sync::Ordering;

    /// A consumer's sleeping word, set as a parked consumer sets it, with nobody to wake it.
    fn parked_consumer() -> (Segment, MappedRing) {
        let segment = Segment::create(1 << 16).unwrap();
        let (ring, _) = segment.rings();
        ring.ctl().consumer_sleeping.0.store(1, Ordering::SeqCst);
        (segment, ring)
    }

    #[test]
    fn a_bounded_park_ends_after_its_slice() {
        let (_segment, ring) = parked_consumer();
        let started = Instant::now();
        ring.wait(
            &ring.ctl().consumer_sleeping.0,
            1,
            Some(Duration::from_millis(30)),
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(25) && waited < Duration::from_secs(5),
            "woken after {waited:?}"
        );
    }

    #[test]
    fn a_wake_lost_before_the_park_is_repeated() {
        let (_segment, ring) = parked_consumer();
        let ticket = arm(&ring, Word::Consumer, Duration::from_millis(5)).expect("alarm");
        let id = ticket.id;
        // The first wake comes while nobody waits on the word, and is lost.
        std::thread::sleep(Duration::from_millis(30));
        let (woken_tx, woken) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // No timeout of its own: only the alarm can end this park.
            ring.wait(&ring.ctl().consumer_sleeping.0, 1, None);
            let _ = woken_tx.send(ticket);
        });
        let ticket = woken
            .recv_timeout(Duration::from_secs(10))
            .expect("the alarm wakes the waiter again");
        drop(ticket);
        let state = Alarm::get().unwrap().lock();
        assert!(
            !state.entries.iter().any(|e| e.id == id),
            "dropping the ticket unregisters"
        );
    }
}
