//! A private MariaDB server for tests that need server settings the shared test server must not
//! change (e.g. a small `max_allowed_packet`): its own data directory in a temporary directory,
//! its own port, started with `mariadb-install-db` + `mariadbd`, killed and removed on drop.
//! Two users: `silk` (all rights on its database, no global ones) and `admin` (every right).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private server.
pub struct PrivateMariaDb {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Creates the system tables of a new server in `data`.
fn bootstrap(install: &Path, data: &Path, tmp: &Path, user: &[&str]) -> Result<(), String> {
    let out = Command::new(install)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .args(user)
        .args(["--auth-root-authentication-method=socket", "--skip-test-db"])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}; stdout: {}; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl PrivateMariaDb {
    /// Starts a server with `max_allowed_packet` = `max_packet` bytes. `None` (with a notice)
    /// when MySQL tests are off (`SILK_TEST_MYSQL_URL` unset) or MariaDB is not installed.
    pub fn start(test: &str, max_packet: u64) -> Option<Self> {
        Self::start_with(test, max_packet, &[])
    }

    /// As [`PrivateMariaDb::start`], with more `mariadbd` options (e.g. `--ssl-cert=…`).
    pub fn start_with(test: &str, max_packet: u64, options: &[String]) -> Option<Self> {
        silk_runtime::storage::testing::mysql_url(test)?;
        let (Some(install), Some(server), Some(client)) = (
            find("mariadb-install-db"),
            find("mariadbd"),
            find("mariadb"),
        ) else {
            eprintln!("skipping {test}: mariadb-install-db, mariadbd or mariadb not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Its own tmpdir: not the /tmp other servers and tests share.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let user: &[&str] = if is_root() { &["--user=root"] } else { &[] };
        // The bootstrap is MariaDB's step, not silk's: a failure is retried once on a fresh data
        // directory (and printed), a second one fails the test with MariaDB's output.
        if let Err(first) = bootstrap(&install, &data, &tmp, user) {
            eprintln!("{test}: mariadb-install-db failed, retrying once: {first}");
            let _ = std::fs::remove_dir_all(&data);
            if let Err(second) = bootstrap(&install, &data, &tmp, user) {
                panic!("mariadb-install-db failed twice; the second time: {second}");
            }
        }
        let port = crate::support::free_port();
        let socket = dir.path().join("sock");
        let child = Command::new(server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--max-allowed-packet={max_packet}"))
            .args(user)
            .args([
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M",
            ])
            .args(options)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let mut me = Self { dir, child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while me.admin(&client, "SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "private mariadbd did not answer within 60 s: {}",
                std::fs::read_to_string(me.dir.path().join("server.log")).unwrap_or_default()
            );
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!(
                    "private mariadbd exited ({status}): {}",
                    std::fs::read_to_string(me.dir.path().join("server.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        me.admin(
            &client,
            "CREATE DATABASE silk_p; \
             CREATE USER 'silk'@'127.0.0.1' IDENTIFIED BY 'silk'; \
             GRANT ALL PRIVILEGES ON `silk\\_%`.* TO 'silk'@'127.0.0.1'; \
             CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY 'admin'; \
             GRANT ALL PRIVILEGES ON *.* TO 'admin'@'127.0.0.1';",
        )
        .unwrap();
        Some(me)
    }

    fn admin(&self, client: &Path, sql: &str) -> Result<(), String> {
        let out = Command::new(client)
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .args(["-uroot", "-e", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// URL of the unprivileged user's database.
    pub fn url(&self) -> String {
        format!("mysql://silk:silk@127.0.0.1:{}/silk_p", self.port)
    }

    /// URL of the same database for a user who may change global settings.
    pub fn admin_url(&self) -> String {
        format!("mysql://admin:admin@127.0.0.1:{}/silk_p", self.port)
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        // SIGTERM would flush for a while; nothing here needs to survive.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
