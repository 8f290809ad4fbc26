//! The pool of executor slots: N threads, each owning one [`Slot`] (its native executor, if it
//! started one, is reused across tasks and respawned after a crash or timeout), fed from one
//! shared queue. Async callers get the outcome through a oneshot channel, so no tokio worker
//! ever blocks on a task.
//!
//! A panic while a slot runs a task fails that task (`Crashed`, with the panic message) and the
//! thread goes on with a fresh slot (the old one, and any executor child it held, is dropped).
//! [`SlotPool::slots`] counts the threads that are alive, so the EM never asks for work for a
//! slot that is gone.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use silk_executor_wasm::WasmHost;
use silk_ipc::{Execute, TaskFailure};
use tokio::sync::oneshot;

use super::native::TaskSuccess;
use super::policy::Backend;
use super::slot::{Slot, SlotConfig};
use super::stop::Stop;
use crate::metrics::em::PoolMetrics;
use crate::metrics::labels::LocalCache;

/// What a runner measured besides the outcome, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RunStats {
    /// Wasm fuel the last task burnt (fuel metering on).
    pub fuel: Option<u64>,
    /// Native executors restarted since the last call.
    pub restarts: u64,
}

/// What a slot thread runs tasks on: a [`Slot`] in production.
pub(crate) trait Runner {
    /// Runs one task, ended early when `stop` is stopped.
    fn run(
        &mut self,
        request: &Execute,
        hard_timeout: Duration,
        stop: &Stop,
    ) -> Result<TaskSuccess, TaskFailure>;

    /// What the last [`Runner::run`] measured.
    fn take_stats(&mut self) -> RunStats {
        RunStats::default()
    }
}

impl Runner for Slot {
    fn run(
        &mut self,
        request: &Execute,
        hard_timeout: Duration,
        stop: &Stop,
    ) -> Result<TaskSuccess, TaskFailure> {
        self.execute_stoppable(request, hard_timeout, stop)
    }

    fn take_stats(&mut self) -> RunStats {
        RunStats {
            fuel: self.take_fuel(),
            restarts: self.take_restarts(),
        }
    }
}

/// The text of a caught panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Counts a slot thread as live while it exists (also when it unwinds).
struct LiveGuard(Arc<AtomicUsize>, PoolMetrics);

impl LiveGuard {
    fn new(live: &Arc<AtomicUsize>, metrics: &PoolMetrics) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        metrics.slot_alive(1);
        Self(live.clone(), metrics.clone())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        self.1.slot_alive(-1);
    }
}

/// One queued task.
struct Work {
    request: Execute,
    hard_timeout: Duration,
    /// The hard timeout's end: a task still queued then is not started.
    deadline: Instant,
    stop: Arc<Stop>,
    reply: oneshot::Sender<Result<TaskSuccess, TaskFailure>>,
}

/// Removes an instance's [`Stop`] from the pool's registry when dropped.
struct Registered<'a> {
    running: &'a Mutex<HashMap<u64, Arc<Stop>>>,
    instance: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        crate::storage::lock(self.running).remove(&self.instance);
    }
}

/// A pool of slot threads.
#[derive(Debug)]
pub struct SlotPool {
    queue: Option<std_mpsc::Sender<Work>>,
    /// The [`Stop`] of every queued or running task storage knows by an instance id.
    running: Mutex<HashMap<u64, Arc<Stop>>>,
    task_time: Arc<TaskTime>,
    live: Arc<AtomicUsize>,
    metrics: PoolMetrics,
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
        let wasm = wasm.clone();
        let policy = config.policy.clone();
        let dir = config.native.package_dir.clone();
        // Only packages the pool has a file for get a label of their own (see `labels.rs`).
        let metrics = PoolMetrics::new(move |package| {
            let plain = package
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let (file, backend) = match policy.backend_for(package) {
                Backend::Native => (format!("lib{package}.so"), "native"),
                Backend::Wasm => (format!("{package}.wasm"), "wasm"),
            };
            (plain && !package.is_empty() && dir.join(file).is_file()).then_some(backend)
        });
        Self::start_measured(slots, metrics, move || {
            Slot::new(config.clone(), wasm.clone())
        })
    }

    /// Starts `slots` (≥ 1) threads, each running tasks on a runner `make` builds (again after
    /// a panic).
    #[cfg(test)]
    pub(crate) fn start_with<R: Runner + 'static>(
        slots: usize,
        make: impl Fn() -> R + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Self::start_measured(slots, PoolMetrics::default(), make)
    }

    /// As [`Self::start_with`], counting into `metrics`.
    pub(crate) fn start_measured<R: Runner + 'static>(
        slots: usize,
        metrics: PoolMetrics,
        make: impl Fn() -> R + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std_mpsc::channel::<Work>();
        let rx = Arc::new(Mutex::new(rx));
        let make = Arc::new(make);
        let task_time = Arc::new(TaskTime::default());
        let live = Arc::new(AtomicUsize::new(0));
        for i in 0..slots.max(1) {
            let (rx, times, make) = (rx.clone(), task_time.clone(), make.clone());
            // Counted from here, so `slots()` is right as soon as `start` returns.
            let guard = LiveGuard::new(&live, &metrics);
            let metrics = metrics.clone();
            // Detached: see `Drop`.
            std::thread::Builder::new()
                .name(format!("silk-slot-{i}"))
                .spawn(move || serve(i, &rx, &times, &metrics, &*make, guard))?;
        }
        Ok(Self {
            queue: Some(tx),
            running: Mutex::new(HashMap::new()),
            task_time,
            live,
            metrics,
        })
    }

    /// The pool's metrics (register them to expose them).
    #[must_use]
    pub fn metrics(&self) -> &PoolMetrics {
        &self.metrics
    }

    /// Live slots: threads that can take a task.
    #[must_use]
    pub fn slots(&self) -> usize {
        self.live.load(Ordering::Relaxed)
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
        self.run_work(request, hard_timeout, deadline, Arc::default())
            .await
    }

    /// [`SlotPool::execute_by`] for task instance `instance`, which [`SlotPool::stop`] stops
    /// while it is queued or runs.
    pub async fn execute_instance(
        &self,
        instance: u64,
        request: Execute,
        hard_timeout: Duration,
        deadline: Instant,
    ) -> Result<TaskSuccess, TaskFailure> {
        let stop = Arc::new(Stop::default());
        crate::storage::lock(&self.running).insert(instance, stop.clone());
        // Unregistered however this call ends, dropped futures included.
        let _registered = Registered {
            running: &self.running,
            instance,
        };
        self.run_work(request, hard_timeout, deadline, stop).await
    }

    /// Stops those of `instances` queued or running here; returns how many were.
    pub fn stop(&self, instances: &[u64]) -> usize {
        let running = crate::storage::lock(&self.running);
        instances
            .iter()
            .filter_map(|i| running.get(i))
            .inspect(|stop| stop.stop())
            .count()
    }

    async fn run_work(
        &self,
        request: Execute,
        hard_timeout: Duration,
        deadline: Instant,
        stop: Arc<Stop>,
    ) -> Result<TaskSuccess, TaskFailure> {
        let (reply, outcome) = oneshot::channel();
        let work = Work {
            request,
            hard_timeout,
            deadline,
            stop,
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

/// A slot thread: takes tasks until the queue closes. A panic in the runner fails that task and
/// the runner is rebuilt.
fn serve<R: Runner>(
    index: usize,
    rx: &Mutex<std_mpsc::Receiver<Work>>,
    times: &TaskTime,
    metrics: &PoolMetrics,
    make: &(dyn Fn() -> R + Send + Sync),
    _live: LiveGuard,
) {
    let mut runner = make();
    let mut packages = LocalCache::default();
    loop {
        // The lock is held only while waiting for the next task.
        let next = crate::storage::lock(rx).recv();
        let Ok(work) = next else { return };
        if work.stop.is_stopped() {
            let _ = work.reply.send(Err(TaskFailure::stopped()));
            continue;
        }
        let package = metrics.package(&mut packages, &work.request.package);
        let started = Instant::now();
        let left = work.deadline.saturating_duration_since(started);
        if left.is_zero() {
            // Queued past its hard timeout: not started (storage's expiry runs the same span).
            let after_ms = u64::try_from(work.hard_timeout.as_millis()).unwrap_or(u64::MAX);
            let failure = TaskFailure::Timeout { after_ms };
            package.finished(Err(&failure), Duration::ZERO, None);
            let _ = work.reply.send(Err(failure));
            continue;
        }
        package.started(work.request.inputs.len());
        metrics.slot_busy(1);
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            runner.run(&work.request, left, &work.stop)
        }));
        let elapsed = started.elapsed();
        metrics.slot_busy(-1);
        times.record(elapsed);
        let outcome = match run {
            Ok(outcome) => outcome,
            Err(payload) => {
                let failure = TaskFailure::Crashed {
                    status: format!("executor slot panicked: {}", panic_text(&*payload)),
                }
                .bounded();
                tracing::error!(slot = index, package = work.request.package, function = work.request.function, error = %failure, "slot panicked; task failed, slot rebuilt");
                // Whatever the panic left half-done goes with the old runner.
                runner = make();
                Err(failure)
            }
        };
        let stats = runner.take_stats();
        metrics.executor_restarts(stats.restarts);
        package.finished(
            outcome.as_ref().map(|s| s.outputs.len()),
            elapsed,
            stats.fuel,
        );
        // The caller may have given up (shutdown); nothing to do then.
        let _ = work.reply.send(outcome);
    }
}

impl Drop for SlotPool {
    fn drop(&mut self) {
        self.close();
        // Threads are detached: one may still be inside a long task; its executor child is
        // killed when the slot is dropped at the end of that task or at process exit.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers with its build number; panics on the function `panic`.
    struct Flaky(usize);

    impl Runner for Flaky {
        fn run(
            &mut self,
            request: &Execute,
            _: Duration,
            _: &Stop,
        ) -> Result<TaskSuccess, TaskFailure> {
            assert!(
                request.function != "panic",
                "deliberate panic in {}",
                self.0
            );
            Ok(TaskSuccess {
                outputs: vec![u8::try_from(self.0).unwrap()],
                elapsed_ns: 0,
            })
        }
    }

    fn task(function: &str) -> Execute {
        Execute {
            package: "p".into(),
            function: function.into(),
            context: Vec::new(),
            inputs: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_panic_fails_its_task_and_the_slot_keeps_serving() {
        // Watchdog: a slot thread killed by the panic would leave the later tasks waiting.
        tokio::time::timeout(Duration::from_secs(30), panic_then_serve())
            .await
            .expect("watchdog: the pool stopped serving after a panic");
    }

    async fn panic_then_serve() {
        let builds = Arc::new(AtomicUsize::new(0));
        let counter = builds.clone();
        let pool =
            SlotPool::start_with(1, move || Flaky(counter.fetch_add(1, Ordering::SeqCst))).unwrap();
        assert_eq!(pool.slots(), 1);
        let t = Duration::from_secs(10);
        assert_eq!(pool.execute(task("ok"), t).await.unwrap().outputs, [0]);
        let err = pool.execute(task("panic"), t).await.unwrap_err();
        assert_eq!(err.kind(), silk_ipc::FailureKind::Crashed, "{err}");
        assert!(
            err.to_string().contains("deliberate panic in 0"),
            "carries the message: {err}"
        );
        // The same single thread serves on, with a rebuilt runner.
        for _ in 0..3 {
            assert_eq!(pool.execute(task("ok"), t).await.unwrap().outputs, [1]);
        }
        assert_eq!(pool.slots(), 1, "still one live slot");
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn capacity_counts_live_slots_only() {
        let pool = SlotPool::start_with(2, || Flaky(0)).unwrap();
        assert_eq!(pool.slots(), 2);
        let mut pool = pool;
        pool.close();
        // Closing the queue ends every thread; none counts afterwards.
        for _ in 0..500 {
            if pool.slots() == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "{} slots still counted after every thread ended",
            pool.slots()
        );
    }

    /// Runs until stopped (counting its runs), then fails as stopped.
    struct UntilStopped(Arc<AtomicUsize>);

    impl Runner for UntilStopped {
        fn run(
            &mut self,
            _: &Execute,
            timeout: Duration,
            stop: &Stop,
        ) -> Result<TaskSuccess, TaskFailure> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let end = Instant::now() + timeout;
            while !stop.is_stopped() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TaskFailure::stopped())
        }
    }

    #[tokio::test]
    async fn stopped_instances_end_running_or_queued() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let pool =
            Arc::new(SlotPool::start_with(1, move || UntilStopped(counter.clone())).unwrap());
        let long = Duration::from_secs(60);
        let run = |instance| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + long;
                pool.execute_instance(instance, task("t"), long, deadline)
                    .await
            })
        };
        let (running, queued) = (run(1), run(2));
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(pool.stop(&[2, 99]), 1, "only instance 2 is known");
        assert_eq!(pool.stop(&[1]), 1);
        let watchdog = Duration::from_secs(10);
        for handle in [running, queued] {
            let outcome = tokio::time::timeout(watchdog, handle)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(outcome.unwrap_err(), TaskFailure::stopped());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the queued task never ran");
        assert_eq!(pool.stop(&[1, 2]), 0, "finished instances are forgotten");
    }
}
