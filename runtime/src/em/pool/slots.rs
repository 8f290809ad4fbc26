//! The pool of executor slots: N threads, each owning one [`Slot`] (its native executor, if it
//! started one, is reused across tasks and respawned after a crash or timeout), fed from one
//! shared queue. Async callers get the outcome through a oneshot channel, so no tokio worker
//! ever blocks on a task.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use silk_executor_wasm::WasmHost;
use silk_ipc::{Execute, TaskFailure};
use tokio::sync::oneshot;

use super::native::TaskSuccess;
use super::slot::{Slot, SlotConfig};

/// One queued task.
struct Work {
    request: Execute,
    hard_timeout: Duration,
    reply: oneshot::Sender<Result<TaskSuccess, TaskFailure>>,
}

/// A pool of slot threads.
#[derive(Debug)]
pub struct SlotPool {
    queue: Option<std_mpsc::Sender<Work>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work")
            .field("package", &self.request.package)
            .field("function", &self.request.function)
            .finish_non_exhaustive()
    }
}

impl SlotPool {
    /// Starts `slots` (≥ 1) slot threads.
    ///
    /// # Errors
    /// A thread could not be spawned.
    pub fn start(slots: usize, config: Arc<SlotConfig>, wasm: &WasmHost) -> std::io::Result<Self> {
        let (tx, rx) = std_mpsc::channel::<Work>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..slots.max(1) {
            let rx = rx.clone();
            let mut slot = Slot::new(config.clone(), wasm.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("silk-slot-{i}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only while waiting for the next task.
                            let next = crate::storage::lock(&rx).recv();
                            let Ok(work) = next else { return };
                            let outcome = slot.execute(&work.request, work.hard_timeout);
                            // The caller may have given up (shutdown); nothing to do then.
                            let _ = work.reply.send(outcome);
                        }
                    })?,
            );
        }
        Ok(Self {
            queue: Some(tx),
            threads,
        })
    }

    /// Slot count.
    #[must_use]
    pub fn slots(&self) -> usize {
        self.threads.len()
    }

    /// Runs `request` on the next free slot.
    pub async fn execute(
        &self,
        request: Execute,
        hard_timeout: Duration,
    ) -> Result<TaskSuccess, TaskFailure> {
        let (reply, outcome) = oneshot::channel();
        let work = Work {
            request,
            hard_timeout,
            reply,
        };
        let lost = || TaskFailure::Crashed {
            status: "executor slot stopped".into(),
        };
        let Some(queue) = &self.queue else {
            return Err(lost());
        };
        if queue.send(work).is_err() {
            return Err(lost());
        }
        outcome.await.unwrap_or_else(|_| Err(lost()))
    }

    /// Stops taking tasks; the threads exit after their current task (not waited for).
    pub fn close(&mut self) {
        self.queue = None;
    }
}

impl Drop for SlotPool {
    fn drop(&mut self) {
        self.close();
        // Threads are detached: one may still be inside a long task; its executor child is
        // killed when the slot is dropped at the end of that task or at process exit.
    }
}
