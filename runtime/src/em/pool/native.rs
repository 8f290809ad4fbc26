//! The EM's handle on one native executor child: spawn it, send a request, await the outcome
//! under a hard timeout that covers sending and receiving. On a timeout or a crash the child is
//! killed, reaped and respawned before the call returns, so the next request meets a fresh
//! executor.
//!
//! The connection is the shared-memory ring by default ([`TransportKind::Shm`]): the EM creates
//! the segment, hands its memfd to the child as fd [`SHM_FD`], and watches the child through a
//! pidfd while it waits, so a dead child is noticed within a few milliseconds. If the segment
//! cannot be set up the EM logs why and uses pipes instead.
//!
//! Calls block: run them on a dedicated thread, never on an async worker. Spawn from a
//! long-lived thread too: the child's parent-death signal fires when the *thread* that spawned it
//! exits.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use silk_ipc::pipe::PipeClient;
use silk_ipc::shm::{DEFAULT_RING_BYTES, Segment, ShmClient, WaitMode};
use silk_ipc::{ClientTransport, Execute, Outcome, Request, Response, TaskFailure, TransportError};

use super::child::{describe_exit, forward_lines, is_executable};
use super::policy::{NativePolicy, RESPONSE_OVERHEAD_BYTES};
use super::pre_exec::{die_with_parent, inherit_at};
use super::transport::{Connection, TransportKind};

/// The descriptor number at which a native executor finds its shared-memory segment.
pub const SHM_FD: i32 = 3;

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
    /// The IPC transport (shared memory unless configured otherwise).
    pub transport: TransportKind,
    /// Capacity of each shared-memory ring (a power of two, 4 KiB to 1 GiB).
    pub shm_ring_bytes: usize,
    /// Whether the EM and the executor may spin before parking on the shared-memory ring.
    pub shm_wait: WaitMode,
    /// Largest output of a task run with [`NativeExecutor::execute`] (the EM passes each
    /// package's own limit to [`NativeExecutor::execute_with_limit`]).
    pub max_output_bytes: u64,
}

impl NativeExecutorConfig {
    /// A config with no extra environment, 64 KiB log lines and the shared-memory transport
    /// (4 MiB rings, adaptive waiting).
    #[must_use]
    pub fn new(executor_bin: PathBuf, package_dir: PathBuf) -> Self {
        Self {
            executor_bin,
            package_dir,
            env: Vec::new(),
            max_log_line_bytes: 64 * 1024,
            transport: TransportKind::Shm,
            shm_ring_bytes: DEFAULT_RING_BYTES,
            shm_wait: WaitMode::Adaptive,
            max_output_bytes: NativePolicy::default().max_output_bytes,
        }
    }

    /// The same config with another transport.
    #[must_use]
    pub fn with_transport(mut self, transport: TransportKind) -> Self {
        self.transport = transport;
        self
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
    /// Its pidfd could not be opened (needed to watch it while waiting on shared memory).
    #[error("cannot watch the executor process: {0}")]
    Watch(std::io::Error),
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
    /// Names the child for as long as this is open, even once reaped (see `stop.rs`).
    pidfd: Arc<OwnedFd>,
    transport: Connection,
}

/// A native executor child process and its connection.
#[derive(Debug)]
pub struct NativeExecutor {
    config: NativeExecutorConfig,
    live: Option<Live>,
    /// Restarts since [`NativeExecutor::take_restarts`] last ran.
    restarts: u64,
    /// Bumped whenever `live` is replaced.
    generation: u64,
}

static NEXT_EXECUTOR_ID: AtomicU64 = AtomicU64::new(1);

/// The segment for a new executor, or `None` (pipes) when configured so or when it cannot be
/// created, which is logged.
fn segment_for(config: &NativeExecutorConfig, id: u64) -> Option<Segment> {
    if config.transport != TransportKind::Shm {
        return None;
    }
    match Segment::create(config.shm_ring_bytes) {
        Ok(segment) => Some(segment),
        Err(e) => {
            tracing::warn!(executor = id, error = %e, "shared-memory transport unavailable; falling back to pipes");
            None
        }
    }
}

/// `peer_alive` for the shm transport: the child has not exited while its pidfd is not readable.
fn pidfd_watch(child: &Child) -> Result<impl FnMut() -> bool + Send + 'static, SpawnError> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let pid = rustix::process::Pid::from_child(child);
    let pidfd: OwnedFd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| SpawnError::Watch(e.into()))?;
    Ok(move || {
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // An error here says nothing about the child: assume it lives, the next check retries.
        !matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
    })
}

fn start(config: &NativeExecutorConfig) -> Result<Live, SpawnError> {
    if !is_executable(&config.executor_bin) {
        return Err(SpawnError::NotExecutable(config.executor_bin.clone()));
    }
    let id = NEXT_EXECUTOR_ID.fetch_add(1, Ordering::Relaxed);
    let segment = segment_for(config, id);
    let mut cmd = Command::new(&config.executor_bin);
    // Its own process group: a Ctrl-C in a terminal (SIGINT to the foreground group) or a
    // group-wide signal must reach the EM only, which drains and then stops its executors. The
    // child still dies with the EM: SIGKILL is its parent-death signal.
    cmd.arg("--package-dir")
        .arg(&config.package_dir)
        .env_clear()
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::piped())
        .process_group(0);
    die_with_parent(&mut cmd);
    if let Some(segment) = &segment {
        cmd.arg("--shm-fd")
            .arg(SHM_FD.to_string())
            .arg("--shm-wait")
            .arg(config.shm_wait.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        inherit_at(&mut cmd, segment.fd(), SHM_FD);
    } else {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError::Spawn {
        path: config.executor_bin.clone(),
        source,
    })?;
    let pid = child.id();
    let Some(stderr) = child.stderr.take() else {
        unreachable!("stderr was requested as a pipe");
    };
    let max_line = config.max_log_line_bytes;
    let logger = std::thread::Builder::new()
        .name(format!("silk-executor-{id}-log"))
        .spawn(move || {
            forward_lines(
                stderr,
                max_line,
                |line| tracing::info!(target: "silk::executor", executor = id, pid, "{line}"),
            );
        });
    let transport = logger
        .map_err(|source| SpawnError::Spawn {
            path: config.executor_bin.clone(),
            source,
        })
        .and_then(|_| match segment {
            Some(segment) => {
                let alive = pidfd_watch(&child)?;
                Ok(Connection::Shm(ShmClient::new(
                    segment,
                    config.shm_wait,
                    alive,
                )))
            }
            None => {
                let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                    unreachable!("stdin and stdout were requested as pipes");
                };
                Ok(Connection::Pipe(PipeClient::new(stdin, stdout)?))
            }
        });
    let transport = match transport {
        Ok(t) => t,
        Err(e) => {
            kill_and_reap(&mut child);
            return Err(e);
        }
    };
    let pidfd = match rustix::process::pidfd_open(
        rustix::process::Pid::from_child(&child),
        rustix::process::PidfdFlags::empty(),
    ) {
        Ok(fd) => Arc::new(fd),
        Err(e) => {
            kill_and_reap(&mut child);
            return Err(SpawnError::Watch(e.into()));
        }
    };
    tracing::debug!(executor = id, pid, transport = %transport.kind(), "executor started");
    Ok(Live {
        id,
        child,
        pidfd,
        transport,
    })
}

/// SIGKILL to the executor's whole process group (it leads its own group): subprocesses a task
/// started die with it instead of outliving a timeout or a crash. Sent before the leader is
/// reaped, so the group id cannot have been reused.
fn kill_group(child: &Child) {
    let group = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(group) = group {
        // No process left in the group is fine.
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
}

fn kill_and_reap(child: &mut Child) -> String {
    kill_group(child);
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
    // What the dead executor's task started must not outlive it either.
    kill_group(child);
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
            restarts: 0,
            generation: 0,
        })
    }

    /// How many times the executor was restarted (after a crash, timeout or broken protocol)
    /// since the last call.
    pub fn take_restarts(&mut self) -> u64 {
        std::mem::take(&mut self.restarts)
    }

    /// The child's process id, if one is running.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.live.as_ref().map(|l| l.child.id())
    }

    /// A pidfd of the executor, started first if none runs (after a failed restart).
    ///
    /// # Errors
    /// [`TaskFailure::Crashed`] if it cannot be started.
    pub fn pidfd(&mut self) -> Result<Arc<OwnedFd>, TaskFailure> {
        Ok(self.live()?.pidfd.clone())
    }

    /// The running child, started first if none runs.
    fn live(&mut self) -> Result<&mut Live, TaskFailure> {
        if self.live.is_none() {
            let live = start(&self.config).map_err(|e| TaskFailure::Crashed {
                status: format!("executor could not be started: {e}"),
            })?;
            self.live = Some(live);
            self.generation += 1;
        }
        // Some: set just above if it was not.
        self.live.as_mut().ok_or_else(|| TaskFailure::Crashed {
            status: "executor could not be started".into(),
        })
    }

    /// The transport of the running child (pipes when shared memory was configured but could not
    /// be set up), if one is running.
    #[must_use]
    pub fn transport(&self) -> Option<TransportKind> {
        self.live.as_ref().map(|l| l.transport.kind())
    }

    /// Runs one task under the config's `max_output_bytes`; see
    /// [`NativeExecutor::execute_with_limit`].
    ///
    /// # Errors
    /// As [`NativeExecutor::execute_with_limit`].
    pub fn execute(
        &mut self,
        request: &Execute,
        hard_timeout: Duration,
    ) -> Result<TaskSuccess, TaskFailure> {
        let limit = self.config.max_output_bytes;
        self.execute_with_limit(request, hard_timeout, limit)
    }

    /// Runs one task. Never blocks longer than `hard_timeout` (plus the time to kill and respawn
    /// the executor when it expires). What the executor answers is bounded as it arrives: a
    /// response frame longer than `max_output_bytes` plus [`RESPONSE_OVERHEAD_BYTES`] is refused
    /// before it is read (the executor is killed), an output over `max_output_bytes` fails the
    /// task, and a failure's texts are cut ([`TaskFailure::bounded`]).
    ///
    /// # Errors
    /// The task's own failure ([`TaskFailure::Task`], [`TaskFailure::Panicked`],
    /// [`TaskFailure::Package`]), [`TaskFailure::OutputTooLarge`] over the limit,
    /// [`TaskFailure::Timeout`] after `hard_timeout`, or [`TaskFailure::Crashed`] when the
    /// executor died, broke the protocol or could not be started.
    pub fn execute_with_limit(
        &mut self,
        request: &Execute,
        hard_timeout: Duration,
        max_output_bytes: u64,
    ) -> Result<TaskSuccess, TaskFailure> {
        let deadline = Instant::now() + hard_timeout;
        let sent = self.live()?.transport.send_execute(request, deadline);
        if let Err(e) = sent {
            return Err(self.fail(e, hard_timeout, max_output_bytes));
        }
        self.receive(deadline, hard_timeout, max_output_bytes)
    }

    /// Queues `request` behind those already sent, for [`NativeExecutor::receive`] to collect
    /// its answer in turn (the executor runs requests one after another, in order). False if it
    /// could not be sent: the executor is gone or its ring stayed full until `deadline`; the
    /// answers to earlier requests then tell what happened. Never starts an executor.
    pub fn send_queued(&mut self, request: &Execute, deadline: Instant) -> bool {
        self.live
            .as_mut()
            .is_some_and(|live| live.transport.send_execute(request, deadline).is_ok())
    }

    /// The answer to the oldest request sent and not yet answered, under the same bounds and
    /// failure handling as [`NativeExecutor::execute_with_limit`]: waits until `deadline`
    /// (then the executor is killed and the task fails with a [`TaskFailure::Timeout`] naming
    /// `hard_timeout`), and restarts the executor after a timeout, a crash or a broken protocol
    /// ([`NativeExecutor::generation`] changes then; requests queued behind this one are lost
    /// with the old executor).
    ///
    /// # Errors
    /// As [`NativeExecutor::execute_with_limit`].
    pub fn receive(
        &mut self,
        deadline: Instant,
        hard_timeout: Duration,
        max_output_bytes: u64,
    ) -> Result<TaskSuccess, TaskFailure> {
        let too_large = |size: u64| TaskFailure::OutputTooLarge {
            what: "task output".into(),
            size_bytes: size,
            limit_bytes: max_output_bytes,
            limit: "max_output_bytes".into(),
        };
        let Some(live) = self.live.as_mut() else {
            return Err(TaskFailure::Crashed {
                status: "executor could not be started".into(),
            });
        };
        let frame_limit = max_output_bytes.saturating_add(RESPONSE_OVERHEAD_BYTES);
        live.transport
            .set_max_recv_bytes(usize::try_from(frame_limit).unwrap_or(usize::MAX));
        match live.transport.recv(deadline) {
            Ok(Response::Result {
                outcome: Outcome::Success(outputs),
                ..
            }) if outputs.len() as u64 > max_output_bytes => Err(too_large(outputs.len() as u64)),
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
            }) => Err(failure.bounded()),
            Err(e) => Err(self.fail(e, hard_timeout, max_output_bytes)),
        }
    }

    /// Kills the executor after a transport error, starts a fresh one, and names the failure.
    fn fail(
        &mut self,
        error: TransportError,
        hard_timeout: Duration,
        max_output_bytes: u64,
    ) -> TaskFailure {
        let Some(live) = self.live.as_mut() else {
            return TaskFailure::Crashed {
                status: format!("{error}; executor not running"),
            };
        };
        let failure = match error {
            TransportError::TooLarge { len, limit } => {
                // The frame was not read: the connection is out of step, the executor goes.
                let status = kill_and_reap(&mut live.child);
                tracing::warn!(executor = live.id, %status, size_bytes = len, limit_bytes = limit, "executor response over the limit; executor killed");
                TaskFailure::OutputTooLarge {
                    what: "executor response".into(),
                    size_bytes: len as u64,
                    limit_bytes: max_output_bytes,
                    limit: "max_output_bytes".into(),
                }
            }
            TransportError::TimedOut => {
                let status = kill_and_reap(&mut live.child);
                let after_ms = u64::try_from(hard_timeout.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(executor = live.id, %status, timeout_ms = after_ms, "task timed out; executor killed");
                TaskFailure::Timeout { after_ms }
            }
            TransportError::Closed => {
                let status = reap_after_close(&mut live.child);
                tracing::warn!(executor = live.id, %status, "executor crashed");
                TaskFailure::Crashed { status }
            }
            e => {
                let status = format!("{e}; executor killed ({})", kill_and_reap(&mut live.child));
                tracing::warn!(executor = live.id, %status, "executor connection failed");
                TaskFailure::Crashed { status }
            }
        };
        self.respawn();
        failure
    }

    /// Kills the executor and starts a fresh one (a task on it was stopped).
    pub fn restart(&mut self) {
        if let Some(live) = self.live.as_mut() {
            let status = kill_and_reap(&mut live.child);
            tracing::debug!(executor = live.id, %status, "executor killed to stop its task");
        }
        self.respawn();
    }

    /// Changes whenever the executor is replaced, so a caller that queued requests with
    /// [`NativeExecutor::send_queued`] can tell they were lost with the old one.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many request bytes may be queued with [`NativeExecutor::send_queued`] without a send
    /// ever waiting on the executor: a quarter of the request ring on shared memory (so the EM
    /// and the executor can never both block writing), none over pipes.
    #[must_use]
    pub fn queue_budget(&self) -> usize {
        match self.live.as_ref().map(|l| l.transport.kind()) {
            Some(TransportKind::Shm) => self.config.shm_ring_bytes / 4,
            _ => 0,
        }
    }

    fn respawn(&mut self) {
        self.restarts += 1;
        self.generation += 1;
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
                    // Reaped: its pid (the group id) may be reused now, so no group kill.
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
