//! The ways a task can be run, each timed the same way: a [`BenchPath`] runs one task and returns
//! one [`Sample`]. [`all_paths`] is the list the bench walks — the place to add a path (the wasm
//! backend, for instance) so that it shows up in the criterion groups and the overhead table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use silk_executor_wasm::{HostConfig, SandboxPolicy, WasmHost};
use silk_ipc::Execute;
use silk_runtime::em::pool::child::find_executor_bin;
use silk_runtime::em::pool::{NativeExecutor, NativeExecutorConfig, TransportKind, WaitMode};
use silk_tdl::{Task, TaskContext};

/// The tasks the bench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchTask {
    /// `fixtures::noop`: no inputs, no outputs.
    Noop,
    /// `fixtures::sleep_and_echo`: sleeps 50 µs (nominal), echoes its input list.
    SleepAndEcho,
    /// `fixtures::echo_bytes`: echoes a string (payload sweep).
    EchoBytes,
}

impl BenchTask {
    /// The task's name in the `fixtures` package.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Noop => "noop",
            Self::SleepAndEcho => "sleep_and_echo",
            Self::EchoBytes => "echo_bytes",
        }
    }

    /// Calls the task in this process, as a native executor would.
    ///
    /// # Errors
    /// What the task returns.
    pub fn call_direct(
        self,
        ctx: TaskContext,
        inputs: &[u8],
    ) -> Result<Vec<u8>, silk_tdl::TdlError> {
        match self {
            Self::Noop => <fixtures::noop as Task>::call(ctx, inputs),
            Self::SleepAndEcho => <fixtures::sleep_and_echo as Task>::call(ctx, inputs),
            Self::EchoBytes => <fixtures::echo_bytes as Task>::call(ctx, inputs),
        }
    }
}

/// One timed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Wall time of the whole call as the caller (the EM) sees it.
    pub e2e_ns: u64,
    /// Time spent inside the executor as it measured it (`Response::elapsed_ns`); for the direct
    /// path, the call itself.
    pub executor_ns: u64,
}

/// A way of running a task.
pub trait BenchPath {
    /// Row label in tables and criterion ids.
    fn name(&self) -> &'static str;
    /// Runs `task` on `inputs` once.
    fn run(&mut self, task: BenchTask, inputs: &[u8]) -> Sample;
}

/// In-process direct call of the package's task: no IPC, no executor (the baseline).
#[derive(Debug)]
pub struct Direct {
    ctx: TaskContext,
}

impl Default for Direct {
    fn default() -> Self {
        Self {
            ctx: TaskContext::standalone(),
        }
    }
}

impl BenchPath for Direct {
    fn name(&self) -> &'static str {
        "direct (in-process)"
    }

    fn run(&mut self, task: BenchTask, inputs: &[u8]) -> Sample {
        let ctx = self.ctx.clone();
        let start = Instant::now();
        let out = task.call_direct(ctx, inputs);
        let ns = nanos(start.elapsed());
        std::hint::black_box(out.expect("fixture tasks succeed"));
        Sample {
            e2e_ns: ns,
            executor_ns: ns,
        }
    }
}

/// A `silk-executor-native` child reached over one transport.
#[derive(Debug)]
pub struct Native {
    name: &'static str,
    executor: NativeExecutor,
    context: Vec<u8>,
}

/// `target/packages`, where `scripts/build-packages` stages the packages.
///
/// # Panics
/// If `libfixtures.so` is not staged there.
#[must_use]
pub fn packages_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/packages");
    assert!(
        dir.join("libfixtures.so").is_file(),
        "no packages in {}: run scripts/build-packages first",
        dir.display()
    );
    dir
}

impl Native {
    /// Spawns an executor over `transport` (`wait` applies to shm).
    ///
    /// # Panics
    /// If the executor binary is missing or the transport cannot be set up as asked.
    #[must_use]
    pub fn spawn(name: &'static str, transport: TransportKind, wait: WaitMode) -> Self {
        let bin = find_executor_bin().expect(
            "silk-executor-native not found next to the bench: run `cargo build --release -p silk-executor-native`",
        );
        let mut config = NativeExecutorConfig::new(bin, packages_dir()).with_transport(transport);
        config.shm_wait = wait;
        let executor = NativeExecutor::spawn(config).expect("executor starts");
        assert_eq!(
            executor.transport(),
            Some(transport),
            "{name}: transport not available"
        );
        Self {
            name,
            executor,
            context: TaskContext::standalone().to_msgpack(),
        }
    }
}

impl BenchPath for Native {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&mut self, task: BenchTask, inputs: &[u8]) -> Sample {
        let request = Execute {
            package: "fixtures".into(),
            function: task.name().into(),
            context: self.context.clone(),
            inputs: inputs.to_vec(),
        };
        let start = Instant::now();
        let out = self.executor.execute(&request, Duration::from_secs(60));
        let e2e_ns = nanos(start.elapsed());
        let out = out.unwrap_or_else(|e| panic!("{}: {} failed: {e}", self.name, task.name()));
        Sample {
            e2e_ns,
            executor_ns: out.elapsed_ns,
        }
    }
}

/// The wasm sandbox in this process: a fresh store and instance per task (the cost the EM pays per
/// wasm task). There is no transport, so `executor_ns` is the sandbox's whole run (store,
/// instantiate, copy in, call, copy out, drop) and E2E adds only the call into the host. The host
/// runs without fuel metering, as an EM does when no package sets fuel.
#[derive(Debug)]
pub struct Wasm {
    host: WasmHost,
    policy: SandboxPolicy,
    context: Vec<u8>,
}

impl Wasm {
    /// A host over the staged `fixtures.wasm`, compiled before the first sample.
    ///
    /// # Panics
    /// If the host cannot start or the package cannot be loaded.
    #[must_use]
    pub fn new() -> Self {
        let config = HostConfig {
            max_concurrent_tasks: 1,
            fuel_metering: false,
            package_dir: Some(packages_dir()),
            ..HostConfig::default()
        };
        let host = WasmHost::new(config).expect("wasm host starts");
        host.load_file(&packages_dir().join("fixtures.wasm"))
            .expect("fixtures.wasm loads");
        Self {
            host,
            policy: SandboxPolicy::default(),
            context: TaskContext::standalone().to_msgpack(),
        }
    }
}

impl Default for Wasm {
    fn default() -> Self {
        Self::new()
    }
}

impl BenchPath for Wasm {
    fn name(&self) -> &'static str {
        "wasm (fresh instance)"
    }

    fn run(&mut self, task: BenchTask, inputs: &[u8]) -> Sample {
        let start = Instant::now();
        let out = self
            .host
            .execute("fixtures", task.name(), &self.context, inputs, &self.policy);
        let e2e_ns = nanos(start.elapsed());
        let (out, executor_ns) =
            out.unwrap_or_else(|e| panic!("wasm: {} failed: {e}", task.name()));
        std::hint::black_box(out);
        Sample {
            e2e_ns,
            executor_ns,
        }
    }
}

/// Starts a path; paths are started one at a time, right before they are measured, so an idle
/// executor of another path neither competes for the CPUs nor changes the spin policy.
pub type PathFactory = fn() -> Box<dyn BenchPath>;

/// Every path the bench measures, in order. Paths added here join both the criterion groups and
/// the overhead table.
#[must_use]
pub fn all_paths() -> Vec<(&'static str, PathFactory)> {
    vec![
        ("direct (in-process)", || Box::new(Direct::default())),
        ("native + shm (adaptive spin)", || {
            Box::new(Native::spawn(
                "native + shm (adaptive spin)",
                TransportKind::Shm,
                WaitMode::Adaptive,
            ))
        }),
        ("native + shm (parked)", || {
            Box::new(Native::spawn(
                "native + shm (parked)",
                TransportKind::Shm,
                WaitMode::Park,
            ))
        }),
        ("native + pipe", || {
            Box::new(Native::spawn(
                "native + pipe",
                TransportKind::Pipe,
                WaitMode::Park,
            ))
        }),
        ("wasm (fresh instance)", || Box::new(Wasm::new())),
    ]
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
