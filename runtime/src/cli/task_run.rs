//! `silk task run`: run one task of a package locally, in a fresh executor, with JSON inputs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use silk_executor_wasm::{HostConfig, SandboxPolicy, WasmHost};
use silk_ipc::{Execute, FailureKind, TaskFailure};
use silk_tdl::TaskContext;

use super::{exit_code, json};
use crate::em::pool::child::find_executor_bin;
use crate::em::pool::{NativeExecutor, NativeExecutorConfig, TransportKind};

/// Arguments of `silk task run`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct TaskRunArgs {
    /// The package file: a native library named `lib<name>.so` (trusted code, run in a native
    /// executor process) or a `.wasm` module (run in the sandbox).
    #[arg(long, value_name = "PATH")]
    pub package: PathBuf,
    /// The task's name within the package.
    #[arg(long, value_name = "NAME")]
    pub task: String,
    /// The task's inputs: a JSON array with one element per input.
    #[arg(long, value_name = "JSON", default_value = "[]")]
    pub inputs: String,
    /// Hard timeout: the task is stopped after this many milliseconds.
    #[arg(long, value_name = "N", default_value_t = 300_000)]
    pub timeout_ms: u64,
    /// Wasm only: the most linear memory the task may use [default: 268435456 (256 MiB)].
    #[arg(long, value_name = "N")]
    pub max_memory_bytes: Option<u64>,
    /// Wasm only: instructions' worth of fuel; the task fails with OutOfFuel when it runs out
    /// [default: unlimited].
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,
    /// Native only: the IPC transport to the executor, `shm` (shared-memory ring; falls back to
    /// pipes with a warning if it cannot be set up) or `pipe`.
    #[arg(long, value_name = "shm|pipe", default_value_t = TransportKind::Shm)]
    pub transport: TransportKind,
}

/// Examples and the exit-code table, shown in `--help` (the table is also in the README).
pub const EXIT_CODES_HELP: &str = "\
Examples:
  silk task run --package target/packages/libfixtures.so --task fibonacci --inputs '[10]'
  silk task run --package target/packages/fixtures.wasm --task fibonacci --inputs '[10]' --fuel 100000000

Exit codes:
  0   the task succeeded; its outputs are printed on stdout as a JSON array
  1   silk itself failed (e.g. the executor could not be started)
  2   bad usage or input (arguments, JSON, package file name)
  3   TaskError      the task returned an error
  4   Panicked       the task panicked
  5   Crashed        the executor process died (abort, segfault)
  6   Timeout        the task ran past --timeout-ms
  7   OutOfFuel      a wasm task used up its fuel
  8   MemoryLimit    a wasm task hit its memory limit
  9   Trap           a wasm task trapped
  10  PackageError   the package is missing, invalid, of another ABI version, or its init failed
  11  OutputTooLarge the task returned more bytes than its output limit";

/// The exit code for a failed task.
#[must_use]
pub fn exit_code(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::TaskError => 3,
        FailureKind::Panicked => 4,
        FailureKind::Crashed => 5,
        FailureKind::Timeout => 6,
        FailureKind::OutOfFuel => 7,
        FailureKind::MemoryLimit => 8,
        FailureKind::Trap => 9,
        FailureKind::PackageError => 10,
        FailureKind::OutputTooLarge => 11,
    }
}

/// A package file given on the command line.
#[derive(Debug, PartialEq, Eq)]
enum PackageFile {
    /// `dir/lib<name>.so`.
    Native { dir: PathBuf, name: String },
    /// `path/to/<anything>.wasm`.
    Wasm(PathBuf),
}

fn package_file(path: &Path) -> Result<PackageFile, String> {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let kind = if path.extension().is_some_and(|e| e == "wasm") {
        PackageFile::Wasm(path.to_path_buf())
    } else {
        let name = file
            .strip_prefix("lib")
            .and_then(|f| f.strip_suffix(".so"))
            .ok_or_else(|| {
                format!(
                    "{}: a package file is a native lib<name>.so or a <name>.wasm module",
                    path.display()
                )
            })?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        PackageFile::Native {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
        }
    };
    if !path.is_file() {
        return Err(format!("{}: no such file", path.display()));
    }
    Ok(kind)
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(exit_code::USAGE)
}

/// Runs the command; prints outputs on stdout, errors on stderr.
#[must_use]
pub fn run(args: &TaskRunArgs) -> ExitCode {
    let package = match package_file(&args.package) {
        Ok(p) => p,
        Err(e) => return usage_error(&e),
    };
    let inputs = match json::inputs_to_frame(&args.inputs) {
        Ok(f) => f,
        Err(e) => return usage_error(&e.to_string()),
    };
    let context = TaskContext::standalone().to_msgpack();
    let result = match package {
        PackageFile::Native { dir, name } => {
            if args.max_memory_bytes.is_some() || args.fuel.is_some() {
                return usage_error("--max-memory-bytes and --fuel apply to wasm packages only");
            }
            let request = Execute {
                package: name,
                function: args.task.clone(),
                context,
                inputs,
            };
            match run_native(dir, &request, args.timeout_ms, args.transport) {
                Ok(r) => r,
                Err(code) => return code,
            }
        }
        PackageFile::Wasm(path) => match run_wasm(&path, args, &context, &inputs) {
            Ok(r) => r,
            Err(code) => return code,
        },
    };
    match result {
        Ok(outputs) => match json::frame_to_json(&outputs) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: the task's outputs cannot be shown as JSON: {e}");
                ExitCode::FAILURE
            }
        },
        Err(failure) => report(&failure),
    }
}

fn run_native(
    dir: PathBuf,
    request: &Execute,
    timeout_ms: u64,
    transport: TransportKind,
) -> Result<Result<Vec<u8>, TaskFailure>, ExitCode> {
    let Some(executor_bin) = find_executor_bin() else {
        eprintln!("error: cannot find the silk-executor-native binary (set SILK_EXECUTOR_NATIVE)");
        return Err(ExitCode::FAILURE);
    };
    let config = NativeExecutorConfig::new(executor_bin, dir).with_transport(transport);
    let mut executor = NativeExecutor::spawn(config).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })?;
    let result = executor
        .execute(request, Duration::from_millis(timeout_ms))
        .map(|s| s.outputs);
    executor.shutdown(Duration::from_secs(1));
    Ok(result)
}

fn run_wasm(
    path: &Path,
    args: &TaskRunArgs,
    context: &[u8],
    inputs: &[u8],
) -> Result<Result<Vec<u8>, TaskFailure>, ExitCode> {
    let mut policy = SandboxPolicy {
        timeout_ms: args.timeout_ms,
        fuel: args.fuel,
        ..SandboxPolicy::default()
    };
    if let Some(m) = args.max_memory_bytes {
        policy.max_memory_bytes = m;
    }
    let config = HostConfig {
        max_concurrent_tasks: 1,
        max_memory_bytes: policy.max_memory_bytes,
        fuel_metering: policy.fuel.is_some(),
        ..HostConfig::default()
    };
    let host = WasmHost::new(config).map_err(|e| {
        eprintln!("error: cannot start the wasm sandbox: {e}");
        ExitCode::FAILURE
    })?;
    Ok(host.load_file(path).and_then(|name| {
        host.execute(&name, &args.task, context, inputs, &policy)
            .map(|(o, _)| o)
    }))
}

fn report(failure: &TaskFailure) -> ExitCode {
    eprintln!("error: {}: {failure}", failure.kind());
    ExitCode::from(exit_code(failure.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let codes: std::collections::HashSet<_> =
            FailureKind::ALL.iter().map(|k| exit_code(*k)).collect();
        assert_eq!(codes.len(), FailureKind::ALL.len());
        for k in FailureKind::ALL {
            let line = format!("  {:<3} {}", exit_code(k), k.as_str());
            assert!(EXIT_CODES_HELP.contains(&line), "missing {line:?}");
        }
    }

    #[test]
    fn package_file_names() {
        let err = |p: &str| package_file(Path::new(p)).unwrap_err();
        assert!(err("/nonexistent/libx.so").contains("no such file"));
        assert!(err("/nonexistent/x.wasm").contains("no such file"));
        assert!(err("x.so").contains("lib<name>.so"));
    }
}
