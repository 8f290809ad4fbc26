//! A real Prometheus server scrapes a real `silk dev`: the exposition parses, the target is up,
//! and a job's tasks show up in Prometheus' own query API. Needs the `prometheus` binary
//! (`SILK_TEST_PROMETHEUS`, else `prometheus` on PATH; `scripts/install-prometheus` installs
//! Debian's); without it the test prints a notice and passes, except in CI (`CI` set), where it
//! fails.

use crate::support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::dev::{Dev, http_get};

/// The Prometheus binary, or `None` (after a notice) outside CI.
fn prometheus_bin() -> Option<PathBuf> {
    let found = std::env::var_os("SILK_TEST_PROMETHEUS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("prometheus"))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide Prometheus: .ci/run runs scripts/install-prometheus"
        );
        eprintln!(
            "metrics_prometheus: skipped, no prometheus binary (run scripts/install-prometheus)"
        );
    }
    found
}

/// The Prometheus server, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /api/v1/query` of `query`: the response head and body.
fn api_query(addr: &str, query: &str) -> (String, String) {
    let encoded: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    http_get(addr, &format!("/api/v1/query?query={encoded}"))
}

/// The one sample of an instant `query`, if Prometheus has it.
fn query(addr: &str, query: &str) -> Option<f64> {
    let (head, body) = api_query(addr, query);
    if !head.contains(" 200 ") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_silk_dev() {
    let Some(bin) = prometheus_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: silk\n    \
             static_configs:\n      - targets: ['{}']\n",
            dev.metrics
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", support::free_port());
    let server = Server(
        Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let diamond = support::repo_path("docs/examples/diamond.json");
    let inputs = support::repo_path("docs/examples/diamond-inputs.json");
    assert_eq!(
        dev.job(&["submit", &diamond, "--inputs", &inputs]).0,
        Some(0)
    );

    // Scraped every second: within 30 s the target is up and the job's three tasks are in.
    let deadline = Instant::now() + Duration::from_secs(30);
    let tasks = "silk_em_tasks_succeeded_total{package=\"complex\",backend=\"wasm\"}";
    loop {
        let up = std::net::TcpStream::connect(&web)
            .ok()
            .and_then(|_| query(&web, "up{job=\"silk\"}"));
        if up == Some(1.0) && query(&web, tasks) == Some(3.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never saw the job (up = {up:?}, tasks = {:?})",
            query(&web, tasks)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Every family parsed: one of each type is queryable.
    assert_eq!(query(&web, "silk_em_slots"), Some(2.0));
    assert!(
        query(&web, "sum(silk_storage_group_commit_batch_size_count)").is_some_and(|n| n >= 1.0)
    );
    assert!(
        query(
            &web,
            "sum(silk_scheduler_assignment_latency_seconds_bucket)"
        )
        .is_some()
    );
    drop(server);
}
