//! [`WasmHost`]: the public face of the crate. Owns the engine, its epoch ticker, the linker,
//! the module cache and the loaded packages (by name), and runs tasks, each in a fresh instance.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use silk_ipc::{InspectError, PackageInfo, TaskFailure};
use silk_tdl::TaskContext;
use silk_tdl::abi::is_valid_package_name;
use wasmtime::{Engine, Linker};

use crate::cache::ModuleCache;
use crate::config::{HostConfig, SandboxPolicy};
use crate::engine::{EpochTicker, build_engine};
use crate::error::HostError;
use crate::linker::build_linker;
use crate::output::Captured;
use crate::package::{self, LoadEnv, Package};
use crate::run::run_task;
use crate::sandbox::{GuestState, Sandbox};

type Slot = Arc<OnceLock<Result<Arc<Package>, TaskFailure>>>;

/// Runs untrusted task packages in wasmtime. Cheap to clone (clones share everything); create
/// one per execution manager.
///
/// Every method is synchronous and runs guest code on the calling thread. Call it from a
/// dedicated thread (or `tokio::task::spawn_blocking`), never from an async task: WASI host
/// calls block, and they panic on a tokio worker thread. At most
/// [`HostConfig::max_concurrent_tasks`] threads may call into one host at a time.
#[derive(Clone)]
pub struct WasmHost {
    inner: Arc<Inner>,
}

struct Inner {
    config: HostConfig,
    engine: Engine,
    linker: Linker<GuestState>,
    cache: ModuleCache,
    probe_policy: SandboxPolicy,
    packages: Mutex<HashMap<String, Slot>>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmHost")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A task's output frame and the time it took, or its failure.
pub type TaskResult = Result<(Vec<u8>, u64), TaskFailure>;

/// The full result of one task, including what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRun {
    /// The output frame, or why there is none.
    pub outcome: Result<Vec<u8>, TaskFailure>,
    /// Time spent in the host for this task, package lookup included.
    pub elapsed_ns: u64,
    /// What the guest wrote to stdout (bounded).
    pub stdout: Captured,
    /// What the guest wrote to stderr (bounded).
    pub stderr: Captured,
    /// Fuel the task burnt, when the host meters fuel and the task got as far as a sandbox.
    pub fuel_consumed: Option<u64>,
}

impl WasmHost {
    /// Creates the engine (and its pool), the epoch ticker thread and the module cache.
    ///
    /// # Errors
    /// [`HostError`] when the configuration is out of range or wasmtime refuses it.
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        if config.max_concurrent_tasks == 0 || config.epoch_tick_ms == 0 {
            return Err(HostError::Config(
                "max_concurrent_tasks and epoch_tick_ms must be at least 1".into(),
            ));
        }
        let engine = build_engine(&config)?;
        let linker = build_linker(&engine)?;
        let cache = ModuleCache::new(engine.clone(), config.cache_dir.clone())?;
        let ticker =
            EpochTicker::start(engine.clone(), Duration::from_millis(config.epoch_tick_ms))?;
        let defaults = SandboxPolicy::default();
        let probe_policy = SandboxPolicy {
            max_memory_bytes: defaults.max_memory_bytes.min(config.max_memory_bytes),
            ..defaults
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                engine,
                linker,
                cache,
                probe_policy,
                packages: Mutex::new(HashMap::new()),
                _ticker: ticker,
            }),
        })
    }

    /// The configuration the host was created with.
    #[must_use]
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    fn env(&self) -> LoadEnv<'_> {
        LoadEnv {
            engine: &self.inner.engine,
            linker: &self.inner.linker,
            cache: &self.inner.cache,
            fuel_metering: self.inner.config.fuel_metering,
            probe_policy: &self.inner.probe_policy,
        }
    }

    fn packages(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.inner
            .packages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads the module in `path` and registers it under the name it declares (replacing a
    /// package of that name). Returns that name.
    ///
    /// # Errors
    /// [`TaskFailure::Package`] naming what is wrong with the file or the module.
    pub fn load_file(&self, path: &Path) -> Result<String, TaskFailure> {
        let bytes = std::fs::read(path)
            .map_err(|e| TaskFailure::package(format!("cannot read {}: {e}", path.display())))?;
        self.load_bytes(&bytes, &path.display().to_string())
    }

    /// Loads a module from memory (`origin` names it in messages) and registers it under the
    /// name it declares. Returns that name.
    ///
    /// # Errors
    /// [`TaskFailure::Package`] naming what is wrong with the module.
    pub fn load_bytes(&self, bytes: &[u8], origin: &str) -> Result<String, TaskFailure> {
        let package = Package::load(&self.env(), bytes, origin, None)?;
        let name = package.name().to_owned();
        let slot: Slot = Arc::new(OnceLock::from(Ok(Arc::new(package))));
        self.packages().insert(name.clone(), slot);
        Ok(name)
    }

    /// Reads the name, ABI version and task list of the module in `path` through its exports,
    /// after the same checks as a load (compile, imports, ABI version, exports, name), in a probe
    /// instance with the sandbox's usual policy (no files, no network, no environment). The
    /// package's init hook does not run and nothing is registered.
    ///
    /// # Errors
    /// [`InspectError`] of the class of what is wrong with the file or the module.
    pub fn inspect_file(&self, path: &Path) -> Result<PackageInfo, InspectError> {
        let bytes = std::fs::read(path).map_err(|e| InspectError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        self.inspect_bytes(&bytes, &path.display().to_string())
    }

    /// [`WasmHost::inspect_file`] for a module in memory (`origin` names it in messages).
    ///
    /// # Errors
    /// [`InspectError`] of the class of what is wrong with the module.
    pub fn inspect_bytes(&self, bytes: &[u8], origin: &str) -> Result<PackageInfo, InspectError> {
        package::inspect(&self.env(), bytes, origin)
    }

    /// The package `name`: loaded before, or found as `<package_dir>/<name>.wasm` and loaded
    /// once. A load that failed is remembered (a failing init does not run again for every
    /// task); a missing file is looked for again next time.
    fn package(&self, name: &str) -> Result<Arc<Package>, TaskFailure> {
        if !is_valid_package_name(name) {
            return Err(TaskFailure::package(format!(
                "invalid package name {name:?}: use 1-128 ASCII letters, digits, `_` or `-`"
            )));
        }
        let slot = {
            let mut packages = self.packages();
            if let Some(slot) = packages.get(name) {
                Arc::clone(slot)
            } else {
                let Some(dir) = &self.inner.config.package_dir else {
                    return Err(TaskFailure::package(format!(
                        "package `{name}` not found: not loaded and no package directory configured"
                    )));
                };
                let path = dir.join(format!("{name}.wasm"));
                if !path.is_file() {
                    return Err(TaskFailure::package(format!(
                        "package `{name}` not found: no file {} (`{name}` is not trusted, so it \
                         runs sandboxed from {name}.wasm; a trusted package runs natively from \
                         lib{name}.so: `native_packages` in the EM config, `silk dev --trust \
                         {name}`)",
                        path.display()
                    )));
                }
                Arc::clone(packages.entry(name.to_owned()).or_default())
            }
        };
        slot.get_or_init(|| {
            let dir = self
                .inner
                .config
                .package_dir
                .as_deref()
                .unwrap_or(Path::new("."));
            let path = dir.join(format!("{name}.wasm"));
            let bytes = std::fs::read(&path).map_err(|e| {
                TaskFailure::package(format!("cannot read {}: {e}", path.display()))
            })?;
            Package::load(&self.env(), &bytes, &path.display().to_string(), Some(name))
                .map(Arc::new)
        })
        .clone()
    }

    fn check_policy(&self, policy: &SandboxPolicy) -> Result<(), TaskFailure> {
        let config = &self.inner.config;
        if policy.max_memory_bytes > config.max_memory_bytes {
            return Err(TaskFailure::package(format!(
                "sandbox policy: max_memory_bytes {} exceeds the host's limit of {} bytes",
                policy.max_memory_bytes, config.max_memory_bytes
            )));
        }
        if policy.fuel.is_some() && !config.fuel_metering {
            return Err(TaskFailure::package(
                "sandbox policy: fuel is set but the host runs without fuel metering",
            ));
        }
        Ok(())
    }

    /// Runs task `function` of `package` with a MessagePack [`TaskContext`] and an input frame,
    /// under `policy`, in a fresh instance; returns everything, captured output included.
    #[must_use]
    pub fn run(
        &self,
        package: &str,
        function: &str,
        context: &[u8],
        inputs: &[u8],
        policy: &SandboxPolicy,
    ) -> TaskRun {
        self.run_stoppable(package, function, context, inputs, policy, &Arc::default())
    }

    /// [`WasmHost::run`], stopped within an epoch tick (or a sleeping guest's next check) once
    /// `stop` is set: the task then fails `Crashed`, saying it was stopped.
    #[must_use]
    pub fn run_stoppable(
        &self,
        package: &str,
        function: &str,
        context: &[u8],
        inputs: &[u8],
        policy: &SandboxPolicy,
        stop: &Arc<AtomicBool>,
    ) -> TaskRun {
        let start = Instant::now();
        let mut sandbox = None;
        let outcome = self
            .check_policy(policy)
            .and_then(|()| self.package(package))
            .and_then(|pkg| {
                let sb = sandbox.insert(Sandbox::new(
                    &self.inner.engine,
                    policy,
                    self.inner.config.fuel_metering,
                    stop.clone(),
                ));
                run_task(&pkg, sb, function, context, inputs, policy)
            });
        let fuel_consumed = sandbox.as_ref().and_then(Sandbox::fuel_consumed);
        let (stdout, stderr) = sandbox.map(|sb| sb.take_output()).unwrap_or_default();
        TaskRun {
            outcome,
            elapsed_ns: u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            stdout,
            stderr,
            fuel_consumed,
        }
    }

    /// Runs a task like [`WasmHost::run`], forwards its captured stdout/stderr to `tracing`
    /// (with job and task ids) and returns the output frame and the time spent.
    ///
    /// # Errors
    /// The task's [`TaskFailure`], of the kind that stopped it.
    pub fn execute(
        &self,
        package: &str,
        function: &str,
        context: &[u8],
        inputs: &[u8],
        policy: &SandboxPolicy,
    ) -> Result<(Vec<u8>, u64), TaskFailure> {
        self.execute_measured(package, function, context, inputs, policy, &Arc::default())
            .0
    }

    /// As [`WasmHost::execute`], stopped once `stop` is set (see [`WasmHost::run_stoppable`]),
    /// also returning the fuel the task burnt (see [`TaskRun::fuel_consumed`]), failed tasks
    /// included.
    pub fn execute_measured(
        &self,
        package: &str,
        function: &str,
        context: &[u8],
        inputs: &[u8],
        policy: &SandboxPolicy,
        stop: &Arc<AtomicBool>,
    ) -> (TaskResult, Option<u64>) {
        let run = self.run_stoppable(package, function, context, inputs, policy, stop);
        log_output(package, function, context, &run);
        let elapsed_ns = run.elapsed_ns;
        (run.outcome.map(|out| (out, elapsed_ns)), run.fuel_consumed)
    }
}

fn log_output(package: &str, function: &str, context: &[u8], run: &TaskRun) {
    let streams = [("stdout", &run.stdout), ("stderr", &run.stderr)];
    if streams
        .iter()
        .all(|(_, c)| c.bytes.is_empty() && c.dropped_bytes == 0)
    {
        return;
    }
    let ctx = TaskContext::from_msgpack(context).ok();
    let job_id = ctx.as_ref().map(|c| c.job_id.0);
    let task = ctx.as_ref().map(|c| c.task_id.to_string());
    for (stream, captured) in streams {
        if captured.bytes.is_empty() && captured.dropped_bytes == 0 {
            continue;
        }
        tracing::info!(
            job_id,
            task = task.as_deref(),
            package,
            function,
            stream,
            dropped_bytes = captured.dropped_bytes,
            output = %String::from_utf8_lossy(&captured.bytes),
            "guest output"
        );
    }
}
