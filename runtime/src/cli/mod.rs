//! The `silk` command line: argument types and the commands behind them. The binary only parses
//! arguments, sets up logging and calls [`run`].

pub mod config_file;
pub mod em;
pub mod json;
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
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with single tasks.
    #[command(subcommand)]
    Task(TaskCommand),
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
        }
    }
}

/// `silk task ...`
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run one task of a package locally, in a fresh executor, and print its outputs as JSON.
    Run(task_run::TaskRunArgs),
}

/// Runs a parsed command line.
#[must_use]
pub fn run(cli: &Cli) -> ExitCode {
    match &cli.command {
        Command::Task(TaskCommand::Run(args)) => task_run::run(args),
        Command::Storage(args) => storage::run(args),
        Command::Scheduler(args) => scheduler::run(args),
        Command::Em(args) => em::run(args),
    }
}
