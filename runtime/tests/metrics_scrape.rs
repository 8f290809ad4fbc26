//! The Prometheus endpoint of a real `silk dev` process (all three services' metrics on one
//! port, chosen free by the test and read from the banner), scraped over HTTP before, during and
//! after jobs: slot gauges rise while a task runs and return to zero, the dispatch queue and the
//! ready lane drain, jobs are counted by state, a failed task counts under its failure kind,
//! package and backend, wasm tasks burn fuel, and group commits and bytes moved are counted.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `silk dev` as a child, killed on drop.
struct Dev {
    child: Child,
    address: String,
    metrics: String,
}

impl Dev {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_silk"))
            .args([
                "dev",
                "--port-base",
                "0",
                "--slots",
                "2",
                "--trust",
                "fixtures",
            ])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--packages")
            .arg(support::packages_dir())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut address, mut metrics, mut banner) = (None, None, String::new());
        for line in stdout.lines() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("storage") {
                address = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("metrics") {
                metrics = Some(rest.trim().to_owned());
            }
            if line.starts_with("Stop with Ctrl-C") {
                break;
            }
        }
        let address = address.unwrap_or_else(|| panic!("no storage address:\n{banner}"));
        let metrics = metrics.unwrap_or_else(|| panic!("no metrics address:\n{banner}"));
        let metrics = metrics
            .strip_prefix("http://")
            .and_then(|m| m.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("metrics line is not an URL:\n{banner}"))
            .to_owned();
        Self {
            child,
            address,
            metrics,
        }
    }

    fn job(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_silk"))
            .arg("job")
            .args(args)
            .args(["--address", &self.address])
            .env_remove("SILK_GROUP")
            .env_remove("SILK_GROUP_SECRET")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        eprintln!(
            "silk job {args:?} -> {:?} {stdout} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), stdout)
    }

    /// `GET path` over a fresh connection: the status line and the body.
    fn get(&self, path: &str) -> (String, String) {
        let mut stream = TcpStream::connect(&self.metrics).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.lines().next().unwrap_or_default().to_owned();
        assert!(
            path != "/metrics" || head.contains("text/plain; version=0.0.4"),
            "{head}"
        );
        (status, body.to_owned())
    }

    fn scrape(&self) -> Scrape {
        let (status, body) = self.get("/metrics");
        assert!(status.contains(" 200 "), "{status}");
        Scrape(body)
    }

    /// Scrapes until `ok` holds (10 s at most).
    fn scrape_until(&self, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.scrape();
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "never saw {what}:\n{}", s.0);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One exposition.
struct Scrape(String);

impl Scrape {
    /// The value of the series written exactly as `series` (name and labels), if present.
    fn get(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
            rest.trim().parse().ok()
        })
    }

    fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.0))
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

const SLOW: &str = r#"{"schema_version": "1.0", "tasks": [
  {"package": "fixtures", "function": "sleep_ms", "inputs": ["int64"], "outputs": ["int64"]}
]}"#;

const FAILING: &str = r#"{"schema_version": "1.0", "tasks": [
  {"package": "fixtures", "function": "always_fail", "outputs": ["int64"]}
]}"#;

const NATIVE: &str = "backend=\"native\"";

#[test]
fn metrics_follow_jobs_through_the_cluster() {
    // Watchdog: a hung cluster fails the test instead of stalling the suite.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(240));
        if !flag.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("metrics_scrape: watchdog fired after 240 s");
            std::process::abort();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start();

    // At rest: two slots, none busy, nothing queued, other paths are not metrics.
    let s = dev.scrape_until("two slots alive", |s| s.get("silk_em_slots") == Some(2.0));
    assert_eq!(s.value("silk_em_slots_busy"), 0.0);
    assert_eq!(s.value("silk_scheduler_dispatch_queue_length"), 0.0);
    assert_eq!(s.value("silk_storage_jobs{state=\"Running\"}"), 0.0);
    assert!(dev.get("/").0.contains(" 404 "));

    // While a 2 s task runs: one slot busy, its job running, its start counted.
    let slow = write(dir.path(), "slow.json", SLOW);
    let slow_inputs = write(dir.path(), "slow-inputs.json", "[2000]");
    let (code, slow_id) = dev.job(&["submit", &slow, "--inputs", &slow_inputs, "--no-wait"]);
    assert_eq!(code, Some(0));
    let sleep = format!("{{package=\"fixtures\",{NATIVE}}}");
    let s = dev.scrape_until("a busy slot", |s| s.get("silk_em_slots_busy") == Some(1.0));
    assert_eq!(s.value("silk_storage_jobs{state=\"Running\"}"), 1.0);
    assert_eq!(s.value(&format!("silk_em_tasks_started_total{sleep}")), 1.0);
    assert_eq!(
        s.value(&format!("silk_em_tasks_succeeded_total{sleep}")),
        0.0
    );
    assert_eq!(dev.job(&["wait", &slow_id]).0, Some(0));

    // A failing native task: counted under its kind; its job failed.
    let failing = write(dir.path(), "failing.json", FAILING);
    assert_eq!(dev.job(&["submit", &failing]).0, Some(1));
    // A wasm job of three tasks (the diamond example, package `complex`).
    let diamond = repo("docs/examples/diamond.json");
    let inputs = repo("docs/examples/diamond-inputs.json");
    assert_eq!(
        dev.job(&["submit", &diamond, "--inputs", &inputs]).0,
        Some(0)
    );

    // Afterwards every gauge is back at rest and the counters add up.
    let s = dev.scrape_until("idle slots", |s| s.get("silk_em_slots_busy") == Some(0.0));
    let fail = |kind: &str| {
        s.value(&format!(
            "silk_em_tasks_failed_total{{package=\"fixtures\",{NATIVE},kind=\"{kind}\"}}"
        ))
    };
    assert_eq!(fail("TaskError"), 1.0);
    assert_eq!(fail("Panicked"), 0.0);
    assert_eq!(
        s.value(&format!("silk_em_tasks_succeeded_total{sleep}")),
        1.0
    );
    assert_eq!(s.value(&format!("silk_em_tasks_started_total{sleep}")), 2.0);
    let complex = "{package=\"complex\",backend=\"wasm\"}";
    assert_eq!(
        s.value(&format!("silk_em_tasks_succeeded_total{complex}")),
        3.0
    );
    assert_eq!(
        s.value(&format!("silk_em_task_duration_seconds_count{complex}")),
        3.0
    );
    assert!(s.value("silk_em_wasm_fuel_consumed_total{package=\"complex\"}") > 0.0);
    assert!(s.value(&format!("silk_em_task_input_bytes_total{complex}")) > 0.0);
    assert!(s.value(&format!("silk_em_task_output_bytes_total{complex}")) > 0.0);
    // The 2 s sleep lands in the 2.5 s bucket, not below 1 s.
    let slow_bucket = |le: &str| {
        s.value(&format!(
            "silk_em_task_duration_seconds_bucket{{package=\"fixtures\",{NATIVE},le=\"{le}\"}}"
        ))
    };
    assert_eq!(
        slow_bucket("1"),
        1.0,
        "only always_fail is quicker than 1 s"
    );
    assert_eq!(slow_bucket("2.5"), 2.0);
    assert_eq!(s.value("silk_em_executor_restarts_total"), 0.0);

    assert_eq!(s.value("silk_storage_jobs{state=\"Succeeded\"}"), 2.0);
    assert_eq!(s.value("silk_storage_jobs{state=\"Failed\"}"), 1.0);
    assert_eq!(s.value("silk_storage_jobs{state=\"Running\"}"), 0.0);
    assert_eq!(s.value("silk_storage_lane_tasks{lane=\"ready\"}"), 0.0);
    assert_eq!(s.value("silk_storage_reports_failed_total"), 1.0);
    assert_eq!(s.value("silk_storage_reports_succeeded_total"), 4.0);
    assert_eq!(s.value("silk_storage_instances_registered_total"), 5.0);
    // Four completions persisted (the failed task has none), in one or more batches.
    assert_eq!(s.value("silk_storage_group_commit_batch_size_sum"), 4.0);
    let batches = s.value("silk_storage_group_commit_duration_seconds_count");
    assert!((1.0..=4.0).contains(&batches), "{batches}");
    assert!(s.value("silk_storage_task_output_bytes_total") > 0.0);

    assert_eq!(s.value("silk_scheduler_dispatch_queue_length"), 0.0);
    let dispatched = s.value("silk_scheduler_assignments_dispatched_total");
    assert!(dispatched >= 5.0, "{dispatched}");
    assert_eq!(
        s.value("silk_scheduler_assignment_latency_seconds_count"),
        dispatched
    );
    done.store(true, std::sync::atomic::Ordering::SeqCst);
}
