//! OpenTelemetry traces end to end: real `silk` storage, scheduler and execution manager
//! processes (TLS and tokens on) export spans over OTLP/gRPC to a collector this test serves
//! (a tonic server decoding `ExportTraceServiceRequest` with `opentelemetry-proto`'s types).
//! One job's span and its task's stage spans from all three services share the trace id derived
//! from the job, hang under the job and instance spans, and cover the task's path in order; a
//! failed task's spans carry its failure kind; everything is flushed when the services stop. A
//! cluster without `[traces]` starts no exporter and sends nothing. Also: `silk dev`'s in-process
//! cluster with traces on, its `--otlp-endpoint` check, and an `https://` collector checked
//! against `ca_file`.

use crate::e2e;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::json;
use silk_runtime::auth::ClientSecurity;
use silk_runtime::dev::{DevCluster, DevOptions};
use silk_runtime::traces::{Endpoint, Service, Traces, TracesConfig, ids};
use silk_tdl::{JobId, TaskId, TaskInstanceId};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};

use e2e::graphs::{graph, single, task, with_policy};
use e2e::jobs::FailureKind;
use e2e::support::certs::Pki;
use e2e::values::i;
use e2e::{Backend, Cluster, EmSpec, read_lines, watchdog};

/// One received span with the `service.name` of its resource.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    span: Span,
}

impl Got {
    fn attr(&self, key: &str) -> Option<Any> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.attr(key)? {
            Any::IntValue(v) => Some(v),
            _ => None,
        }
    }

    fn string(&self, key: &str) -> Option<String> {
        match self.attr(key)? {
            Any::StringValue(v) => Some(v),
            _ => None,
        }
    }

    fn trace(&self) -> TraceId {
        TraceId::from_bytes(
            self.span
                .trace_id
                .clone()
                .try_into()
                .expect("16-byte trace id"),
        )
    }

    fn id(&self) -> SpanId {
        SpanId::from_bytes(
            self.span
                .span_id
                .clone()
                .try_into()
                .expect("8-byte span id"),
        )
    }

    fn parent(&self) -> Option<SpanId> {
        if self.span.parent_span_id.is_empty() {
            return None;
        }
        Some(SpanId::from_bytes(
            self.span
                .parent_span_id
                .clone()
                .try_into()
                .expect("8-byte parent id"),
        ))
    }
}

/// The in-test collector: keeps every span and counts export calls.
#[derive(Debug, Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Got>>>,
    calls: Arc<Mutex<usize>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        r: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        *self.calls.lock().unwrap() += 1;
        let mut got = Vec::new();
        for rs in r.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.clone()?.value? {
                    Any::StringValue(s) => Some(s),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    got.push(Got {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        self.spans.lock().unwrap().extend(got);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    async fn serve(&self, stop: CancellationToken) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
                .unwrap();
        });
        addr
    }

    /// As [`Collector::serve`], over TLS with `pki`'s server certificate.
    async fn serve_tls(&self, stop: CancellationToken, pki: &Pki) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let identity = Identity::from_pem(
            std::fs::read(&pki.server_cert).unwrap(),
            std::fs::read(&pki.server_key).unwrap(),
        );
        let service = TraceServiceServer::new(self.clone());
        let mut server = tonic::transport::Server::builder()
            .tls_config(ServerTlsConfig::new().identity(identity))
            .unwrap();
        tokio::spawn(async move {
            server
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
                .unwrap();
        });
        addr
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }

    fn calls(&self) -> usize {
        *self.calls.lock().unwrap()
    }
}

const CLUSTER: &str = "traces-e2e";

/// The SDK batch span processor's thread name as `/proc/*/task/*/comm` shows it (15 bytes).
const EXPORTER_THREAD: &str = "OpenTelemetry.T";

/// The spans of `job`'s trace (checked to be exactly those carrying its id).
fn trace_of(spans: &[Got], job: u64) -> Vec<Got> {
    let trace = ids::trace_id(CLUSTER, JobId(job));
    let by_id: Vec<Got> = spans
        .iter()
        .filter(|g| g.trace() == trace)
        .cloned()
        .collect();
    let by_attr = spans
        .iter()
        .filter(|g| g.int("silk.job_id") == Some(job as i64))
        .count();
    assert_eq!(by_id.len(), by_attr, "job {job}: its spans are its trace's");
    by_id
}

/// The one span named `name` of task `task`, from `service`.
fn one<'a>(spans: &'a [Got], name: &str, task: u64, service: &str) -> &'a Got {
    let found: Vec<&Got> = spans
        .iter()
        .filter(|g| g.span.name == name && g.int("silk.task_index") == Some(task as i64))
        .collect();
    assert_eq!(found.len(), 1, "one {name} span of task {task}: {found:#?}");
    assert_eq!(found[0].service, service, "{name} comes from {service}");
    found[0]
}

/// The job span: the root, from storage, with the job's derived ids and final state.
fn job_span<'a>(spans: &'a [Got], job: u64, state: &str) -> &'a Got {
    let roots: Vec<&Got> = spans.iter().filter(|g| g.span.name == "job").collect();
    assert_eq!(roots.len(), 1, "one job span: {roots:#?}");
    let root = roots[0];
    let trace = ids::trace_id(CLUSTER, JobId(job));
    assert_eq!(root.service, "silk-storage");
    assert_eq!(root.parent(), None);
    assert_eq!(root.id(), ids::job_span_id(trace));
    assert_eq!(root.string("silk.job_state").as_deref(), Some(state));
    root
}

/// Every stage of task `task`: the instance span under the job span, the stage spans under
/// the right parents, from the right services, in order. Returns the instance span.
fn check_task_path<'a>(spans: &'a [Got], job: u64, task: u64, package: &str) -> &'a Got {
    let trace = ids::trace_id(CLUSTER, JobId(job));
    let root = ids::job_span_id(trace);
    let queued = one(spans, "task.queued", task, "silk-storage");
    let dispatched = one(spans, "task.dispatched", task, "silk-scheduler");
    let instance = one(spans, "task.instance", task, "silk-em");
    let registered = one(spans, "task.registered", task, "silk-storage");
    let executed = one(spans, "task.executed", task, "silk-em");
    let reported = one(spans, "task.reported", task, "silk-em");
    let persisted = one(spans, "task.persisted", task, "silk-storage");
    for g in [queued, dispatched, instance] {
        assert_eq!(
            g.parent(),
            Some(root),
            "{} hangs under the job",
            g.span.name
        );
    }
    let instance_id = instance.int("silk.instance_id").expect("instance id") as u64;
    assert_eq!(
        instance.id(),
        ids::instance_span_id(trace, TaskId::Index(task), TaskInstanceId(instance_id)),
        "the instance span's id is derived from (job, task, instance)"
    );
    for g in [registered, executed, reported, persisted] {
        assert_eq!(
            g.parent(),
            Some(instance.id()),
            "{} hangs under the instance span",
            g.span.name
        );
        assert_eq!(g.int("silk.instance_id"), Some(instance_id as i64));
    }
    assert_eq!(instance.string("silk.package").as_deref(), Some(package));
    assert_eq!(registered.string("silk.package").as_deref(), Some(package));
    assert!(instance.int("silk.em_id").is_some());
    assert_eq!(dispatched.int("silk.em_id"), instance.int("silk.em_id"));
    // The path in time: queued, dispatched, then the instance (registered, executed,
    // reported; persisted inside reported).
    let start = |g: &Got| g.span.start_time_unix_nano;
    let end = |g: &Got| g.span.end_time_unix_nano;
    assert!(start(queued) <= start(dispatched));
    assert!(
        end(queued) <= end(dispatched) + 1_000_000,
        "queued ends as dispatch begins"
    );
    assert!(end(dispatched) <= start(instance) + 1_000_000);
    assert!(start(instance) <= start(registered) + 1_000_000);
    assert!(end(registered) <= start(executed) + 1_000_000);
    assert!(end(executed) <= start(reported) + 1_000_000);
    assert!(start(reported) <= start(persisted) + 1_000_000);
    assert!(end(persisted) <= end(reported) + 1_000_000);
    assert!(end(reported) <= end(instance) + 1_000_000);
    let job = spans.iter().find(|r| r.span.name == "job").unwrap();
    for g in [
        queued, dispatched, instance, registered, executed, reported, persisted,
    ] {
        assert!(start(g) <= end(g), "{} ends after it starts", g.span.name);
        // Within the job (the EM hears that its last report was stored after the job ended).
        assert!(
            start(job) <= start(g) && start(g) <= end(job),
            "{}",
            g.span.name
        );
    }
    instance
}

fn traces_toml(collector: SocketAddr) -> String {
    format!("[traces]\notlp_endpoint = \"http://{collector}\"\ncluster = \"{CLUSTER}\"\n")
}

/// A two-task job (fibonacci feeding fibonacci, natively) and a job whose one task always
/// fails, traced end to end.
async fn traced_cluster() {
    let stop = CancellationToken::new();
    let collector = Collector::default();
    let addr = collector.serve(stop.clone()).await;
    let cluster =
        Cluster::start_configured(&Backend::Sqlite, &[EmSpec::native(2)], &traces_toml(addr)).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("traced").await;
    let int = json!("int64");
    let chain = graph(vec![
        task("fixtures", "fibonacci", [int.clone()], [int.clone()]),
        e2e::graphs::fed(
            task("fixtures", "fibonacci", [int.clone()], [int.clone()]),
            &[(0, 0)],
        ),
    ]);
    let ok = jobs.submit(group, &chain, &[i(6)]).await;
    let failing = graph(vec![with_policy(
        task("fixtures", "always_fail", [], [int]),
        json!({"max_retries": 0}),
    )]);
    let bad = jobs.submit(group, &failing, &[]).await;
    assert_eq!(jobs.wait_succeeded(ok).await, [i(21)]);
    let (message, kind) = jobs.wait_failed(bad).await;
    assert_eq!(kind, FailureKind::TaskError, "{message}");
    for service in ["storage", "scheduler", "em"] {
        let logs = cluster.logs_of(service);
        let lines = logs.iter().flat_map(|p| read_lines(p)).collect::<Vec<_>>();
        assert!(
            lines.iter().any(|l| l.contains("exporting traces")),
            "{service} starts its exporter"
        );
        let name = if service == "em" { "em0" } else { service };
        assert!(
            cluster
                .thread_names(name)
                .iter()
                .any(|t| t == EXPORTER_THREAD),
            "{service} runs the batch span processor's thread"
        );
    }
    // Stopped right after the jobs ended: what is still queued is exported on the way out.
    cluster.stop().await;
    let spans = collector.spans();
    eprintln!(
        "collector got {} spans in {} calls",
        spans.len(),
        collector.calls()
    );
    stop.cancel();

    let traced = trace_of(&spans, ok);
    let root = job_span(&traced, ok, "Succeeded");
    assert_eq!(root.span.status.as_ref().map(|s| s.code), Some(0));
    for t in [0, 1] {
        check_task_path(&traced, ok, t, "fixtures");
    }
    // Task 1 ran on task 0's output: it became ready after task 0 was persisted.
    let persisted0 = one(&traced, "task.persisted", 0, "silk-storage");
    let queued1 = one(&traced, "task.queued", 1, "silk-storage");
    assert!(persisted0.span.end_time_unix_nano <= queued1.span.start_time_unix_nano + 1_000_000);
    assert!(
        traced
            .iter()
            .all(|g| g.attr(silk_runtime::traces::FAILURE_KIND).is_none()),
        "nothing failed in the good job"
    );

    let traced = trace_of(&spans, bad);
    let root = job_span(&traced, bad, "Failed");
    let error = StatusCode::Error as i32;
    assert_eq!(root.span.status.as_ref().map(|s| s.code), Some(error));
    assert_eq!(
        root.string("silk.failure_kind").as_deref(),
        Some("TaskError")
    );
    let instance = check_task_path(&traced, bad, 0, "fixtures");
    for g in [
        instance,
        one(&traced, "task.executed", 0, "silk-em"),
        one(&traced, "task.persisted", 0, "silk-storage"),
    ] {
        assert_eq!(
            g.string("silk.failure_kind").as_deref(),
            Some("TaskError"),
            "{} carries the failure kind",
            g.span.name
        );
        assert_eq!(g.span.status.as_ref().map(|s| s.code), Some(error));
    }
    assert_eq!(instance.string("silk.backend").as_deref(), Some("native"));
    assert_eq!(
        instance.string("silk.function").as_deref(),
        Some("always_fail")
    );
}

/// Without `[traces]` no service starts an exporter (no processor thread, "traces off" in the
/// log), so nothing is sent, e.g. to a collector on this machine.
async fn untraced_cluster() {
    let stop = CancellationToken::new();
    let collector = Collector::default();
    let _addr = collector.serve(stop.clone()).await;
    let cluster = Cluster::start(&Backend::Sqlite, &[EmSpec::native(1)]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("untraced").await;
    let int = json!("int64");
    let job = jobs
        .submit(
            group,
            &single("fixtures", "fibonacci", [int.clone()], [int]),
            &[i(5)],
        )
        .await;
    assert_eq!(jobs.wait_succeeded(job).await, [i(5)]);
    for service in ["storage", "scheduler", "em"] {
        let logs = cluster.logs_of(service);
        let lines = logs.iter().flat_map(|p| read_lines(p)).collect::<Vec<_>>();
        assert!(
            lines.iter().any(|l| l.contains("traces off")),
            "{service} says traces are off"
        );
        assert!(
            !lines.iter().any(|l| l.contains("exporting traces")),
            "{service} starts no exporter"
        );
        let name = if service == "em" { "em0" } else { service };
        let threads = cluster.thread_names(name);
        assert!(threads.len() > 1, "{service}: {threads:?}");
        assert!(
            !threads.iter().any(|t| t == EXPORTER_THREAD),
            "{service} runs no span processor thread: {threads:?}"
        );
    }
    cluster.stop().await;
    stop.cancel();
    assert_eq!(collector.calls(), 0, "nothing exported");
}

/// `silk dev`'s cluster (three services in one process) with `traces` set: each service
/// exports under its own name, into the one trace of the job.
async fn dev_cluster() {
    let stop = CancellationToken::new();
    let collector = Collector::default();
    let addr = collector.serve(stop.clone()).await;
    let endpoint = format!("http://{addr}").parse().unwrap();
    let cluster = DevCluster::start(DevOptions {
        port_base: 0,
        slots: Some(1),
        trust: vec!["fixtures".into()],
        executor_bin: Some(e2e::support::executor_bin()),
        em_poll_ms: 200,
        traces: Some(TracesConfig {
            cluster: CLUSTER.into(),
            ..TracesConfig::new(endpoint)
        }),
        ..DevOptions::new(e2e::support::packages_dir())
    })
    .await
    .unwrap();
    let security = ClientSecurity {
        token: Some(cluster.admin_token().clone()),
        tls: None,
    };
    let jobs = e2e::Jobs::connect(&cluster.storage_url(), &security).await;
    let group = jobs.add_group("dev").await;
    let int = json!("int64");
    let job = jobs
        .submit(
            group,
            &single("fixtures", "fibonacci", [int.clone()], [int]),
            &[i(7)],
        )
        .await;
    assert_eq!(jobs.wait_succeeded(job).await, [i(13)]);
    cluster.stop().await.unwrap();
    let spans = collector.spans();
    stop.cancel();
    let traced = trace_of(&spans, job);
    job_span(&traced, job, "Succeeded");
    check_task_path(&traced, job, 0, "fixtures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silk_dev_traces_all_three_services() {
    watchdog(120, dev_cluster()).await;
}

#[test]
fn silk_dev_refuses_a_bad_otlp_endpoint() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(["dev", "--otlp-endpoint", "ftp://collector:4317"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--otlp-endpoint"), "{err}");
    assert!(err.contains("scheme must be http or https"), "{err}");
}

/// An `https://` collector: the exporter checks it against `ca_file`, and refuses to start
/// without one.
async fn tls_collector() {
    let dir = tempfile::tempdir().unwrap();
    let pki = e2e::support::certs::make(dir.path(), "otlp-");
    let stop = CancellationToken::new();
    let collector = Collector::default();
    let addr = collector.serve_tls(stop.clone(), &pki).await;
    let endpoint: Endpoint = format!("https://localhost:{}", addr.port())
        .parse()
        .unwrap();
    let refused = Traces::start(Some(&TracesConfig::new(endpoint.clone())), Service::Em)
        .expect_err("https without ca_file");
    assert!(refused.to_string().contains("ca_file"), "{refused}");
    let config = TracesConfig {
        cluster: CLUSTER.into(),
        ca_file: Some(pki.ca.clone()),
        ..TracesConfig::new(endpoint)
    };
    let traces = Traces::start(Some(&config), Service::Em).unwrap();
    let now = std::time::SystemTime::now();
    traces.job(JobId(77), now, now, |_| {});
    traces.shutdown().await;
    stop.cancel();
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].trace(), ids::trace_id(CLUSTER, JobId(77)));
    assert_eq!(spans[0].service, "silk-em");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_collector_is_checked_against_ca_file() {
    watchdog(60, tls_collector()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_one_task_join_across_services() {
    watchdog(180, traced_cluster()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traces_nothing_is_exported() {
    watchdog(120, untraced_cluster()).await;
}
