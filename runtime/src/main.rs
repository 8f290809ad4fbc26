//! The `silk` binary: parse arguments, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    silk_runtime::memory::return_large_blocks();
    let cli = silk_runtime::cli::Cli::parse();
    silk_runtime::logging::init(cli.log_style(), "warn,silk=info");
    silk_runtime::cli::run(&cli)
}
