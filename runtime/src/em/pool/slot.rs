//! One executor slot of an EM's pool: runs each task on the backend its package's policy picks —
//! a native executor child for allow-listed (trusted) packages, the wasm sandbox for every other
//! package — with per-package wasm limits.
//!
//! A slot runs one task at a time and blocks while it does: give each slot its own thread. Given
//! several tasks at once ([`Slot::execute_batch`]), it queues consecutive native ones to its
//! executor back to back (see [`Slot::execute_batch`]), so the executor goes from one task to the
//! next without either process waiting for the other to be scheduled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use silk_executor_wasm::{SandboxPolicy, WasmHost};
use silk_ipc::{Execute, TaskFailure};

use super::native::{NativeExecutor, NativeExecutorConfig, TaskSuccess};
use super::policy::{Backend, NativePolicy, PackagePolicy};
use super::stop::Stop;

/// What every slot of a pool shares.
#[derive(Debug, Clone)]
pub struct SlotConfig {
    /// Which packages run natively.
    pub policy: PackagePolicy,
    /// How native executors are started.
    pub native: NativeExecutorConfig,
    /// Limits of native packages without their own entry.
    pub native_default: NativePolicy,
    /// Limits per native package.
    pub native_packages: BTreeMap<String, NativePolicy>,
    /// Sandbox limits of wasm packages without their own entry.
    pub wasm_default: SandboxPolicy,
    /// Sandbox limits per wasm package.
    pub wasm_packages: BTreeMap<String, SandboxPolicy>,
}

impl SlotConfig {
    /// The native limits of `package`.
    #[must_use]
    pub fn native_policy(&self, package: &str) -> &NativePolicy {
        self.native_packages
            .get(package)
            .unwrap_or(&self.native_default)
    }

    /// The sandbox limits of `package`.
    #[must_use]
    pub fn wasm_policy(&self, package: &str) -> &SandboxPolicy {
        self.wasm_packages
            .get(package)
            .unwrap_or(&self.wasm_default)
    }
}

/// One task of a batch: the request, its hard timeout and where that ends (time queued counts),
/// and its [`Stop`].
#[derive(Debug, Clone, Copy)]
pub struct Queued<'a> {
    /// The task.
    pub request: &'a Execute,
    /// Its hard timeout, as configured (named when it expires).
    pub hard_timeout: Duration,
    /// When the hard timeout ends.
    pub deadline: Instant,
    /// Stops the task from outside.
    pub stop: &'a Stop,
}

impl Queued<'_> {
    /// Time left before the deadline.
    #[must_use]
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Why the task must not start now, if it must not: it was stopped, or its deadline passed
    /// (then it fails with [`TaskFailure::Timeout`] without running).
    #[must_use]
    pub fn refused(&self) -> Option<TaskFailure> {
        if self.stop.is_stopped() {
            return Some(TaskFailure::stopped());
        }
        self.left().is_zero().then(|| TaskFailure::Timeout {
            after_ms: u64::try_from(self.hard_timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// What running a task measured besides its outcome, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Wasm fuel the task burnt (fuel metering on).
    pub fuel: Option<u64>,
    /// Native executors restarted since the previous task's outcome.
    pub restarts: u64,
}

/// What [`Slot::execute_batch`] calls with each task's index in the batch, its outcome and what
/// it measured.
pub type Done<'d> = dyn FnMut(usize, Result<TaskSuccess, TaskFailure>, RunStats) + 'd;

/// The request bytes a queued task takes in the executor's ring, about.
fn request_bytes(request: &Execute) -> usize {
    request.package.len()
        + request.function.len()
        + request.context.len()
        + request.inputs.len()
        + 64
}

/// An executor slot.
#[derive(Debug)]
pub struct Slot {
    config: Arc<SlotConfig>,
    wasm: WasmHost,
    // Started on the first native task, so a wasm-only EM never spawns a native executor.
    native: Option<NativeExecutor>,
    /// Fuel the last wasm task burnt.
    last_fuel: Option<u64>,
}

impl Slot {
    /// A slot sharing `config` and the EM's wasm host.
    #[must_use]
    pub fn new(config: Arc<SlotConfig>, wasm: WasmHost) -> Self {
        Self {
            config,
            wasm,
            native: None,
            last_fuel: None,
        }
    }

    /// Fuel the last task burnt (wasm with fuel metering), once.
    pub fn take_fuel(&mut self) -> Option<u64> {
        self.last_fuel.take()
    }

    /// Native executor restarts since the last call.
    pub fn take_restarts(&mut self) -> u64 {
        self.native
            .as_mut()
            .map_or(0, NativeExecutor::take_restarts)
    }

    /// The process id of this slot's native executor, if it has started one.
    #[must_use]
    pub fn native_pid(&self) -> Option<u32> {
        self.native.as_ref().and_then(NativeExecutor::pid)
    }

    /// This slot's native executor, started on first use.
    fn native(&mut self) -> Result<&mut NativeExecutor, TaskFailure> {
        if self.native.is_none() {
            let started = NativeExecutor::spawn(self.config.native.clone()).map_err(|e| {
                TaskFailure::Crashed {
                    status: format!("executor could not be started: {e}"),
                }
            })?;
            self.native = Some(started);
        }
        self.native.as_mut().ok_or_else(|| TaskFailure::Crashed {
            status: "executor could not be started".into(),
        })
    }

    /// Runs `batch` in order, calling `done` with each outcome as soon as it is known. A task
    /// stopped or past its deadline before it started does not run ([`Queued::refused`]).
    ///
    /// Consecutive native tasks are queued to the executor together, up to
    /// [`NativeExecutor::queue_budget`] bytes of requests, and their answers collected in turn:
    /// each keeps its own deadline, output limit and stop, and a task that kills or wedges the
    /// executor fails alone — the tasks queued behind it were not started, and go to the fresh
    /// executor. Stopping a task queued behind a running one does not touch the running one: the
    /// executor is killed only if the stopped task is the one it runs.
    pub fn execute_batch(&mut self, batch: &[Queued<'_>], done: &mut Done<'_>) {
        let mut i = 0;
        while i < batch.len() {
            let natives = batch[i..]
                .iter()
                .take_while(|q| {
                    self.config.policy.backend_for(&q.request.package) == Backend::Native
                })
                .count();
            if natives > 1 {
                self.pipeline(&batch[i..i + natives], &mut |k, outcome, stats| {
                    done(i + k, outcome, stats);
                });
                i += natives;
                continue;
            }
            let q = &batch[i];
            let outcome = match q.refused() {
                Some(failure) => Err(failure),
                None => self.execute_stoppable(q.request, q.left(), q.stop),
            };
            let stats = RunStats {
                fuel: self.take_fuel(),
                restarts: self.take_restarts(),
            };
            done(i, outcome, stats);
            i += 1;
        }
    }

    /// [`Slot::execute_batch`] for native tasks only.
    fn pipeline(&mut self, batch: &[Queued<'_>], done: &mut Done<'_>) {
        let config = self.config.clone();
        let mut next = 0;
        'fresh: while next < batch.len() {
            let native = match self.native() {
                Ok(n) => n,
                Err(failure) => {
                    for k in next..batch.len() {
                        done(k, Err(failure.clone()), RunStats::default());
                    }
                    return;
                }
            };
            let generation = native.generation();
            let budget = native.queue_budget();
            let (mut sent, mut bytes) = (next, 0);
            while let Some(q) = batch.get(sent) {
                if let Some(failure) = q.refused() {
                    if sent == next {
                        done(next, Err(failure), RunStats::default());
                        next += 1;
                        continue 'fresh;
                    }
                    // Not sent: refused at its turn, without touching the executor.
                    break;
                }
                bytes += request_bytes(q.request);
                if sent > next && bytes > budget {
                    break;
                }
                if !native.send_queued(q.request, q.deadline) {
                    break;
                }
                sent += 1;
            }
            if sent == next {
                // Not even the first could be queued: run it alone, which blames it if the
                // executor is at fault.
                let q = &batch[next];
                let outcome = self.execute_stoppable(q.request, q.left(), q.stop);
                let stats = RunStats {
                    fuel: None,
                    restarts: self.take_restarts(),
                };
                done(next, outcome, stats);
                next += 1;
                continue;
            }
            for (k, q) in batch.iter().enumerate().take(sent).skip(next) {
                // The executor is on task k now (it answered every earlier one).
                let pidfd = match native.pidfd() {
                    Ok(pidfd) => pidfd,
                    Err(failure) => {
                        done(k, Err(failure), RunStats::default());
                        next = k + 1;
                        continue 'fresh;
                    }
                };
                if native.generation() != generation {
                    next = k;
                    continue 'fresh;
                }
                if !q.stop.watch_executor(pidfd) {
                    native.restart();
                    let stats = RunStats {
                        fuel: None,
                        restarts: native.take_restarts(),
                    };
                    done(k, Err(TaskFailure::stopped()), stats);
                    next = k + 1;
                    continue 'fresh;
                }
                let limit = config.native_policy(&q.request.package).max_output_bytes;
                let outcome = native.receive(q.deadline, q.hard_timeout, limit);
                q.stop.unwatch_executor();
                let outcome = match outcome {
                    Err(_) if q.stop.is_stopped() => Err(TaskFailure::stopped()),
                    outcome => outcome,
                };
                let stats = RunStats {
                    fuel: None,
                    restarts: native.take_restarts(),
                };
                done(k, outcome, stats);
                if native.generation() != generation {
                    // The executor was replaced: the tasks queued behind k went with it.
                    next = k + 1;
                    continue 'fresh;
                }
            }
            next = sent;
        }
    }

    /// Runs one task on the backend its package's policy picks. For wasm, the hard timeout is the
    /// smaller of `hard_timeout` and the package's sandbox timeout.
    ///
    /// # Errors
    /// The task's failure, with its kind.
    pub fn execute(
        &mut self,
        request: &Execute,
        hard_timeout: Duration,
    ) -> Result<TaskSuccess, TaskFailure> {
        self.execute_stoppable(request, hard_timeout, &Stop::default())
    }

    /// [`Slot::execute`], ended early when `stop` is stopped: the task then fails with
    /// [`TaskFailure::stopped`] (a native executor is killed for it and replaced).
    ///
    /// # Errors
    /// As [`Slot::execute`].
    pub fn execute_stoppable(
        &mut self,
        request: &Execute,
        hard_timeout: Duration,
        stop: &Stop,
    ) -> Result<TaskSuccess, TaskFailure> {
        match self.config.policy.backend_for(&request.package) {
            Backend::Native => {
                let limit = self.config.native_policy(&request.package).max_output_bytes;
                let native = self.native()?;
                if !stop.watch_executor(native.pidfd()?) {
                    return Err(TaskFailure::stopped());
                }
                let result = native.execute_with_limit(request, hard_timeout, limit);
                stop.unwatch_executor();
                match result {
                    Err(_) if stop.is_stopped() => Err(TaskFailure::stopped()),
                    result => result,
                }
            }
            Backend::Wasm => {
                let mut policy = self.config.wasm_policy(&request.package).clone();
                let hard_ms = u64::try_from(hard_timeout.as_millis()).unwrap_or(u64::MAX);
                policy.timeout_ms = policy.timeout_ms.min(hard_ms);
                let (outcome, fuel) = self.wasm.execute_measured(
                    &request.package,
                    &request.function,
                    &request.context,
                    &request.inputs,
                    &policy,
                    stop.flag(),
                );
                self.last_fuel = fuel;
                let (outputs, elapsed_ns) = outcome?;
                Ok(TaskSuccess {
                    outputs,
                    elapsed_ns,
                })
            }
        }
    }
}
