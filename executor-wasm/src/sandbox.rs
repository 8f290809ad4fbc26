//! One task's sandbox: a fresh `Store` with its limits (memory, tables, fuel, deadline), a WASI
//! context with nothing in it but bounded stdout/stderr, clocks and random, and the helpers to
//! move bytes in and out of guest memory. Also turns whatever stopped the guest into a
//! [`TaskFailure`] of the right kind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use silk_ipc::TaskFailure;
use wasmtime::{
    Engine, Instance, Memory, ModuleExport, ResourceLimiter, Store, Trap, TypedFunc,
    UpdateDeadline, WasmParams, WasmResults,
};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::cache::error_text;
use crate::config::{SandboxPolicy, usize_of};
use crate::output::{CappedPipe, Captured};
use crate::poll::GuestClock;

/// Elements a guest table may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The guest hit its hard timeout (raised by the epoch callback).
#[derive(Debug, thiserror::Error)]
#[error("task exceeded its hard timeout")]
pub(crate) struct TimedOut;

/// The host asked the guest to stop (its task is no longer wanted), noticed by the epoch
/// callback or a sleeping `poll_oneoff`.
#[derive(Debug, thiserror::Error)]
#[error("task stopped by the host")]
pub(crate) struct Stopped;

/// The guest asked for more linear memory than its policy allows.
#[derive(Debug, thiserror::Error)]
#[error("linear memory of {desired} bytes requested, limit is {limit} bytes")]
pub(crate) struct MemoryDenied {
    desired: usize,
    limit: usize,
}

/// Per-store resource limits; remembers a denied memory growth for the failure report.
#[derive(Debug)]
pub(crate) struct Limits {
    max_memory: usize,
    denied: Option<usize>,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.denied = Some(desired);
            return Err(wasmtime::Error::new(MemoryDenied {
                desired,
                limit: self.max_memory,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// A task's WASI context and the streams it captures stdout and stderr into.
struct Wasi {
    ctx: WasiP1Ctx,
    stdout: CappedPipe,
    stderr: CappedPipe,
}

impl Wasi {
    /// The builder's defaults already give no args, no env, no preopens and closed stdin;
    /// sockets and name lookup are switched off explicitly.
    fn new(max_log_bytes: usize, clock_zero: Instant) -> Self {
        let stdout = CappedPipe::new(max_log_bytes);
        let stderr = CappedPipe::new(max_log_bytes);
        let ctx = WasiCtxBuilder::new()
            .monotonic_clock(GuestClock(clock_zero))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build_p1();
        Self {
            ctx,
            stdout,
            stderr,
        }
    }
}

/// The data of a task's store.
pub(crate) struct GuestState {
    /// Built on the guest's first WASI call (most tasks make none): building it is a good part
    /// of a small task's cost. Until then the guest has written nothing.
    wasi: Option<Wasi>,
    max_log_bytes: usize,
    pub(crate) limits: Limits,
    /// The message the guest handed over through `silk.panic`, if it did.
    pub(crate) panic: Option<String>,
    /// When the hard timeout expires.
    pub(crate) deadline: Instant,
    /// Set by the host to stop the task early.
    pub(crate) stop: Arc<AtomicBool>,
    /// Zero of the guest's monotonic clock.
    pub(crate) clock_zero: Instant,
}

impl GuestState {
    /// Whether the host asked the task to stop.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The task's WASI context, built on first use.
    pub(crate) fn wasi(&mut self) -> &mut WasiP1Ctx {
        let (max_log_bytes, clock_zero) = (self.max_log_bytes, self.clock_zero);
        &mut self
            .wasi
            .get_or_insert_with(|| Wasi::new(max_log_bytes, clock_zero))
            .ctx
    }
}

/// A fresh store for one task, with its captured output streams.
pub(crate) struct Sandbox {
    pub(crate) store: Store<GuestState>,
    timeout_ms: u64,
    fuel: Option<u64>,
    max_memory: u64,
}

impl Sandbox {
    /// A store limited by `policy`; the timeout runs from now; setting `stop` stops the guest
    /// within an epoch tick.
    pub(crate) fn new(
        engine: &Engine,
        policy: &SandboxPolicy,
        fuel_metering: bool,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let clock_zero = Instant::now();
        let state = GuestState {
            wasi: None,
            max_log_bytes: usize_of(policy.max_log_bytes),
            limits: Limits {
                max_memory: usize_of(policy.max_memory_bytes),
                denied: None,
            },
            panic: None,
            deadline: clock_zero + Duration::from_millis(policy.timeout_ms),
            stop,
            clock_zero,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        if fuel_metering {
            // Only fails when fuel metering is off, which `fuel_metering` rules out.
            let _ = store.set_fuel(policy.fuel.unwrap_or(u64::MAX));
        }
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if ctx.data().stopped() {
                Err(wasmtime::Error::new(Stopped))
            } else if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::new(TimedOut))
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        Self {
            store,
            timeout_ms: policy.timeout_ms,
            fuel: policy.fuel,
            max_memory: policy.max_memory_bytes,
        }
    }

    /// The policy's linear memory limit.
    pub(crate) fn max_memory(&self) -> u64 {
        self.max_memory
    }

    /// What the guest wrote to stdout and stderr.
    pub(crate) fn take_output(&self) -> (Captured, Captured) {
        self.store
            .data()
            .wasi
            .as_ref()
            .map(|w| (w.stdout.take(), w.stderr.take()))
            .unwrap_or_default()
    }

    /// A typed export of `instance` (its type was checked at load).
    pub(crate) fn func<P: WasmParams, R: WasmResults>(
        &mut self,
        instance: &Instance,
        name: &str,
    ) -> Result<TypedFunc<P, R>, TaskFailure> {
        instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .map_err(|e| TaskFailure::package(format!("export `{name}`: {}", error_text(&e))))
    }

    /// A typed export of `instance` by its index (`name` only for messages; its type was
    /// checked at load).
    pub(crate) fn func_at<P: WasmParams, R: WasmResults>(
        &mut self,
        instance: &Instance,
        export: &ModuleExport,
        name: &str,
    ) -> Result<TypedFunc<P, R>, TaskFailure> {
        instance
            .get_module_export(&mut self.store, export)
            .and_then(wasmtime::Extern::into_func)
            .ok_or_else(|| TaskFailure::package(format!("missing export `{name}`")))?
            .typed::<P, R>(&self.store)
            .map_err(|e| TaskFailure::package(format!("export `{name}`: {}", error_text(&e))))
    }

    /// The guest's memory export.
    pub(crate) fn memory(&mut self, instance: &Instance) -> Result<Memory, TaskFailure> {
        instance
            .get_memory(&mut self.store, silk_tdl::abi::WASM_SYM_MEMORY)
            .ok_or_else(|| TaskFailure::package("missing export `memory`"))
    }

    /// Copies `len` bytes at `ptr` out of guest memory.
    pub(crate) fn read(&self, memory: Memory, ptr: u32, len: u32) -> Result<Vec<u8>, TaskFailure> {
        let start = usize_of(u64::from(ptr));
        let end = start.checked_add(usize_of(u64::from(len)));
        end.and_then(|end| memory.data(&self.store).get(start..end))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                TaskFailure::package(format!(
                    "buffer of {len} bytes at {ptr:#x} lies outside guest memory"
                ))
            })
    }

    /// Reads a `(ptr u32 LE, len u32 LE)` result record.
    pub(crate) fn read_record(&self, memory: Memory, at: u32) -> Result<(u32, u32), TaskFailure> {
        let b = self.read(memory, at, 8)?;
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok((word(0), word(4)))
    }

    /// Turns the error that stopped the guest into a failure of the right kind.
    pub(crate) fn classify(&mut self, err: &wasmtime::Error) -> TaskFailure {
        let state = self.store.data_mut();
        if let Some(message) = state.panic.take() {
            return TaskFailure::Panicked { message };
        }
        if let Some(desired) = state.limits.denied.take() {
            return TaskFailure::MemoryLimit {
                limit_bytes: self.max_memory,
                message: format!("the guest asked for {desired} bytes of linear memory"),
            };
        }
        if err.is::<Stopped>() {
            return TaskFailure::stopped();
        }
        if err.is::<TimedOut>() || err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return TaskFailure::Timeout {
                after_ms: self.timeout_ms,
            };
        }
        if let Some(exit) = err.downcast_ref::<I32Exit>() {
            return TaskFailure::Trap {
                code: "Exit".into(),
                message: format!("the guest called proc_exit({})", exit.0),
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => TaskFailure::OutOfFuel {
                fuel: self.fuel.unwrap_or(u64::MAX),
            },
            Some(trap) => TaskFailure::Trap {
                code: format!("{trap:?}"),
                message: trap.to_string(),
            },
            None => TaskFailure::Trap {
                code: "HostError".into(),
                message: error_text(err),
            },
        }
    }
}
