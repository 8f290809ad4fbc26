//! The `silk` command line: argument types and the commands behind them. The binary only parses
//! arguments, sets up logging and calls [`run`].

pub mod json;
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
}

/// `silk task ...`
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run one task of a package locally, in a fresh executor, and print its outputs as JSON.
    ///
    /// Example:
    ///   silk task run --package target/packages/libfixtures.so --task fibonacci --inputs '[10]'
    Run(task_run::TaskRunArgs),
}

/// Runs a parsed command line.
#[must_use]
pub fn run(cli: &Cli) -> ExitCode {
    match &cli.command {
        Command::Task(TaskCommand::Run(args)) => task_run::run(args),
    }
}
