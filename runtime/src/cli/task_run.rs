//! `silk task run`: run one task of a package locally, in a fresh executor, with JSON inputs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use silk_ipc::{Execute, FailureKind, TaskFailure};
use silk_tdl::TaskContext;

use super::json;
use crate::em::pool::child::find_executor_bin;
use crate::em::pool::{NativeExecutor, NativeExecutorConfig};

/// Arguments of `silk task run`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct TaskRunArgs {
    /// The package file: a native library named `lib<name>.so`.
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
}

/// The exit-code table shown in `--help` and the README.
pub const EXIT_CODES_HELP: &str = "\
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
  10  PackageError   the package is missing, invalid, of another ABI version, or its init failed";

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
    }
}

/// Splits `dir/lib<name>.so` into its directory and package name.
fn native_package(path: &Path) -> Result<(PathBuf, String), String> {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let name = file
        .strip_prefix("lib")
        .and_then(|f| f.strip_suffix(".so"))
        .ok_or_else(|| {
            format!(
                "{}: a native package file is named lib<name>.so",
                path.display()
            )
        })?;
    if !path.is_file() {
        return Err(format!("{}: no such file", path.display()));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir.to_path_buf(), name.to_owned()))
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// Runs the command; prints outputs on stdout, errors on stderr.
#[must_use]
pub fn run(args: &TaskRunArgs) -> ExitCode {
    let (package_dir, package) = match native_package(&args.package) {
        Ok(p) => p,
        Err(e) => return usage_error(&e),
    };
    let inputs = match json::inputs_to_frame(&args.inputs) {
        Ok(f) => f,
        Err(e) => return usage_error(&e.to_string()),
    };
    let Some(executor_bin) = find_executor_bin() else {
        eprintln!("error: cannot find the silk-executor-native binary (set SILK_EXECUTOR_NATIVE)");
        return ExitCode::FAILURE;
    };
    let mut executor =
        match NativeExecutor::spawn(NativeExecutorConfig::new(executor_bin, package_dir)) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    let request = Execute {
        package,
        function: args.task.clone(),
        context: TaskContext::standalone().to_msgpack(),
        inputs,
    };
    let result = executor.execute(&request, Duration::from_millis(args.timeout_ms));
    executor.shutdown(Duration::from_secs(1));
    match result {
        Ok(success) => match json::frame_to_json(&success.outputs) {
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
        assert!(
            native_package(Path::new("/nonexistent/libx.so"))
                .unwrap_err()
                .contains("no such file")
        );
        assert!(
            native_package(Path::new("x.so"))
                .unwrap_err()
                .contains("lib<name>.so")
        );
    }
}
