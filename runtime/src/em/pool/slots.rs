//! The pool of executor slots: N threads, each owning one [`Slot`] (its native executor, if it
//! started one, is reused across tasks and respawned after a crash or timeout), fed from one
//! shared queue. Async callers get the outcome through a oneshot channel, so no tokio worker
//! ever blocks on a task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use silk_executor_wasm::WasmHost;
use silk_ipc::{Execute, TaskFailure};
use tokio::sync::oneshot;

use super::native::TaskSuccess;
use super::slot::{Slot, SlotConfig};

/// One queued task.
struct Work {
    request: Execute,
    hard_timeout: Duration,
    /// The hard timeout's end: a task still queued then is not started.
    deadline: Instant,
    reply: oneshot::Sender<Result<TaskSuccess, TaskFailure>>,
}

/// A pool of slot threads.
#[derive(Debug)]
pub struct SlotPool {
    queue: Option<std_mpsc::Sender<Work>>,
    threads: Vec<JoinHandle<()>>,
    task_time: Arc<TaskTime>,
}

/// A moving average of how long a task occupies a slot (execution only, not time queued).
#[derive(Debug, Default)]
struct TaskTime {
    /// Exponentially weighted mean in nanoseconds (weight 1/8); 0 until a task ran.
    ewma_ns: AtomicU64,
}

impl TaskTime {
    fn record(&self, elapsed: Duration) {
        let x = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // Slot threads may race here; a lost update only delays the average a little.
        let old = self.ewma_ns.load(Ordering::Relaxed);
        let new = if old == 0 {
            x.max(1)
        } else {
            old - old / 8 + x / 8
        };
        self.ewma_ns.store(new.max(1), Ordering::Relaxed);
    }
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
        let task_time = Arc::new(TaskTime::default());
        for i in 0..slots.max(1) {
            let rx = rx.clone();
            let times = task_time.clone();
            let mut slot = Slot::new(config.clone(), wasm.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("silk-slot-{i}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only while waiting for the next task.
                            let next = crate::storage::lock(&rx).recv();
                            let Ok(work) = next else { return };
                            let started = Instant::now();
                            let left = work.deadline.saturating_duration_since(started);
                            let outcome = if left.is_zero() {
                                Err(TaskFailure::Timeout {
                                    after_ms: u64::try_from(work.hard_timeout.as_millis())
                                        .unwrap_or(u64::MAX),
                                })
                            } else {
                                let outcome = slot.execute(&work.request, left);
                                times.record(started.elapsed());
                                outcome
                            };
                            // The caller may have given up (shutdown); nothing to do then.
                            let _ = work.reply.send(outcome);
                        }
                    })?,
            );
        }
        Ok(Self {
            queue: Some(tx),
            threads,
            task_time,
        })
    }

    /// Slot count.
    #[must_use]
    pub fn slots(&self) -> usize {
        self.threads.len()
    }

    /// The recent mean time a task spends in a slot; `None` before the first task.
    #[must_use]
    pub fn mean_task_time(&self) -> Option<Duration> {
        match self.task_time.ewma_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Runs `request` on the next free slot, within `hard_timeout` from now.
    pub async fn execute(
        &self,
        request: Execute,
        hard_timeout: Duration,
    ) -> Result<TaskSuccess, TaskFailure> {
        self.execute_by(request, hard_timeout, Instant::now() + hard_timeout)
            .await
    }

    /// Runs `request` on the next free slot, stopped at `deadline` (where a `hard_timeout`
    /// that began earlier ends, e.g. when storage registered the instance): time queued counts.
    /// A task still queued at its deadline is not started; it fails with `Timeout`.
    pub async fn execute_by(
        &self,
        request: Execute,
        hard_timeout: Duration,
        deadline: Instant,
    ) -> Result<TaskSuccess, TaskFailure> {
        let (reply, outcome) = oneshot::channel();
        let work = Work {
            request,
            hard_timeout,
            deadline,
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
