//! The `silk` command line: argument types and the commands behind them. The binary only parses
//! arguments, sets up logging and calls [`run`].

pub mod config_file;
pub mod dev;
pub mod em;
pub mod exit_code;
pub mod job;
pub mod json;
pub mod package;
pub mod scheduler;
pub mod storage;
pub mod task_run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// silk: a distributed task runtime with a WebAssembly sandbox and a shared-memory fast path.
#[derive(Debug, Parser)]
#[command(name = "silk", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Threads that run the command's async work (gRPC, bookkeeping). Tasks, SQLite and other
    /// blocking work have threads of their own, so this is a quarter of the CPUs, at least one,
    /// by default. Raise it for a storage serving many execution managers on a large machine.
    #[arg(
        long,
        global = true,
        env = "SILK_ASYNC_THREADS",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub async_threads: Option<u16>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a local cluster in one process: storage (SQLite), a scheduler and an execution
    /// manager, on loopback. For development, not for production.
    ///
    /// It prints where it listens and what to try next. The first Ctrl-C drains (running tasks
    /// finish); a second one stops at once.
    ///
    /// Exit codes: 0 after a clean stop, 1 when the cluster cannot start or fails, 130 after a
    /// second Ctrl-C.
    ///
    /// Example:
    ///   silk dev --packages target/packages --trust fixtures
    Dev(dev::DevArgs),
    /// Submit jobs and follow them: submit, status, wait, outputs, cancel, list.
    ///
    /// Connects to storage at --address (or SILK_ADDRESS; default http://127.0.0.1:50051, where
    /// `silk dev` listens). Submitted jobs belong to the resource group --group (SILK_GROUP),
    /// created on first use with the secret in SILK_GROUP_SECRET; `list` shows that group's jobs.
    /// The other commands take a job id; with authentication on (docs/deploy.md), storage
    /// answers only for jobs of the group whose token the client holds.
    ///
    /// Example:
    ///   silk job submit docs/examples/diamond.json --inputs docs/examples/diamond-inputs.json
    #[command(after_long_help = job::EXIT_CODES)]
    Job(job::JobArgs),
    /// Work with single tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Work with package files: `silk package inspect FILE` shows a package's name, ABI version
    /// and tasks (with their input and output types) without running any of its code in `silk`.
    ///
    /// Exit codes (inspect): 0 ok, 1 silk itself failed, 2 bad usage or a missing file, 3 not a
    /// silk package, 4 another ABI version, 5 a package that breaks the ABI.
    ///
    /// Example:
    ///   silk package inspect target/packages/libfixtures.so -o json
    #[command(subcommand)]
    Package(package::PackageCommand),
    /// Run the storage service (gRPC; SQLite or MySQL/MariaDB). Stops cleanly on SIGTERM/SIGINT.
    ///
    /// Exit codes: 0 after a clean shutdown, 1 on a startup or server error, 2 on a config error.
    ///
    /// Example:
    ///   silk storage --config storage.toml --db sqlite:/var/lib/silk/storage.db
    Storage(storage::StorageArgs),
    /// Run the scheduler service (gRPC): pulls ready tasks from storage, orders them fairly and
    /// hands them to execution managers. Survives storage restarts. Stops on SIGTERM/SIGINT.
    ///
    /// Exit codes: 0 after a clean shutdown, 1 on a startup or server error, 2 on a config error.
    ///
    /// Example:
    ///   silk scheduler --config scheduler.toml --storage-url http://127.0.0.1:50051
    Scheduler(scheduler::SchedulerArgs),
    /// Run an execution manager: pulls assignments from the scheduler and runs them on a pool of
    /// executor slots (native for trusted packages, wasm otherwise). The first SIGTERM/SIGINT
    /// drains; a second one stops at once.
    ///
    /// Exit codes: 0 after a drain, 1 on a startup error or when storage declared it dead, 2 on
    /// a config error.
    ///
    /// Example:
    ///   silk em --config em.toml --slots 4
    Em(em::EmArgs),
}

impl Cli {
    /// How this command logs: services log JSON when not on a terminal.
    #[must_use]
    pub fn log_style(&self) -> crate::logging::Style {
        match self.command {
            Command::Storage(_) => crate::logging::Style::Service,
            Command::Scheduler(_) => crate::logging::Style::Service,
            Command::Em(_) => crate::logging::Style::Service,
            Command::Task(_) => crate::logging::Style::Command,
            Command::Package(_) => crate::logging::Style::Command,
            Command::Dev(_) | Command::Job(_) => crate::logging::Style::Command,
        }
    }
}

/// `silk task ...`
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run one task of a package locally, in a fresh executor, and print its outputs as JSON.
    Run(task_run::TaskRunArgs),
}

/// The default of `--async-threads`: a quarter of the CPUs, at least one. The async side of a
/// service is its light part — tasks, SQLite and blocking work run on threads of their own — and
/// every extra worker adds wake-ups between workers: on two vCPUs the e2e bench's control plane
/// took about 20 µs of CPU per task with two workers and about 17 µs with one, and ran faster.
fn default_async_threads() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cpus / 4).max(1)
}

/// A command's tokio runtime, with `threads` workers (at least one; default: a quarter of the
/// CPUs, at least one).
///
/// # Errors
/// When the runtime cannot start (threads or the I/O driver cannot be created).
pub fn build_runtime(threads: Option<u16>) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.map_or_else(default_async_threads, |n| usize::from(n).max(1)))
        .enable_all()
        .build()
}

/// [`build_runtime`]; when it cannot start, logs why and gives the exit code.
pub(crate) fn tokio_runtime(threads: Option<u16>) -> Result<tokio::runtime::Runtime, ExitCode> {
    build_runtime(threads).map_err(|e| {
        tracing::error!(error = %e, "cannot start the async runtime");
        ExitCode::FAILURE
    })
}

/// Runs a parsed command line.
#[must_use]
pub fn run(cli: &Cli) -> ExitCode {
    match &cli.command {
        Command::Task(TaskCommand::Run(args)) => task_run::run(args),
        Command::Package(command) => package::run(command),
        Command::Storage(args) => storage::run(args, cli.async_threads),
        Command::Scheduler(args) => scheduler::run(args, cli.async_threads),
        Command::Em(args) => em::run(args, cli.async_threads),
        Command::Dev(args) => dev::run(args, cli.async_threads),
        Command::Job(args) => job::run(args, cli.async_threads),
    }
}
