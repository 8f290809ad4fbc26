//! `silk-executor-native`: the child process an execution manager spawns to run trusted native
//! packages. Not meant to be run by hand.
//!
//! Usage: `silk-executor-native --package-dir DIR`. Speaks the silk IPC protocol on
//! stdin/stdout; logs to stderr. Exits 0 on `Shutdown` or when the EM closes the pipe, 1 on a
//! transport error, 2 on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use silk_executor_native::Executor;
use silk_ipc::pipe::PipeServer;

fn main() -> ExitCode {
    // Die with the EM. The EM also closes our pipes when it dies, which ends `serve`.
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
    {
        eprintln!("silk-executor-native: cannot set parent-death signal: {e}");
    }
    let mut args = std::env::args_os().skip(1);
    let package_dir = match (args.next(), args.next(), args.next()) {
        (Some(flag), Some(dir), None) if flag == "--package-dir" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: silk-executor-native --package-dir DIR");
            return ExitCode::from(2);
        }
    };
    let mut transport = match PipeServer::take_stdio() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("silk-executor-native: cannot set up the pipe transport: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Executor::new(package_dir).serve(&mut transport) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("silk-executor-native: {e}");
            ExitCode::FAILURE
        }
    }
}
