//! The EM's handle on one native executor child: spawn it, send a request, await the outcome
//! under a hard timeout that covers sending and receiving. On a timeout or a crash the child is
//! killed, reaped and respawned before the call returns, so the next request meets a fresh
//! executor.
//!
//! Calls block: run them on a dedicated thread, never on an async worker. Spawn from a
//! long-lived thread too: the child's parent-death signal fires when the *thread* that spawned it
//! exits.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use silk_ipc::pipe::PipeClient;
use silk_ipc::{ClientTransport, Execute, Outcome, Request, Response, TaskFailure, TransportError};

use super::child::{describe_exit, forward_lines, is_executable};

/// How to start native executors.
#[derive(Debug, Clone)]
pub struct NativeExecutorConfig {
    /// The `silk-executor-native` binary.
    pub executor_bin: PathBuf,
    /// Directory holding `lib<name>.so` packages.
    pub package_dir: PathBuf,
    /// The child's whole environment (it inherits nothing else from the EM).
    pub env: Vec<(OsString, OsString)>,
    /// Longest executor log line forwarded whole; longer lines are cut.
    pub max_log_line_bytes: usize,
}

impl NativeExecutorConfig {
    /// A config with no extra environment and 64 KiB log lines.
    #[must_use]
    pub fn new(executor_bin: PathBuf, package_dir: PathBuf) -> Self {
        Self {
            executor_bin,
            package_dir,
            env: Vec::new(),
            max_log_line_bytes: 64 * 1024,
        }
    }
}

/// An executor could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The binary is missing or not executable.
    #[error("executor binary {0} is missing or not executable")]
    NotExecutable(PathBuf),
    /// The OS refused to start it.
    #[error("cannot start executor {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its pipes could not be set up.
    #[error("cannot set up the executor's pipes: {0}")]
    Transport(#[from] TransportError),
}

/// A task's outputs and the time the executor spent on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSuccess {
    /// The output frame.
    pub outputs: Vec<u8>,
    /// Time spent inside the executor, as it measured it.
    pub elapsed_ns: u64,
}

#[derive(Debug)]
struct Live {
    id: u64,
    child: Child,
    transport: PipeClient,
}

/// A native executor child process and its connection.
#[derive(Debug)]
pub struct NativeExecutor {
    config: NativeExecutorConfig,
    live: Option<Live>,
}

static NEXT_EXECUTOR_ID: AtomicU64 = AtomicU64::new(1);

fn start(config: &NativeExecutorConfig) -> Result<Live, SpawnError> {
    if !is_executable(&config.executor_bin) {
        return Err(SpawnError::NotExecutable(config.executor_bin.clone()));
    }
    let id = NEXT_EXECUTOR_ID.fetch_add(1, Ordering::Relaxed);
    let mut child = Command::new(&config.executor_bin)
        .arg("--package-dir")
        .arg(&config.package_dir)
        .env_clear()
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SpawnError::Spawn {
            path: config.executor_bin.clone(),
            source,
        })?;
    let pid = child.id();
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        unreachable!("all three stdio handles were requested as pipes");
    };
    let max_line = config.max_log_line_bytes;
    std::thread::Builder::new()
        .name(format!("silk-executor-{id}-log"))
        .spawn(move || {
            forward_lines(
                stderr,
                max_line,
                |line| tracing::info!(target: "silk::executor", executor = id, pid, "{line}"),
            );
        })
        .map_err(|source| SpawnError::Spawn {
            path: config.executor_bin.clone(),
            source,
        })?;
    let transport = match PipeClient::new(stdin, stdout) {
        Ok(t) => t,
        Err(e) => {
            kill_and_reap(&mut child);
            return Err(e.into());
        }
    };
    tracing::debug!(executor = id, pid, "executor started");
    Ok(Live {
        id,
        child,
        transport,
    })
}

fn kill_and_reap(child: &mut Child) -> String {
    // Already gone is fine: `wait` below still reaps it.
    let _ = child.kill();
    match child.wait() {
        Ok(status) => describe_exit(status),
        Err(e) => format!("could not be reaped: {e}"),
    }
}

/// After the pipe closed: give the child a moment to finish dying, then describe how it ended.
fn reap_after_close(child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return describe_exit(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => return format!("closed its pipe and was killed ({})", kill_and_reap(child)),
        }
    }
}

impl NativeExecutor {
    /// Starts an executor.
    ///
    /// # Errors
    /// [`SpawnError`] if the binary is missing or cannot be started.
    pub fn spawn(config: NativeExecutorConfig) -> Result<Self, SpawnError> {
        let live = start(&config)?;
        Ok(Self {
            config,
            live: Some(live),
        })
    }

    /// The child's process id, if one is running.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.live.as_ref().map(|l| l.child.id())
    }

    /// Runs one task. Never blocks longer than `hard_timeout` (plus the time to kill and respawn
    /// the executor when it expires).
    ///
    /// # Errors
    /// The task's own failure ([`TaskFailure::Task`], [`TaskFailure::Panicked`],
    /// [`TaskFailure::Package`]), [`TaskFailure::Timeout`] after `hard_timeout`, or
    /// [`TaskFailure::Crashed`] when the executor died or could not be started.
    pub fn execute(
        &mut self,
        request: &Execute,
        hard_timeout: Duration,
    ) -> Result<TaskSuccess, TaskFailure> {
        let deadline = Instant::now() + hard_timeout;
        let live = match &mut self.live {
            Some(live) => live,
            None => {
                let live = start(&self.config).map_err(|e| TaskFailure::Crashed {
                    status: format!("executor could not be started: {e}"),
                })?;
                self.live.insert(live)
            }
        };
        let message = Request::Execute(request.clone());
        let result = live
            .transport
            .send(&message, deadline)
            .and_then(|()| live.transport.recv(deadline));
        match result {
            Ok(Response::Result {
                outcome: Outcome::Success(outputs),
                elapsed_ns,
            }) => Ok(TaskSuccess {
                outputs,
                elapsed_ns,
            }),
            Ok(Response::Result {
                outcome: Outcome::Failure(failure),
                ..
            }) => Err(failure),
            Err(TransportError::TimedOut) => {
                let status = kill_and_reap(&mut live.child);
                let after_ms = u64::try_from(hard_timeout.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(executor = live.id, %status, timeout_ms = after_ms, "task timed out; executor killed");
                self.respawn();
                Err(TaskFailure::Timeout { after_ms })
            }
            Err(TransportError::Closed) => {
                let status = reap_after_close(&mut live.child);
                tracing::warn!(executor = live.id, %status, "executor crashed");
                self.respawn();
                Err(TaskFailure::Crashed { status })
            }
            Err(e) => {
                let status = format!("{e}; executor killed ({})", kill_and_reap(&mut live.child));
                tracing::warn!(executor = live.id, %status, "executor connection failed");
                self.respawn();
                Err(TaskFailure::Crashed { status })
            }
        }
    }

    fn respawn(&mut self) {
        self.live = match start(&self.config) {
            Ok(live) => Some(live),
            Err(e) => {
                tracing::error!(error = %e, "cannot restart executor; will retry on the next task");
                None
            }
        };
    }

    /// Asks the executor to exit and waits up to `grace` for it; kills it after that.
    /// Returns how it ended.
    pub fn shutdown(mut self, grace: Duration) -> String {
        let Some(mut live) = self.live.take() else {
            return "not running".to_owned();
        };
        let deadline = Instant::now() + grace;
        if live.transport.send(&Request::Shutdown, deadline).is_ok() {
            while Instant::now() < deadline {
                if let Ok(Some(status)) = live.child.try_wait() {
                    return describe_exit(status);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        kill_and_reap(&mut live.child)
    }
}

impl Drop for NativeExecutor {
    fn drop(&mut self) {
        if let Some(live) = &mut self.live {
            kill_and_reap(&mut live.child);
        }
    }
}
