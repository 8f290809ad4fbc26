//! Harness of the end-to-end tests (`e2e_*.rs`): a [`Cluster`] of real `silk` processes
//! (storage, scheduler, N execution managers) on random loopback ports with a SQLite or
//! MySQL/MariaDB database, which a test can `kill -9` and restart piece by piece, and [`Jobs`], a
//! raw-gRPC job client that survives storage restarts (it reconnects and re-opens its watch).
//!
//! Every process runs in its own process group, killed as a whole. An execution manager's native
//! executors run in process groups of their own (so a Ctrl-C reaches the EM alone); they die with
//! their EM through their parent-death signal, which [`Cluster::kill_em`] checks, so a kill takes
//! them down too (as when a machine dies) and nothing outlives the test. Each process's stderr
//! goes to a file in the cluster's temp dir; when a test panics or its scenario is dropped by the
//! watchdog before [`Cluster::stop`], the tail of every log is printed.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

pub mod graphs;
pub mod jobs;
pub mod memory;
pub mod secure;
pub mod values;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub use jobs::Jobs;
pub use secure::Secrets;

#[path = "../support/mod.rs"]
pub mod support;

/// Liveness settings of every cluster: a dead execution manager is noticed after
/// [`DEAD_CUTOFF_MS`], checked every [`SWEEP_MS`].
pub const HEARTBEAT_MS: u64 = 200;
/// How long storage and the scheduler wait for a heartbeat before declaring an EM dead.
pub const DEAD_CUTOFF_MS: u64 = 2000;
/// Sweep period of storage and of the scheduler's registry.
pub const SWEEP_MS: u64 = 200;

/// Where storage keeps its data.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file in the cluster's temp dir.
    Sqlite,
    /// A fresh database on the MySQL/MariaDB server of this URL (`SILK_TEST_MYSQL_URL`).
    MySql(String),
}

impl Backend {
    /// SQLite, plus MySQL when `SILK_TEST_MYSQL_URL` is set (else a skip notice naming `test`).
    pub fn all(test: &str) -> Vec<Self> {
        let mut all = vec![Self::Sqlite];
        all.extend(silk_runtime::storage::testing::mysql_url(test).map(Self::MySql));
        all
    }
}

/// One execution manager's settings.
#[derive(Debug, Clone)]
pub struct EmSpec {
    /// Executor slots.
    pub slots: usize,
    /// Packages allowed to run natively.
    pub native: Vec<String>,
    /// Extra TOML appended to the config (e.g. `[wasm_packages.fixtures]` limits).
    pub extra: String,
}

impl EmSpec {
    /// `fixtures` runs natively; every other package as wasm.
    pub fn native(slots: usize) -> Self {
        Self {
            slots,
            native: vec!["fixtures".into()],
            extra: String::new(),
        }
    }

    /// Every package runs as wasm.
    pub fn wasm_only(slots: usize) -> Self {
        Self {
            slots,
            native: Vec::new(),
            extra: String::new(),
        }
    }

    /// Appends TOML to the config file.
    #[must_use]
    pub fn with(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }
}

/// A `silk` child process in its own process group.
#[derive(Debug)]
struct Proc {
    name: String,
    child: Child,
    reaped: bool,
}

impl Proc {
    fn spawn(name: &str, args: &[&str], log: &Path, cwd: Option<&Path>) -> Self {
        let stderr = File::create(log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_silk"));
        cmd.args(args)
            // The EMs' per-task `task started` lines let a test count executions.
            .env("RUST_LOG", "info,silk_runtime::em::pull=debug")
            // Metrics endpoints on free ports, never the services' fixed defaults.
            .env("SILK_STORAGE_METRICS_LISTEN", "127.0.0.1:0")
            .env("SILK_SCHEDULER_METRICS_LISTEN", "127.0.0.1:0")
            .env("SILK_EM_METRICS_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.into(),
            child,
            reaped: false,
        }
    }

    /// Sends `signal` to the whole process group (executors have their own groups and die with
    /// their EM).
    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }

    /// `kill -9` of the process group, then reaps the process.
    fn kill9(mut self) {
        self.signal_group("-KILL");
        let _ = self.child.wait();
        self.reaped = true;
    }

    /// SIGTERM to the process only, then its exit status within 30 s.
    async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..1200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.reaped = true;
                return status;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} (pid {pid}) did not stop on SIGTERM", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Also after a clean exit: nothing left in the group may outlive the test.
        self.signal_group("-KILL");
        if !self.reaped {
            let _ = self.child.wait();
        }
    }
}

/// Pids of the live children of `parent` (from `/proc/*/stat`).
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            proc_stat(pid).is_some_and(|s| s.get(1).is_some_and(|ppid| *ppid == parent.to_string()))
        })
        .collect()
}

/// Whether `pid` exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| s.first().is_some_and(|state| state != "Z"))
}

/// Fields of `/proc/<pid>/stat` after the command name: state, ppid, pgrp, …
fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// A running cluster. Dropping it kills every process; [`Cluster::stop`] stops them cleanly.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    db_url: String,
    mysql: Option<(String, String)>,
    storage_port: u16,
    scheduler_port: u16,
    secrets: Secrets,
    storage: Option<Proc>,
    scheduler: Option<Proc>,
    ems: Vec<Option<Proc>>,
    spawned: usize,
    stopped: bool,
}

impl Cluster {
    /// Starts storage, the scheduler and one EM per spec, and waits until storage answers.
    pub async fn start(backend: &Backend, ems: &[EmSpec]) -> Self {
        Self::start_in_order(backend, ems, false).await
    }

    /// As [`Cluster::start`]; with `ems_first` the EMs start first, then the scheduler, then
    /// storage (the services must wait for each other).
    pub async fn start_in_order(backend: &Backend, ems: &[EmSpec], ems_first: bool) -> Self {
        Self::start_with(backend, ems, ems_first, "", false).await
    }

    /// As [`Cluster::start_in_order`], with `storage_toml` appended to storage's `[storage]`
    /// table (e.g. `free_instance_losses = 1`); with `default_liveness` the services keep their
    /// default heartbeat interval, dead-EM cutoffs and sweep intervals instead of the short
    /// test ones ([`HEARTBEAT_MS`], [`DEAD_CUTOFF_MS`], [`SWEEP_MS`]).
    pub async fn start_with(
        backend: &Backend,
        ems: &[EmSpec],
        ems_first: bool,
        storage_toml: &str,
        default_liveness: bool,
    ) -> Self {
        let cutoff = (!default_liveness).then_some(DEAD_CUTOFF_MS);
        Self::start_inner(backend, ems, ems_first, storage_toml, cutoff, "").await
    }

    /// As [`Cluster::start`], with `toml` (top-level tables, e.g. `[traces]`) appended to the
    /// config file of every service.
    pub async fn start_configured(backend: &Backend, ems: &[EmSpec], toml: &str) -> Self {
        Self::start_inner(backend, ems, false, "", Some(DEAD_CUTOFF_MS), toml).await
    }

    /// As [`Cluster::start`], but storage and the scheduler wait `dead_cutoff_ms` for a heartbeat
    /// before declaring an EM dead (for tests whose storage is busy writing hundreds of MiB on a
    /// loaded machine, which delays its heartbeat bookkeeping).
    pub async fn start_patient(backend: &Backend, ems: &[EmSpec], dead_cutoff_ms: u64) -> Self {
        Self::start_inner(backend, ems, false, "", Some(dead_cutoff_ms), "").await
    }

    /// Starts a cluster; `dead_cutoff_ms: None` keeps the services' default liveness settings;
    /// `every_toml` ends every service's config file.
    async fn start_inner(
        backend: &Backend,
        ems: &[EmSpec],
        ems_first: bool,
        storage_toml: &str,
        dead_cutoff_ms: Option<u64>,
        every_toml: &str,
    ) -> Self {
        let (cutoffs, heartbeat) = match dead_cutoff_ms {
            None => (String::new(), String::new()),
            Some(cutoff) => (
                format!("dead_em_cutoff_ms = {cutoff}\nsweep_interval_ms = {SWEEP_MS}\n"),
                format!("heartbeat_interval_ms = {HEARTBEAT_MS}\n"),
            ),
        };
        let packages = support::packages_dir();
        let dir = tempfile::tempdir().unwrap();
        let (db_url, mysql) = match backend {
            Backend::Sqlite => (
                format!("sqlite:{}", dir.path().join("storage.db").display()),
                None,
            ),
            Backend::MySql(server) => {
                let (url, name) = silk_runtime::storage::testing::create_mysql_database(server)
                    .await
                    .unwrap();
                (url, Some((server.clone(), name)))
            }
        };
        let (storage_port, scheduler_port) = (support::free_port(), support::free_port());
        let storage_url = format!("https://127.0.0.1:{storage_port}");
        let scheduler_url = format!("https://127.0.0.1:{scheduler_port}");
        let secrets = Secrets::make(dir.path());
        write(
            dir.path(),
            "storage.toml",
            &format!(
                "listen = \"127.0.0.1:{storage_port}\"\ndb = \"{db_url}\"\n\
                 [storage]\n{cutoffs}{storage_toml}\n{}\n{every_toml}",
                secrets.storage_toml()
            ),
        );
        write(
            dir.path(),
            "scheduler.toml",
            &format!(
                "listen = \"127.0.0.1:{scheduler_port}\"\nstorage_url = \"{storage_url}\"\n\
                 [core]\nstorage_poll_wait_ms = 200\n\
                 [registry]\n{cutoffs}{}\n{every_toml}",
                secrets.scheduler_toml()
            ),
        );
        // Compiled wasm modules are shared by every cluster of the test run (the cache writes
        // to temporary names and renames, so concurrent EMs are fine).
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("silk-e2e-wasm-cache");
        for (i, spec) in ems.iter().enumerate() {
            std::fs::create_dir(dir.path().join(format!("em{i}"))).unwrap();
            let native = spec
                .native
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ");
            write(
                dir.path(),
                &format!("em{i}.toml"),
                &format!(
                    "storage_url = \"{storage_url}\"\nscheduler_url = \"{scheduler_url}\"\n\
                     slots = {}\npackage_dir = \"{}\"\nnative_packages = [{native}]\n\
                     poll_wait_ms = 200\n{heartbeat}\
                     drain_grace_ms = 10000\n{}\n[wasm_host]\ncache_dir = \"{}\"\n{}\n{every_toml}",
                    spec.slots,
                    packages.display(),
                    spec.extra,
                    cache.display(),
                    secrets.em_toml(),
                ),
            );
        }
        let mut cluster = Self {
            dir,
            db_url,
            mysql,
            storage_port,
            scheduler_port,
            secrets,
            storage: None,
            scheduler: None,
            ems: Vec::new(),
            spawned: 0,
            stopped: false,
        };
        if !ems_first {
            cluster.start_storage();
            cluster.start_scheduler();
        }
        for i in 0..ems.len() {
            let p = cluster.spawn(&format!("em{i}"), Some(&format!("em{i}")));
            cluster.ems.push(Some(p));
        }
        if ems_first {
            cluster.start_scheduler();
            cluster.start_storage();
        }
        drop(jobs::connect(&cluster.storage_url(), &cluster.secrets.admin_client()).await);
        cluster
    }

    fn spawn(&mut self, name: &str, cwd: Option<&str>) -> Proc {
        let service = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let config = self.path(&format!("{name}.toml"));
        let log = self.path(&format!("{:02}-{name}.log", self.spawned));
        self.spawned += 1;
        let cwd = cwd.map(|d| self.path(d));
        Proc::spawn(
            name,
            &[service, "--config", config.to_str().unwrap()],
            &log,
            cwd.as_deref(),
        )
    }

    /// `https://127.0.0.1:<storage port>` (storage serves TLS).
    pub fn storage_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.storage_port)
    }

    /// The cluster's tokens and certificates.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The storage database URL (`sqlite:…` or `mysql://…`).
    pub fn db_url(&self) -> &str {
        &self.db_url
    }

    /// A path in the cluster's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `path(name)` as a string, e.g. for a task input.
    pub fn path_string(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// EM `i`'s working directory (also its native executors').
    pub fn em_dir(&self, i: usize) -> PathBuf {
        self.path(&format!("em{i}"))
    }

    /// A job client.
    pub async fn jobs(&self) -> Jobs {
        Jobs::connect(&self.storage_url(), &self.secrets.admin_client()).await
    }

    /// Starts storage (again) on its port and database.
    pub fn start_storage(&mut self) {
        assert!(self.storage.is_none(), "storage is running");
        self.storage = Some(self.spawn("storage", None));
    }

    /// Names (`comm`, at most 15 bytes) of the threads of the running `storage`, `scheduler` or
    /// `em<i>`.
    pub fn thread_names(&self, service: &str) -> Vec<String> {
        let pid = self.pid(service);
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|c| c.trim_end().to_owned())
            .collect()
    }

    /// Peak resident memory so far (`VmHWM`) of the running `storage`, `scheduler` or `em<i>`.
    pub fn peak_rss_bytes(&self, service: &str) -> u64 {
        let pid = self.pid(service);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"));
        kib * 1024
    }

    /// The pid of the running `storage`, `scheduler` or `em<i>`.
    pub fn pid(&self, service: &str) -> u32 {
        let proc = match service {
            "storage" => self.storage.as_ref(),
            "scheduler" => self.scheduler.as_ref(),
            em => em
                .strip_prefix("em")
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| self.ems.get(i)?.as_ref()),
        };
        proc.unwrap_or_else(|| panic!("{service} is not running"))
            .child
            .id()
    }

    /// The log files of every process ever started for `service` (`storage`, `scheduler`,
    /// `em`), in start order.
    pub fn logs_of(&self, service: &str) -> Vec<PathBuf> {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension().is_some_and(|x| x == "log")
                            && p.file_stem().and_then(|s| s.to_str()).is_some_and(|s| {
                                s.split_once('-').is_some_and(|(_, name)| {
                                    name.trim_end_matches(|c: char| c.is_ascii_digit()) == service
                                })
                            })
                    })
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        logs
    }

    /// Starts EM `i` again (after [`Cluster::kill_em`]) with its config and directory.
    pub fn start_em(&mut self, i: usize) {
        assert!(self.ems[i].is_none(), "EM {i} is running");
        let name = format!("em{i}");
        self.ems[i] = Some(self.spawn(&name, Some(&name)));
    }

    /// `kill -9` storage.
    pub fn kill_storage(&mut self) {
        self.storage.take().expect("storage is running").kill9();
    }

    /// Starts the scheduler (again) on its port.
    pub fn start_scheduler(&mut self) {
        assert!(self.scheduler.is_none(), "the scheduler is running");
        self.scheduler = Some(self.spawn("scheduler", None));
    }

    /// `kill -9` the scheduler.
    pub fn kill_scheduler(&mut self) {
        self.scheduler
            .take()
            .expect("the scheduler is running")
            .kill9();
    }

    /// The pid of EM `i`, if it runs.
    pub fn em_pid(&self, i: usize) -> Option<u32> {
        self.ems[i].as_ref().map(|p| p.child.id())
    }

    /// Forgets EM `i`, which died on its own (e.g. a task killed it): reaps it.
    pub fn reap_em(&mut self, i: usize) {
        if let Some(em) = self.ems[i].take() {
            em.kill9();
        }
    }

    /// `kill -9` EM `i`; checks that its executors die with it (parent-death signal: they are
    /// not in its process group).
    pub fn kill_em(&mut self, i: usize) {
        let em = self.ems[i].take().expect("the EM is running");
        let executors = children_of(em.child.id());
        eprintln!("killing EM {i} (executors {executors:?})");
        em.kill9();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for pid in executors {
            while process_alive(pid) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "executor {pid} outlived its killed EM"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// SIGTERM every process (EMs first, storage last); each must exit 0. Then no log line of
    /// any process may hold a secret: the cluster, admin and group-key tokens, or a group token.
    pub async fn stop(mut self) {
        let mut procs: Vec<Proc> = self.ems.iter_mut().filter_map(Option::take).collect();
        procs.extend(self.scheduler.take());
        procs.extend(self.storage.take());
        for p in procs {
            let name = p.name.clone();
            let status = p.terminate().await;
            assert!(status.success(), "{name} exited with {status} on SIGTERM");
        }
        self.assert_no_secret_logged();
        if let Some((server, name)) = self.mysql.take() {
            let _ = silk_runtime::storage::testing::drop_mysql_database(&server, &name).await;
        }
        self.stopped = true;
    }

    /// Panics when a log line of any process holds one of the cluster's secrets or a group
    /// token (they all start `silk-group-`).
    pub fn assert_no_secret_logged(&self) {
        let mut secrets = self.secrets.all();
        secrets.push("silk-group-".into());
        let mut lines = 0;
        for service in ["storage", "scheduler", "em"] {
            for log in self.logs_of(service) {
                let text = std::fs::read_to_string(&log).unwrap();
                for line in text.lines() {
                    lines += 1;
                    for secret in &secrets {
                        assert!(
                            !line.contains(secret.as_str()),
                            "{} logs a secret: {line}",
                            log.display()
                        );
                    }
                }
            }
        }
        assert!(lines > 0, "no log lines to check");
    }

    /// Prints the last lines of every process log.
    fn dump_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "===== {} (last {} of {} lines) =====\n{}",
                log.display(),
                tail.len(),
                lines.len(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.stopped || std::thread::panicking() {
            self.dump_logs();
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Indexes of the tasks of `job` whose completion storage has persisted (`task_completions`),
/// read straight from the database.
pub async fn persisted_tasks(db_url: &str, job: u64) -> Vec<u64> {
    use sqlx::Connection;
    let query = "SELECT task_index FROM task_completions WHERE job_id = ? ORDER BY task_index";
    let job = i64::try_from(job).unwrap();
    let rows: Vec<i64> = if db_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&format!("{db_url}?mode=ro"))
            .await
            .unwrap();
        let rows = sqlx::query_scalar(query)
            .bind(job)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        rows
    } else {
        let mut conn = sqlx::MySqlConnection::connect(db_url).await.unwrap();
        let rows = sqlx::query_scalar(query)
            .bind(job)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        rows
    };
    rows.into_iter()
        .map(|i| u64::try_from(i).unwrap())
        .collect()
}

/// Polls `check` every 50 ms until it returns `Some` (no deadline of its own: scenarios run
/// under a watchdog).
pub async fn poll<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    loop {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Held shared by every scenario and alone by the load scenarios ([`watchdog_alone`]), so a test
/// that keeps both cores busy for minutes never starves the timing of another.
static CPU: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Runs a scenario under a watchdog (started once the scenario may run: not while a load
/// scenario runs).
pub async fn watchdog<F: std::future::Future<Output = ()>>(secs: u64, scenario: F) {
    let _shared = CPU.read().await;
    timed(secs, scenario).await;
}

/// [`watchdog`] for a scenario that loads the machine: it runs with no other scenario beside it.
pub async fn watchdog_alone<F: std::future::Future<Output = ()>>(secs: u64, scenario: F) {
    let _alone = CPU.write().await;
    timed(secs, scenario).await;
}

async fn timed<F: std::future::Future<Output = ()>>(secs: u64, scenario: F) {
    tokio::time::timeout(Duration::from_secs(secs), scenario)
        .await
        .unwrap_or_else(|_| panic!("watchdog: scenario did not finish within {secs} s"));
}

/// The lines of the file at `path` (none if it does not exist).
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}
