//! The user's path, with the real `silk` binary: `silk dev` on free ports (the test reads them
//! from its banner), then `silk job submit|wait|status|outputs|cancel|list` against it with no
//! flags (address and admin token come from the credentials file `silk dev` writes, mode 0600),
//! checking stdout, stderr and exit codes, and that another group's token or a wrong one opens
//! nothing; finally Ctrl-C (SIGINT) stops `silk dev` cleanly and removes the file.

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn silk() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_silk"));
    cmd.env_remove("SILK_ADDRESS")
        .env_remove("SILK_GROUP")
        .env_remove("SILK_GROUP_SECRET")
        .env_remove("SILK_TOKEN")
        .env_remove("SILK_CA_FILE")
        .env_remove("SILK_CREDENTIALS");
    cmd
}

/// `silk job` with the credentials file at `credentials`.
fn silk_job(credentials: &Path) -> Command {
    let mut cmd = silk();
    cmd.arg("job").env("SILK_CREDENTIALS", credentials);
    cmd
}

/// `silk dev` as a child; killed on drop if the test fails before stopping it.
struct Dev {
    child: Option<Child>,
    address: String,
    credentials: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dev {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("silk/credentials.toml");
        let mut child = silk()
            .env("SILK_CREDENTIALS", &credentials)
            .args([
                "dev",
                "--port-base",
                "0",
                "--slots",
                "2",
                "--trust",
                "fixtures",
            ])
            .arg("--packages")
            .arg(support::packages_dir())
            .env("RUST_LOG", "warn")
            .env("SILK_DEV_METRICS_LISTEN", "127.0.0.1:0")
            .env("SILK_ASYNC_THREADS", "7")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut address = None;
        let mut banner = String::new();
        for line in stdout.lines() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if let Some(rest) = line.trim().strip_prefix("storage") {
                address = Some(rest.trim().to_owned());
            }
            if line.starts_with("Stop with Ctrl-C") {
                break;
            }
        }
        let address = address.unwrap_or_else(|| panic!("no storage address in banner:\n{banner}"));
        assert!(address.starts_with("http://127.0.0.1:"), "{banner}");
        assert!(
            banner.contains("silk job submit"),
            "banner names next steps:\n{banner}"
        );
        // The next steps run as printed: the `silk` they name is this binary (not on PATH here).
        let step = banner
            .lines()
            .find(|l| l.trim_end().ends_with("job list"))
            .unwrap_or_else(|| panic!("no `job list` step:\n{banner}"));
        let named = std::path::Path::new(step.split_whitespace().next().unwrap_or_default());
        assert_eq!(
            named.canonicalize().ok(),
            std::path::Path::new(env!("CARGO_BIN_EXE_silk"))
                .canonicalize()
                .ok(),
            "{banner}"
        );
        assert!(banner.contains("native      fixtures"), "{banner}");
        assert!(
            banner.contains(&credentials.display().to_string()),
            "{banner}"
        );
        Self {
            child: Some(child),
            address,
            credentials,
            _dir: dir,
        }
    }

    fn job(&self, args: &[&str]) -> Output {
        self.job_with(args, &[])
    }

    /// `silk job ARGS` with extra environment variables.
    fn job_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = silk_job(&self.credentials)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!(
            "silk job {args:?} -> {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// SIGINT, then the exit code within 60 s.
    fn interrupt(&mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        child.kill().unwrap();
        let _ = child.wait();
        panic!("silk dev did not stop on SIGINT");
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(out)))
}

const FAILING: &str = r#"{"schema_version": "1.0", "tasks": [
  {"package": "fixtures", "function": "always_fail", "outputs": ["int64"]}
]}"#;

const SLOW: &str = r#"{"schema_version": "1.0", "tasks": [
  {"package": "fixtures", "function": "sleep_ms", "inputs": ["int64"], "outputs": ["int64"]},
  {"package": "fixtures", "function": "sleep_ms", "inputs": ["int64"], "outputs": ["int64"],
   "sources": [{"task": 0, "output": 0}]}
]}"#;

/// fibonacci's `u64` input declared as a struct, which the submit-time check does not look into.
const OPAQUE_INPUT: &str = r#"{"schema_version": "1.0", "tasks": [
  {"package": "fixtures", "function": "fibonacci", "inputs": [{"struct": "N"}], "outputs": ["int64"]}
]}"#;

/// Threads of process `pid` named as tokio names its threads: its workers and the threads of its
/// blocking pool.
fn tokio_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "tokio-rt-worker")
        .count()
}

#[test]
fn dev_cluster_and_job_commands() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start();
    let pid = dev.child.as_ref().unwrap().id();
    // By default a quarter of the CPUs work (one here), and the blocking pool has a thread or two.
    let threads = tokio_threads(pid);
    assert!(
        threads >= 7,
        "SILK_ASYNC_THREADS=7 sets the workers: {threads} threads"
    );
    let diamond = repo("docs/examples/diamond.json");
    let diamond_inputs = repo("docs/examples/diamond-inputs.json");

    // Submit and wait: outputs on stdout, exit 0. The diamond mixes no trust: complex runs as wasm.
    let out = dev.job(&["submit", &diamond, "--inputs", &diamond_inputs]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "[[8.0,-72.0]]");
    assert!(stderr(&out).contains("submitted job"), "{}", stderr(&out));

    // --no-wait prints only the id; wait / status / outputs then work on it.
    let out = dev.job(&["submit", &diamond, "--inputs", &diamond_inputs, "--no-wait"]);
    assert_eq!(out.status.code(), Some(0));
    let id = stdout(&out);
    assert!(id.parse::<u64>().is_ok(), "{id:?}");
    let out = dev.job(&["wait", &id, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["outputs"], serde_json::json!([[8.0, -72.0]]));
    let out = dev.job(&["status", &id, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["tasks"]["succeeded"], 3);
    assert_eq!(v["tasks"]["total"], 3);
    let out = dev.job(&["outputs", &id]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "[[8.0,-72.0]]")
    );

    // A failing job: exit 1, the error's kind and message on stderr (or in the JSON).
    let failing = write(dir.path(), "failing.json", FAILING);
    let out = dev.job(&["submit", &failing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("[TaskError]") && err.contains("always_fail"),
        "{err}"
    );
    assert_eq!(err.matches("TaskError").count(), 1, "the kind once: {err}");
    let out = dev.job(&["submit", &failing, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(
        (v["state"].as_str(), v["error"]["kind"].as_str()),
        (Some("failed"), Some("TaskError"))
    );
    let failed_id = v["job_id"].as_u64().unwrap().to_string();
    let out = dev.job(&["outputs", &failed_id]);
    assert_eq!(out.status.code(), Some(4), "a failed job has no outputs");

    // Cancel a slow job; waiting on it then exits 1.
    let slow = write(dir.path(), "slow.json", SLOW);
    let slow_inputs = write(dir.path(), "slow-inputs.json", "[3000]");
    let out = dev.job(&["submit", &slow, "--inputs", &slow_inputs, "--no-wait"]);
    let slow_id = stdout(&out);
    let out = dev.job(&["cancel", &slow_id]);
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (Some(0), format!("job {slow_id}: cancelled"))
    );
    let out = dev.job(&["wait", &slow_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("was cancelled"), "{}", stderr(&out));
    // Cancelling a job that succeeded: the user's terms, not a state-machine error; with
    // -o json the error is a JSON document on stdout too.
    let out = dev.job(&["cancel", &id, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("has already ended (succeeded): there is nothing to cancel"),
        "{text}"
    );
    assert!(!text.contains("->"), "{text}");
    assert_eq!(json(&out)["exit_code"], 1, "{}", stdout(&out));
    assert!(
        json(&out)["error"]
            .as_str()
            .unwrap()
            .contains("nothing to cancel")
    );

    // A wait that times out: 124, and the job keeps running.
    let out = dev.job(&[
        "submit",
        &slow,
        "--inputs",
        &slow_inputs,
        "--timeout",
        "0.2",
    ]);
    assert_eq!(out.status.code(), Some(124));
    assert!(stderr(&out).contains("keeps running"), "{}", stderr(&out));

    // list: newest first, with the states seen above.
    let out = dev.job(&["list", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let jobs = json(&out);
    let ids: Vec<u64> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 6, "{jobs}");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let out = dev.job(&["list", "--state", "cancelled"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains(&slow_id) && text.contains("cancelled"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "header and one job: {text}");

    // An input that passes the submit check (a struct type is not looked into) but does not
    // decode into the task's parameter: the job's error names it in the submit check's terms.
    let opaque = write(dir.path(), "opaque.json", OPAQUE_INPUT);
    let out = dev.job(&["submit", &opaque, "--inputs", r#"["7"]"#]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            r#"[TaskError]: deserialization error: input 0 (`n`) of fibonacci: expected u64, got the string "7""#
        ),
        "{err}"
    );

    // The credentials file: private, naming the cluster.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(&dev.credentials).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&dev.credentials).unwrap();
        assert!(text.contains(&dev.address), "{text}");
    }
    // Another group sees none of the default group's jobs (4, as for a job that does not
    // exist); a wrong token or group secret opens nothing (5).
    let other = [("SILK_GROUP", "other"), ("SILK_GROUP_SECRET", "s2")];
    assert_eq!(
        dev.job_with(&["status", &id], &other).status.code(),
        Some(4)
    );
    assert_eq!(
        dev.job_with(&["outputs", &id], &other).status.code(),
        Some(4)
    );
    let out = dev.job_with(&["list", "-o", "json"], &other);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "[]"));
    let forged = format!("silk-group-1-{}", "0".repeat(64));
    let wrong = [("SILK_TOKEN", forged.as_str())];
    assert_eq!(
        dev.job_with(&["status", &id], &wrong).status.code(),
        Some(5)
    );
    let wrong_secret = [("SILK_GROUP", "other"), ("SILK_GROUP_SECRET", "nope")];
    assert_eq!(
        dev.job_with(&["status", &id], &wrong_secret).status.code(),
        Some(5)
    );

    // Usage errors: 2; unknown job: 4; nothing listening: 3.
    let out = dev.job(&["submit", &diamond, "--inputs", &slow_inputs]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("4 job input(s)"), "{}", stderr(&out));
    // A value of the wrong type is refused at submit, naming the input, the type and the value.
    let mistyped = write(
        dir.path(),
        "mistyped.json",
        r#"[[[1,2],[5,6]], [[3,4],[7,8]], [[1,2],[5,6]], "oops"]"#,
    );
    let out = dev.job(&["submit", &diamond, "--inputs", &mistyped]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for fact in [
        "job input 3",
        "expected list<struct Complex>",
        r#"the string "oops""#,
    ] {
        assert!(stderr(&out).contains(fact), "{fact}: {}", stderr(&out));
    }
    // A task or package that does not exist: the job fails saying what exists or was looked for.
    let typo = write(
        dir.path(),
        "typo.json",
        r#"{"schema_version": "1.0", "tasks": [{"package": "fixtures", "function": "fibonaci",
            "inputs": ["int64"], "outputs": ["int64"]}]}"#,
    );
    let out = dev.job(&["submit", &typo, "--inputs", "[10]"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for fact in [
        r#""fibonaci""#,
        "always_fail",
        r#"did you mean "fibonacci"?"#,
    ] {
        assert!(stderr(&out).contains(fact), "{fact}: {}", stderr(&out));
    }
    let missing = write(
        dir.path(),
        "missing.json",
        r#"{"schema_version": "1.0", "tasks": [{"package": "fixturez", "function": "noop"}]}"#,
    );
    let out = dev.job(&["submit", &missing]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for fact in ["fixturez.wasm", "libfixturez.so", "--trust fixturez"] {
        assert!(stderr(&out).contains(fact), "{fact}: {}", stderr(&out));
    }
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"schema_version": "1.0", "tasks": []}"#,
    );
    assert_eq!(dev.job(&["submit", &bad]).status.code(), Some(2));
    assert_eq!(dev.job(&["status", "999999"]).status.code(), Some(4));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = silk_job(&dev.credentials)
        .args(["list", "--retry-timeout", "0.3", "--address"])
        .arg(format!("127.0.0.1:{closed}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("retrying for up to 0.3 s (--retry-timeout"),
        "says at once that it retries, and how to change it: {}",
        stderr(&out)
    );

    let credentials = dev.credentials.clone();
    assert_eq!(dev.interrupt(), Some(0));
    assert!(
        !credentials.exists(),
        "silk dev leaves no stale credentials"
    );
}

/// Runs `silk dev` as `cmd` and checks it was refused before it started anything: exit code 1,
/// every one of `reasons` in stderr, and no banner.
fn assert_dev_refused(cmd: &mut Command, reasons: &[&str]) {
    let out = cmd.output().unwrap();
    let (out_text, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{err}");
    for reason in reasons {
        assert!(err.contains(reason), "{reason:?} not in: {err}");
    }
    assert!(
        !out_text.contains("Next steps") && !err.contains("Next steps"),
        "banner printed: {out_text}{err}"
    );
}

#[test]
fn async_threads_must_be_positive() {
    let out = silk()
        .args(["--async-threads", "0", "dev", "--port-base", "0"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--async-threads"), "{err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Next steps"),
        "nothing started"
    );
}

#[test]
fn dev_refuses_a_missing_packages_dir_and_untrusted_names() {
    assert_dev_refused(
        silk().args([
            "dev",
            "--port-base",
            "0",
            "--packages",
            "/nonexistent/silk-packages",
        ]),
        &["packages directory /nonexistent/silk-packages does not exist"],
    );
    assert_dev_refused(
        silk()
            .args([
                "dev",
                "--port-base",
                "0",
                "--trust",
                "wat_echo",
                "--packages",
            ])
            .arg(support::packages_dir()),
        &["--trust wat_echo: no native library"],
    );
    // A trusted package with no native executor anywhere silk looks (a copy of `silk` alone in
    // a directory): refused before anything starts. It used to print its banner and run a
    // cluster whose EM had already failed, so no task ever ran.
    let alone = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let lonely_silk = alone.path().join("silk");
    std::fs::hard_link(env!("CARGO_BIN_EXE_silk"), &lonely_silk)
        .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_silk"), &lonely_silk).map(drop))
        .unwrap();
    assert_dev_refused(
        Command::new(&lonely_silk)
            .args([
                "dev",
                "--port-base",
                "0",
                "--trust",
                "trivial",
                "--packages",
            ])
            .arg(support::packages_dir())
            .env_remove("SILK_EXECUTOR_NATIVE")
            .env("PATH", alone.path()),
        &[
            "native_packages needs the native executor",
            "silk-executor-native not found",
        ],
    );
}
