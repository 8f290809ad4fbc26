//! The production layout for the end-to-end bench: storage (on MySQL/MariaDB), the scheduler and
//! one EM, each its own `silk` process, talking gRPC over loopback with tokens checked on every
//! call, as deployed. Config files and tokens go to a temporary directory; every process is
//! killed when the [`ProcessCluster`] is dropped. Also the CPU time of a process tree, to report
//! CPU per task.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use silk_core::auth::{ClientSecurity, Token};

/// Storage, scheduler and EM as three processes.
#[derive(Debug)]
pub struct ProcessCluster {
    dir: tempfile::TempDir,
    storage_port: u16,
    admin: Token,
    /// Storage, the scheduler and the EM, with their names.
    procs: Vec<(&'static str, Child)>,
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The `silk` binary beside the running bench (`target/release/silk`).
fn silk_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's path");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("the bench runs from target/release/deps");
    let bin = release.join("silk");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --release -p silk-runtime` first",
        bin.display()
    );
    bin
}

impl ProcessCluster {
    /// Starts the three processes on database `db_url`, the EM with `slots` slots running the
    /// packages in `native` natively, and waits until storage answers.
    ///
    /// # Panics
    /// When a process cannot be started or storage does not answer within 60 s (a bench has
    /// nothing to measure then).
    pub async fn start(
        db_url: &str,
        packages: &Path,
        executor_bin: &Path,
        native: &[String],
        slots: usize,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a directory for configs");
        let path = |name: &str| dir.path().join(name);
        let token = || Token::generate().expect("a random token");
        let (cluster, admin) = (token(), token());
        for (name, t) in [
            ("cluster-token", &cluster),
            ("admin-token", &admin),
            ("group-key", &token()),
        ] {
            std::fs::write(path(name), t.expose()).expect("write a token file");
        }
        let (storage_port, scheduler_port) = (free_port(), free_port());
        let auth = format!(
            "[auth]\ncluster_token_file = \"{}\"\n",
            path("cluster-token").display()
        );
        let configs = [
            (
                "storage",
                format!(
                    "listen = \"127.0.0.1:{storage_port}\"\ndb = \"{db_url}\"\n{auth}\
                     admin_token_file = \"{}\"\ngroup_token_key_file = \"{}\"\n",
                    path("admin-token").display(),
                    path("group-key").display()
                ),
            ),
            (
                "scheduler",
                format!(
                    "listen = \"127.0.0.1:{scheduler_port}\"\n\
                     storage_url = \"http://127.0.0.1:{storage_port}\"\n{auth}"
                ),
            ),
            (
                "em",
                format!(
                    "storage_url = \"http://127.0.0.1:{storage_port}\"\n\
                     scheduler_url = \"http://127.0.0.1:{scheduler_port}\"\n\
                     slots = {slots}\npackage_dir = \"{}\"\nexecutor_bin = \"{}\"\n\
                     native_packages = [{}]\npoll_wait_ms = 200\n{auth}",
                    packages.display(),
                    executor_bin.display(),
                    native
                        .iter()
                        .map(|p| format!("\"{p}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        ];
        let silk = silk_bin();
        let mut procs = Vec::new();
        for (service, config) in configs {
            let file = path(&format!("{service}.toml"));
            std::fs::write(&file, config).expect("write a config");
            let log = std::fs::File::create(path(&format!("{service}.log"))).expect("a log file");
            let child = Command::new(&silk)
                .arg(service)
                .arg("--config")
                .arg(&file)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("start silk {service}: {e}"));
            procs.push((service, child));
        }
        let mut cluster = Self {
            dir,
            storage_port,
            admin,
            procs,
        };
        cluster.wait_for_storage().await;
        cluster
    }

    async fn wait_for_storage(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = format!("127.0.0.1:{}", self.storage_port);
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            // A process that failed to start (a bad config, a taken port) fails the bench now.
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "storage did not answer within 60 s; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Storage's URL.
    #[must_use]
    pub fn storage_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.storage_port)
    }

    /// What a client needs: the admin token (it may create groups).
    #[must_use]
    pub fn client_security(&self) -> ClientSecurity {
        ClientSecurity {
            token: Some(self.admin.clone()),
            tls: None,
        }
    }

    /// Process ids of storage, the scheduler and the EM.
    #[must_use]
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|(_, child)| child.id()).collect()
    }

    /// Panics, with the end of its log, if a process of the cluster has exited: a bench waiting
    /// for a job it can no longer run would wait forever.
    pub fn assert_alive(&mut self) {
        for (service, child) in &mut self.procs {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{service}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                panic!(
                    "silk {service} exited ({status}); the end of its log:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        // The EM's executors die with it (their parent-death signal).
        for (_, child) in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
