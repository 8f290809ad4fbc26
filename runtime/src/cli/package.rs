//! `silk package inspect FILE`: a package's name, ABI version and task list, read through its
//! exports without running any task or its init hook.
//!
//! A native `.so` is never loaded into this process (loading runs its code): the
//! `silk-executor-native` binary (found like `silk task run` finds it) inspects it in a child
//! process with `--inspect` and answers with one JSON object. A `.wasm` module is checked and
//! probed in the wasm sandbox, with no WASI capabilities.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use silk_executor_wasm::{HostConfig, SandboxPolicy, WasmHost};
use silk_ipc::{InspectError as PackageInspectError, PackageInfo};
use silk_tdl::abi::TASK_LIST_VERSION;

use super::exit_code;
use crate::em::pool::child::{describe_exit, find_executor_bin};

/// `silk package ...`
#[derive(Debug, clap::Subcommand)]
pub enum PackageCommand {
    /// Show a package's name, ABI version and tasks (with input and output types), without
    /// running any of its tasks or its init hook.
    Inspect(InspectArgs),
}

/// Arguments of `silk package inspect`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct InspectArgs {
    /// The package file: a native `.so` (inspected in a `silk-executor-native` child process,
    /// never loaded into `silk` itself) or a `.wasm` module (inspected in the sandbox).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format: `text` for people, `json` for scripts (a stable object:
    /// `{"name","abi_version","format","tasks"}`, `tasks` null when the package does not
    /// export its task list).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// How `silk package inspect` prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Name, ABI version, format, then one line per task: `fibonacci(n: u64) -> u64`.
    Text,
    /// One JSON object on one line.
    Json,
}

/// Examples and the exit-code table, shown in `--help`.
pub const EXIT_CODES_HELP: &str = "\
Examples:
  silk package inspect target/packages/libfixtures.so
  silk package inspect target/packages/fixtures.wasm -o json

Exit codes:
  0  the package was inspected; its description is on stdout
  1  silk itself failed (the executor or the sandbox could not be started, the file is unreadable)
  2  bad usage: bad arguments, a missing file, a file not named .so or .wasm
  3  not a silk package: not a loadable library or wasm module, or no silk_abi_version export
  4  a silk package built for another ABI version
  5  a silk package that breaks the ABI: a missing or ill-typed export, an invalid name or task
     list, or a crash while it loads";

/// How long the native executor may take to answer.
const NATIVE_INSPECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a package could not be inspected, by exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// Bad usage (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Not a silk package (exit 3).
    #[error("{0}")]
    NotAPackage(String),
    /// Another ABI version (exit 4).
    #[error("{0}")]
    AbiVersion(String),
    /// A package that breaks the ABI (exit 5).
    #[error("{0}")]
    Invalid(String),
    /// silk itself failed (exit 1).
    #[error("{0}")]
    Other(String),
}

impl InspectError {
    /// The documented exit code (see [`EXIT_CODES_HELP`]).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Other(_) => exit_code::FAILURE,
            Self::Usage(_) => exit_code::USAGE,
            Self::NotAPackage(_) => exit_code::NOT_A_PACKAGE,
            Self::AbiVersion(_) => exit_code::ABI_VERSION,
            Self::Invalid(_) => exit_code::INVALID_PACKAGE,
        }
    }
}

/// One input of a task: parameter name and Rust type as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInput {
    /// The parameter's name.
    pub name: String,
    /// Its type, e.g. `u64` or `Vec<String>`.
    #[serde(rename = "type")]
    pub ty: String,
}

/// One task of a package's task list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task's name within its package.
    pub name: String,
    /// Its inputs, in order.
    pub inputs: Vec<TaskInput>,
    /// The types of its outputs, in order.
    pub outputs: Vec<String>,
}

impl TaskInfo {
    /// `fibonacci(n: u64) -> u64`; no outputs show as `()`, several as a tuple.
    #[must_use]
    pub fn signature(&self) -> String {
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|i| format!("{}: {}", i.name, i.ty))
            .collect();
        let outputs = match self.outputs.as_slice() {
            [one] => one.clone(),
            many => format!("({})", many.join(", ")),
        };
        format!("{}({}) -> {outputs}", self.name, inputs.join(", "))
    }
}

/// The task-list export, as the TDL writes it (format in `silk_tdl::abi`).
#[derive(Debug, Deserialize)]
struct TaskList {
    version: u32,
    tasks: Vec<TaskInfo>,
}

/// What `silk package inspect` prints (`-o json` prints exactly this object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageReport {
    /// The name the package declares.
    pub name: String,
    /// Its ABI version.
    pub abi_version: u32,
    /// `native` or `wasm`.
    pub format: &'static str,
    /// Its tasks, or `None` when the package does not export a task list.
    pub tasks: Option<Vec<TaskInfo>>,
}

impl PackageReport {
    /// The text form: name, ABI version, format, then one line per task.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "name:        {}\nabi_version: {}\nformat:      {}\n",
            self.name, self.abi_version, self.format
        );
        match &self.tasks {
            None => out.push_str("tasks:       not exported by this package\n"),
            Some(tasks) => {
                out.push_str(&format!("tasks:       {}\n", tasks.len()));
                for t in tasks {
                    out.push_str(&format!("  {}\n", t.signature()));
                }
            }
        }
        out
    }
}

/// Parses a task-list export.
fn parse_task_list(path: &Path, text: &str) -> Result<Vec<TaskInfo>, InspectError> {
    let list: TaskList = serde_json::from_str(text).map_err(|e| {
        InspectError::Invalid(format!("{}: malformed task list: {e}", path.display()))
    })?;
    if list.version != TASK_LIST_VERSION {
        return Err(InspectError::Invalid(format!(
            "{}: task list format version {} is not supported (this silk reads version {TASK_LIST_VERSION})",
            path.display(),
            list.version
        )));
    }
    Ok(list.tasks)
}

/// Inspects `path`: a `.so` in a native executor child process, a `.wasm` in the sandbox.
///
/// # Errors
/// [`InspectError`] of the class of the problem.
pub fn inspect(path: &Path) -> Result<PackageReport, InspectError> {
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("so") => "native",
        Some("wasm") => "wasm",
        _ => {
            return Err(InspectError::Usage(format!(
                "{}: not a package file: expected a native `.so` library or a `.wasm` module",
                path.display()
            )));
        }
    };
    if !path.is_file() {
        return Err(InspectError::Usage(format!(
            "{}: no such file",
            path.display()
        )));
    }
    let PackageInfo {
        name,
        abi_version,
        task_list,
    } = if format == "native" {
        inspect_native(path)?
    } else {
        inspect_wasm(path)?
    };
    let tasks = task_list
        .map(|text| parse_task_list(path, &text))
        .transpose()?;
    Ok(PackageReport {
        name,
        abi_version,
        format,
        tasks,
    })
}

fn inspect_wasm(path: &Path) -> Result<PackageInfo, InspectError> {
    let config = HostConfig {
        max_concurrent_tasks: 1,
        max_memory_bytes: SandboxPolicy::default().max_memory_bytes,
        fuel_metering: false,
        ..HostConfig::default()
    };
    let host = WasmHost::new(config)
        .map_err(|e| InspectError::Other(format!("cannot start the wasm sandbox: {e}")))?;
    host.inspect_file(path).map_err(|e| match e {
        PackageInspectError::Read { .. } => InspectError::Other(e.to_string()),
        PackageInspectError::NotAPackage { .. } => InspectError::NotAPackage(e.to_string()),
        PackageInspectError::AbiVersion { .. } => InspectError::AbiVersion(e.to_string()),
        PackageInspectError::Invalid { .. } => InspectError::Invalid(e.to_string()),
    })
}

/// Reads a child's pipe to its end on a thread (so a full pipe never blocks the child).
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            // A read error only shortens what is shown; the exit status decides.
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

fn inspect_native(path: &Path) -> Result<PackageInfo, InspectError> {
    let Some(bin) = find_executor_bin() else {
        return Err(InspectError::Other(
            "cannot find the silk-executor-native binary (set SILK_EXECUTOR_NATIVE)".into(),
        ));
    };
    let mut child = Command::new(&bin)
        .arg("--inspect")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| InspectError::Other(format!("cannot start {}: {e}", bin.display())))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + NATIVE_INSPECT_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                // Best effort: the child may have exited in the meantime.
                let _ = child.kill();
                let _ = child.wait();
                return Err(InspectError::Invalid(format!(
                    "{}: loading the library did not finish within {} s",
                    path.display(),
                    NATIVE_INSPECT_TIMEOUT.as_secs()
                )));
            }
            Err(e) => {
                return Err(InspectError::Other(format!(
                    "cannot wait for {}: {e}",
                    bin.display()
                )));
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
    // The executor's own message is its last `error: ` line; the library may print before it.
    let message = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .map(str::to_owned);
    let message = || message.clone().unwrap_or_else(|| stderr.trim().to_owned());
    // The executor's `--inspect` exits with the codes `silk package inspect` exits with.
    match status.code().map(|c| u8::try_from(c).unwrap_or(u8::MAX)) {
        Some(exit_code::SUCCESS) => serde_json::from_slice(&stdout).map_err(|e| {
            InspectError::Other(format!(
                "{} --inspect gave an answer silk cannot read: {e}",
                bin.display()
            ))
        }),
        Some(exit_code::NOT_A_PACKAGE) => Err(InspectError::NotAPackage(message())),
        Some(exit_code::ABI_VERSION) => Err(InspectError::AbiVersion(message())),
        Some(exit_code::INVALID_PACKAGE) => Err(InspectError::Invalid(message())),
        Some(_) => Err(InspectError::Other(format!(
            "{} --inspect {}: {}",
            bin.display(),
            describe_exit(status),
            message()
        ))),
        None => Err(InspectError::Invalid(format!(
            "{}: the executor died while loading the library ({})",
            path.display(),
            describe_exit(status)
        ))),
    }
}

/// Runs `silk package ...`; prints the answer on stdout and errors on stderr.
#[must_use]
pub fn run(command: &PackageCommand) -> ExitCode {
    match command {
        PackageCommand::Inspect(args) => match inspect(&args.file) {
            Ok(report) => {
                match args.output {
                    OutputFormat::Text => print!("{}", report.to_text()),
                    OutputFormat::Json => match serde_json::to_string(&report) {
                        Ok(json) => println!("{json}"),
                        Err(e) => {
                            eprintln!("error: cannot render the answer as JSON: {e}");
                            return ExitCode::FAILURE;
                        }
                    },
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, inputs: &[(&str, &str)], outputs: &[&str]) -> TaskInfo {
        TaskInfo {
            name: name.into(),
            inputs: inputs
                .iter()
                .map(|(n, t)| TaskInput {
                    name: (*n).into(),
                    ty: (*t).into(),
                })
                .collect(),
            outputs: outputs.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    #[test]
    fn signatures() {
        assert_eq!(
            task("fibonacci", &[("n", "u64")], &["u64"]).signature(),
            "fibonacci(n: u64) -> u64"
        );
        assert_eq!(task("noop", &[], &[]).signature(), "noop() -> ()");
        assert_eq!(
            task("divmod", &[("a", "i64"), ("b", "i64")], &["i64", "i64"]).signature(),
            "divmod(a: i64, b: i64) -> (i64, i64)"
        );
    }

    #[test]
    fn task_list_versions() {
        let p = Path::new("p.wasm");
        let tasks = parse_task_list(
            p,
            r#"{"version":1,"tasks":[{"name":"t","inputs":[{"name":"n","type":"u64"}],"outputs":[]}]}"#,
        )
        .unwrap();
        assert_eq!(tasks, [task("t", &[("n", "u64")], &[])]);
        let err = parse_task_list(p, r#"{"version":2,"tasks":[]}"#).unwrap_err();
        assert!(
            err.to_string().contains("version 2 is not supported"),
            "{err}"
        );
        assert_eq!(err.exit_code(), 5);
        assert!(matches!(
            parse_task_list(p, "{"),
            Err(InspectError::Invalid(_))
        ));
    }

    #[test]
    fn file_kinds() {
        let err = inspect(Path::new("/nonexistent/x.txt")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = inspect(Path::new("/nonexistent/libx.so")).unwrap_err();
        assert_eq!(
            (err.exit_code(), err.to_string().contains("no such file")),
            (2, true)
        );
    }

    #[test]
    fn exit_codes_are_documented() {
        for code in 0..=5 {
            assert!(EXIT_CODES_HELP.contains(&format!("\n  {code}  ")), "{code}");
        }
    }
}
