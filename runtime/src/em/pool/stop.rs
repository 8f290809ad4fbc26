//! Stopping a task from outside its slot, when storage says its instance is no longer wanted
//! (its job was cancelled or failed). Each task has a [`Stop`], shared by the slot running it
//! and the pool. A wasm task sees it at the sandbox's next epoch tick (or a sleeping guest's next
//! check); a native task's executor is killed through its pidfd — which cannot name a reaped and
//! reused process — and the slot's crash handling then kills its process group, reaps it and
//! starts a fresh one.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::storage::lock;

/// Whether a task should stop, and the executor to kill if it runs natively.
#[derive(Debug, Default)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    /// The native executor running the task, while it does.
    executor: Mutex<Option<Arc<OwnedFd>>>,
}

impl Stop {
    /// Stops the task: sets the flag and kills its native executor, if it runs on one.
    pub fn stop(&self) {
        let executor = lock(&self.executor);
        self.flag.store(true, Ordering::SeqCst);
        if let Some(pidfd) = executor.as_ref() {
            // Already exited is fine: the slot notices either way.
            let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL);
        }
    }

    /// Whether [`Stop::stop`] was called.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag, for the wasm sandbox to watch.
    pub(super) fn flag(&self) -> &Arc<AtomicBool> {
        &self.flag
    }

    /// The task is about to run on the executor behind `pidfd`: a stop from now on kills it.
    /// False if the task was stopped already (then it must not run).
    pub(super) fn watch_executor(&self, pidfd: Arc<OwnedFd>) -> bool {
        let mut executor = lock(&self.executor);
        if self.is_stopped() {
            return false;
        }
        *executor = Some(pidfd);
        true
    }

    /// The task left its executor.
    pub(super) fn unwatch_executor(&self) {
        *lock(&self.executor) = None;
    }
}
