//! The monitoring half of `deploy/`: Prometheus scrapes the metrics endpoint of every silk
//! service in `deploy/compose.yaml` at the port its config file gives it (`metrics_listen`), and
//! the Grafana dashboard queries only metrics the services expose, through the provisioned
//! data source.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use silk_runtime::cli::{em, scheduler, storage};
use silk_runtime::metrics::Metrics;
use silk_runtime::metrics::em::PoolMetrics;
use silk_runtime::metrics::labels::LocalCache;
use silk_runtime::metrics::scheduler::DispatchMetrics;
use silk_runtime::metrics::storage::{DbStats, Snapshot, StorageCounters};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every `silk <kind> --config /etc/silk/FILE` service of compose.yaml: (service, kind, the
/// port of its `metrics_listen`, read with the service's own config reader).
fn silk_services() -> Vec<(String, String, String)> {
    let compose = read(&deploy_dir().join("compose.yaml"));
    let mut out = Vec::new();
    let mut service = None;
    for line in compose.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with([' ', '#'])
        {
            service = Some(name.to_owned());
        }
        let Some(command) = line.trim().strip_prefix("command:") else {
            continue;
        };
        let command: Vec<String> = serde_json::from_str(command.trim()).unwrap();
        if command.first().map(String::as_str) != Some("silk") {
            continue;
        }
        let file = command[3].strip_prefix("/etc/silk/").unwrap();
        let config = Some(deploy_dir().join("config").join(file));
        let listen = match command[1].as_str() {
            "storage" => {
                let args = storage::StorageArgs {
                    config,
                    db: None,
                    listen: None,
                    metrics_listen: None,
                };
                storage::resolve(&args, |_| None).unwrap().metrics_listen
            }
            "scheduler" => {
                let args = scheduler::SchedulerArgs {
                    config,
                    listen: None,
                    storage_url: None,
                    metrics_listen: None,
                };
                scheduler::resolve(&args).unwrap().metrics_listen
            }
            "em" => {
                let args = em::EmArgs {
                    config,
                    storage_url: None,
                    scheduler_url: None,
                    slots: None,
                    metrics_listen: None,
                };
                em::resolve(&args).unwrap().metrics_listen
            }
            other => panic!("unexpected silk {other}"),
        };
        assert!(
            listen.starts_with("0.0.0.0:"),
            "{file}: metrics_listen {listen:?} must listen on the compose network"
        );
        let port = listen.rsplit_once(':').unwrap().1.to_owned();
        out.push((service.clone().unwrap(), command[1].clone(), port));
    }
    out
}

#[test]
fn prometheus_scrapes_every_silk_service_at_its_metrics_port() {
    let services = silk_services();
    let kinds: BTreeSet<&str> = services.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["em", "scheduler", "storage"]));
    let prometheus = read(&deploy_dir().join("prometheus/prometheus.yml"));
    for (service, kind, port) in &services {
        if kind == "em" {
            // EMs are replicated: found by DNS, every replica on the same port.
            let block = prometheus
                .split("dns_sd_configs:")
                .nth(1)
                .expect("EMs are discovered by DNS");
            assert!(
                block.contains(&format!("'{service}'")),
                "{service} not scraped"
            );
            assert!(
                block.contains(&format!("port: {port}")),
                "{service}: port {port}"
            );
        } else {
            assert!(
                prometheus.contains(&format!("'{service}:{port}'")),
                "{service} is not scraped at {service}:{port}"
            );
        }
    }
    let compose = read(&deploy_dir().join("compose.yaml"));
    assert!(
        compose.contains("./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"),
        "compose mounts the scrape config"
    );
}

/// Names of every sample line of an exposition in which each metric has at least one series.
fn exposed_names() -> BTreeSet<String> {
    let metrics = Metrics::new();
    let pool = PoolMetrics::default();
    pool.package(&mut LocalCache::default(), "p");
    let dispatch = DispatchMetrics::default();
    let redispatched = prometheus_client::metrics::counter::Counter::<u64>::default();
    let db = DbStats::default();
    db.retried("busy");
    db.failed("permanent");
    metrics.register(|r| {
        pool.register(r);
        dispatch.register(r);
        silk_runtime::metrics::scheduler::register_redispatched(r, &redispatched);
        silk_runtime::metrics::storage::register(r, &StorageCounters::default(), &db, || {
            Snapshot {
                jobs_by_state: vec![("Running", 1)],
                lanes: vec![("ready", 1)],
                ready_by_group: vec![(1, 1)],
                memory: vec![("jobs", 1)],
            }
        });
    });
    metrics
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_dashboard_queries_only_exposed_metrics_through_the_provisioned_source() {
    let dir = deploy_dir().join("grafana");
    let source = read(&dir.join("provisioning/datasources/prometheus.yaml"));
    assert!(source.contains("uid: silk-prometheus") && source.contains("http://prometheus:9090"));
    let provider = read(&dir.join("provisioning/dashboards/silk.yaml"));
    assert!(provider.contains("path: /var/lib/grafana/dashboards"));
    let compose = read(&deploy_dir().join("compose.yaml"));
    assert!(compose.contains("./grafana/dashboards:/var/lib/grafana/dashboards:ro"));

    let dashboard: serde_json::Value =
        serde_json::from_str(&read(&dir.join("dashboards/silk.json"))).unwrap();
    let exposed = exposed_names();
    let mut queried = BTreeSet::new();
    let panels = dashboard["panels"].as_array().unwrap();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        assert_eq!(panel["datasource"]["uid"], "silk-prometheus", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "silk-prometheus", "{title}");
            let expr = t["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("silk_"))
            {
                assert!(exposed.contains(name), "{title}: {name} is not exposed");
                queried.insert(name.to_owned());
            }
        }
    }
    // What the issue asks the dashboard to show.
    for name in [
        "silk_em_tasks_succeeded_total",
        "silk_em_tasks_failed_total",
        "silk_scheduler_dispatch_queue_length",
        "silk_em_slots_busy",
        "silk_em_task_duration_seconds_bucket",
        "silk_scheduler_assignment_latency_seconds_bucket",
    ] {
        assert!(queried.contains(name), "the dashboard does not show {name}");
    }
}
