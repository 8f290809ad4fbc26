//! One executor slot of an EM's pool: runs each task on the backend its package's policy picks —
//! a native executor child for allow-listed (trusted) packages, the wasm sandbox for every other
//! package — with per-package wasm limits.
//!
//! A slot runs one task at a time and blocks while it does: give each slot its own thread.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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

/// An executor slot.
#[derive(Debug)]
pub struct Slot {
    config: Arc<SlotConfig>,
    wasm: WasmHost,
    // Started on the first native task, so a wasm-only EM never spawns a native executor.
    native: Option<NativeExecutor>,
}

impl Slot {
    /// A slot sharing `config` and the EM's wasm host.
    #[must_use]
    pub fn new(config: Arc<SlotConfig>, wasm: WasmHost) -> Self {
        Self {
            config,
            wasm,
            native: None,
        }
    }

    /// The process id of this slot's native executor, if it has started one.
    #[must_use]
    pub fn native_pid(&self) -> Option<u32> {
        self.native.as_ref().and_then(NativeExecutor::pid)
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
                let native =
                    match &mut self.native {
                        Some(n) => n,
                        None => {
                            let started = NativeExecutor::spawn(self.config.native.clone())
                                .map_err(|e| TaskFailure::Crashed {
                                    status: format!("executor could not be started: {e}"),
                                })?;
                            self.native.insert(started)
                        }
                    };
                let limit = self.config.native_policy(&request.package).max_output_bytes;
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
                let (outputs, elapsed_ns) = self.wasm.execute_stoppable(
                    &request.package,
                    &request.function,
                    &request.context,
                    &request.inputs,
                    &policy,
                    stop.flag(),
                )?;
                Ok(TaskSuccess {
                    outputs,
                    elapsed_ns,
                })
            }
        }
    }
}
