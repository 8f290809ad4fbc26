//! `silk-executor-native`: the child process an execution manager spawns to run trusted native
//! packages. Not meant to be run by hand.
//!
//! Usage: `silk-executor-native --package-dir DIR [--shm-fd N [--shm-wait adaptive|park]]`.
//! With `--shm-fd`, speaks the silk IPC protocol over the shared-memory segment at inherited fd
//! `N` (and points stdout at stderr); without it, over stdin/stdout. Logs to stderr. Exits 0 on
//! `Shutdown` or when the EM closes the connection or dies, 1 on a transport error or a segment it
//! cannot use, 2 on bad arguments.
//!
//! Usage: `silk-executor-native --inspect PATH` (run by `silk package inspect`). Loads the
//! library, checks it like a load does without running its init hook, prints one JSON object
//! (name, ABI version, task list; see `silk_executor_native::inspect`) on stdout and exits 0.
//! Whatever the library prints to stdout while it loads goes to stderr. On error prints
//! `error: <message>` on stderr and exits 1 (I/O), 2 (bad arguments), 3 (not a silk package),
//! 4 (another ABI version) or 5 (a package that breaks the ABI).

use std::num::NonZeroU64;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use silk_executor_native::{Executor, inspect, inspect_package, take_inherited_fd};
use silk_ipc::pipe::PipeServer;
use silk_ipc::shm::{Segment, ShmServer, WaitMode, parent_watch};

mod lifeline;

const USAGE: &str =
    "usage: silk-executor-native --package-dir DIR [--shm-fd N [--shm-wait adaptive|park]]
       silk-executor-native --inspect PATH";

struct Args {
    package_dir: PathBuf,
    shm_fd: Option<RawFd>,
    wait: WaitMode,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args_os().skip(1);
    let (mut package_dir, mut shm_fd, mut wait) = (None, None, WaitMode::default());
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{} needs a value", flag.display()))?;
        let text = || {
            value
                .to_str()
                .ok_or("arguments must be UTF-8")
                .map(str::to_owned)
        };
        match flag.to_str() {
            Some("--package-dir") => package_dir = Some(PathBuf::from(&value)),
            Some("--shm-fd") => {
                shm_fd = Some(text()?.parse().map_err(|e| format!("--shm-fd: {e}"))?)
            }
            Some("--shm-wait") => wait = text()?.parse()?,
            _ => return Err(format!("unknown argument {}", flag.display())),
        }
    }
    let package_dir = package_dir.ok_or("--package-dir is required")?;
    Ok(Args {
        package_dir,
        shm_fd,
        wait,
    })
}

fn main() -> ExitCode {
    // Die with the EM, with every process a task started. Waits on the EM also end when it
    // closes the connection or goes away.
    lifeline::tie_to_parent();
    // Sleeps and timed waits in tasks end when asked, not up to 50 µs later (the default slack).
    if let Err(e) = rustix::thread::set_current_timer_slack(NonZeroU64::new(1)) {
        eprintln!("silk-executor-native: cannot set timer slack: {e}");
    }
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == "--inspect") {
        return match (args.next(), args.next()) {
            (Some(path), None) => run_inspect(&PathBuf::from(path)),
            _ => {
                eprintln!("error: --inspect takes exactly one PATH\n{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("silk-executor-native: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut executor = Executor::new(args.package_dir);
    let served = match args.shm_fd {
        Some(fd) => match open_shm(fd, args.wait) {
            Ok(mut transport) => executor.serve(&mut transport),
            Err(e) => {
                eprintln!("silk-executor-native: cannot use the shared-memory segment: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => match PipeServer::take_stdio() {
            Ok(mut transport) => executor.serve(&mut transport),
            Err(e) => {
                eprintln!("silk-executor-native: cannot set up the pipe transport: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("silk-executor-native: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Attaches to the segment at `fd`; package output to stdout goes to stderr (the log).
fn open_shm(fd: RawFd, wait: WaitMode) -> Result<ShmServer, Box<dyn std::error::Error>> {
    let segment = Segment::open(take_inherited_fd(fd)?)?;
    rustix::stdio::dup2_stdout(std::io::stderr())?;
    Ok(ShmServer::new(segment, wait, parent_watch()))
}

/// `--inspect PATH`: the JSON goes to the original stdout; stdout itself points at stderr while
/// the library loads, so nothing the library prints can corrupt the answer.
fn run_inspect(path: &std::path::Path) -> ExitCode {
    let answer = match rustix::io::dup(std::io::stdout())
        .and_then(|out| rustix::stdio::dup2_stdout(std::io::stderr()).map(|()| out))
    {
        Ok(out) => std::fs::File::from(out),
        Err(e) => {
            eprintln!("error: cannot set up stdout: {e}");
            return ExitCode::FAILURE;
        }
    };
    match inspect_package(path) {
        Ok(info) => {
            use std::io::Write;
            let mut answer = answer;
            match writeln!(answer, "{}", inspect::to_json(&info)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the answer: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(inspect::exit_code(&e))
        }
    }
}
