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
use super::slot::{Done, Queued, RunStats, Slot, SlotConfig};
use super::stop::Stop;
use crate::metrics::em::PoolMetrics;
use crate::metrics::labels::LocalCache;

/// What a slot thread runs tasks on: a [`Slot`] in production.
pub(crate) trait Runner {
    /// Runs one task, ended early when `stop` is stopped.
    fn run(
        &mut self,
        request: &Execute,
        hard_timeout: Duration,
        stop: &Stop,
    ) -> Result<TaskSuccess, TaskFailure>;

    /// Runs `batch` in order, calling `done` with each outcome as soon as it is known; a task
    /// stopped or past its deadline before its turn does not run ([`Queued::refused`]).
    fn run_batch(&mut self, batch: &[Queued<'_>], done: &mut Done<'_>) {
        for (k, q) in batch.iter().enumerate() {
            let outcome = match q.refused() {
                Some(failure) => Err(failure),
                None => self.run(q.request, q.left(), q.stop),
            };
            done(k, outcome, RunStats::default());
        }
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

    fn run_batch(&mut self, batch: &[Queued<'_>], done: &mut Done<'_>) {
        self.execute_batch(batch, done);
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
    /// Tasks in the queue, not yet taken by a slot.
    queued: Arc<AtomicUsize>,
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
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..slots.max(1) {
            let (rx, times, make) = (rx.clone(), task_time.clone(), make.clone());
            let (queued, slots_live) = (queued.clone(), live.clone());
            // Counted from here, so `slots()` is right as soon as `start` returns.
            let guard = LiveGuard::new(&live, &metrics);
            let metrics = metrics.clone();
            // Detached: see `Drop`.
            std::thread::Builder::new()
                .name(format!("silk-slot-{i}"))
                .spawn(move || {
                    let queue = Queue {
                        rx: &rx,
                        queued: &queued,
                        live: &slots_live,
                    };
                    serve(i, &queue, &times, &metrics, &*make, guard);
                })?;
        }
        Ok(Self {
            queue: Some(tx),
            running: Mutex::new(HashMap::new()),
            task_time,
            live,
            queued,
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
        self.queued.fetch_add(1, Ordering::Relaxed);
        if queue.send(work).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(lost());
        }
        outcome.await.unwrap_or_else(|_| Err(lost()))
    }

    /// Stops taking tasks; the threads exit after their current task (not waited for).
    pub fn close(&mut self) {
        self.queue = None;
    }
}

/// Most tasks a slot takes from the queue at once.
const MAX_BATCH: usize = 8;

/// The queue slot threads share.
struct Queue<'a> {
    rx: &'a Mutex<std_mpsc::Receiver<Work>>,
    /// Tasks sent and not yet taken.
    queued: &'a AtomicUsize,
    /// Live slot threads.
    live: &'a AtomicUsize,
}

impl Queue<'_> {
    /// Waits for the next task, and takes with it a fair share of those queued behind it (what
    /// is queued divided by the live slots, at most [`MAX_BATCH`] in all), so no slot is left
    /// idle while another holds tasks. `None` once the queue is closed.
    fn take(&self) -> Option<Vec<Work>> {
        // The lock is held only while taking tasks.
        let rx = crate::storage::lock(self.rx);
        let first = rx.recv().ok()?;
        let behind = self.queued.load(Ordering::Relaxed).saturating_sub(1);
        let share = 1 + behind / self.live.load(Ordering::Relaxed).max(1);
        let mut batch = vec![first];
        while batch.len() < share.min(MAX_BATCH) {
            match rx.try_recv() {
                Ok(work) => batch.push(work),
                Err(_) => break,
            }
        }
        drop(rx);
        self.queued.fetch_sub(batch.len(), Ordering::Relaxed);
        Some(batch)
    }
}

/// A slot thread: takes tasks until the queue closes. A panic in the runner fails the tasks of
/// the batch it was running that had no outcome yet, and the runner is rebuilt.
fn serve<R: Runner>(
    index: usize,
    queue: &Queue<'_>,
    times: &TaskTime,
    metrics: &PoolMetrics,
    make: &(dyn Fn() -> R + Send + Sync),
    _live: LiveGuard,
) {
    let mut runner = make();
    let mut packages = LocalCache::default();
    while let Some(batch) = queue.take() {
        let mut tasks = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let now = Instant::now();
        for work in batch {
            if work.stop.is_stopped() {
                let _ = work.reply.send(Err(TaskFailure::stopped()));
                continue;
            }
            let package = metrics.package(&mut packages, &work.request.package);
            if work.deadline <= now {
                // Queued past its hard timeout: not started (storage's expiry runs the same
                // span).
                let after_ms = u64::try_from(work.hard_timeout.as_millis()).unwrap_or(u64::MAX);
                let failure = TaskFailure::Timeout { after_ms };
                package.finished(Err(&failure), Duration::ZERO, None);
                let _ = work.reply.send(Err(failure));
                continue;
            }
            package.started(work.request.inputs.len());
            replies.push(Some((work.reply, package)));
            tasks.push((work.request, work.hard_timeout, work.deadline, work.stop));
        }
        if tasks.is_empty() {
            continue;
        }
        let queued: Vec<Queued<'_>> = tasks
            .iter()
            .map(|(request, hard_timeout, deadline, stop)| Queued {
                request,
                hard_timeout: *hard_timeout,
                deadline: *deadline,
                stop,
            })
            .collect();
        metrics.slot_busy(1);
        let mut last = Instant::now();
        let mut unfinished = replies.len();
        let mut done = |k: usize, outcome: Result<TaskSuccess, TaskFailure>, stats: RunStats| {
            let now = Instant::now();
            let elapsed = now - last;
            last = now;
            times.record(elapsed);
            metrics.executor_restarts(stats.restarts);
            let Some((reply, package)) = replies.get_mut(k).and_then(Option::take) else {
                return;
            };
            package.finished(
                outcome.as_ref().map(|s| s.outputs.len()),
                elapsed,
                stats.fuel,
            );
            unfinished -= 1;
            if unfinished == 0 {
                // Idle before the last answer goes out, so whoever reads it sees the slot free.
                metrics.slot_busy(-1);
            }
            // The caller may have given up (shutdown); nothing to do then.
            let _ = reply.send(outcome);
        };
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            runner.run_batch(&queued, &mut done);
        }));
        if let Err(payload) = run {
            let failure = TaskFailure::Crashed {
                status: format!("executor slot panicked: {}", panic_text(&*payload)),
            }
            .bounded();
            tracing::error!(slot = index, error = %failure, "slot panicked; its unfinished tasks failed, slot rebuilt");
            for k in 0..queued.len() {
                done(k, Err(failure.clone()), RunStats::default());
            }
            // Whatever the panic left half-done goes with the old runner.
            runner = make();
        }
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

    /// Waits on "gate" until `open` (saying when it is there); panics on "panic"; answers
    /// everything else.
    struct Gated {
        open: Arc<std::sync::atomic::AtomicBool>,
        at_gate: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Runner for Gated {
        fn run(
            &mut self,
            request: &Execute,
            _: Duration,
            _: &Stop,
        ) -> Result<TaskSuccess, TaskFailure> {
            if request.function == "gate" {
                self.at_gate.store(true, Ordering::SeqCst);
                while !self.open.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            assert!(request.function != "panic", "deliberate panic");
            Ok(TaskSuccess {
                outputs: request.function.clone().into_bytes(),
                elapsed_ns: 0,
            })
        }
    }

    #[tokio::test]
    async fn a_panic_inside_a_batch_fails_the_tasks_without_an_outcome() {
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let at_gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (o, a) = (open.clone(), at_gate.clone());
        let pool = Arc::new(
            SlotPool::start_with(1, move || Gated {
                open: o.clone(),
                at_gate: a.clone(),
            })
            .unwrap(),
        );
        let run = |function: &'static str| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.execute(task(function), Duration::from_secs(60)).await })
        };
        let gated = run("gate");
        let watchdog = Duration::from_secs(10);
        let waited = Instant::now();
        while !at_gate.load(Ordering::SeqCst) {
            assert!(
                waited.elapsed() < watchdog,
                "watchdog: the gate task never ran"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Queued behind the gate, so the one slot takes all three as one batch.
        let tasks = [run("first"), run("panic"), run("last")];
        while pool.queued.load(Ordering::SeqCst) < 3 {
            assert!(
                waited.elapsed() < watchdog,
                "watchdog: the tasks were never queued"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        open.store(true, Ordering::SeqCst);
        let mut outcomes = Vec::new();
        for handle in std::iter::once(gated).chain(tasks) {
            outcomes.push(
                tokio::time::timeout(watchdog, handle)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert_eq!(outcomes[0].as_ref().unwrap().outputs, b"gate");
        assert_eq!(outcomes[1].as_ref().unwrap().outputs, b"first");
        for outcome in &outcomes[2..] {
            let err = outcome.as_ref().unwrap_err();
            assert_eq!(err.kind(), silk_ipc::FailureKind::Crashed, "{err}");
            assert!(err.to_string().contains("deliberate panic"), "{err}");
        }
        assert_eq!(
            pool.execute(task("after"), Duration::from_secs(10))
                .await
                .unwrap()
                .outputs,
            b"after",
            "the slot serves on"
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
