//! End-to-end throughput: a wide-and-deep graph of trivial tasks through a whole cluster, once
//! with the `trivial` package trusted to run natively and once as sandboxed wasm, in one of two
//! layouts:
//!
//! * `silk dev` (modes `native`, `wasm`): storage on SQLite, the scheduler and one execution
//!   manager with one slot per CPU, all in this process, gRPC over loopback;
//! * production (modes `native@cluster`, `wasm@cluster`): storage on MySQL/MariaDB (a fresh
//!   database on the server of `SILK_TEST_MYSQL_URL`; the mode is skipped without it), the
//!   scheduler and the EM, each its own `silk` process (`cargo build --release -p silk-runtime`
//!   first).
//!
//! The graph has `LAYERS` layers of `WIDTH` tasks. Layer 0 is `trivial::one`; every task of a
//! later layer is `trivial::sum25`, reading 25 outputs of the layer before it, so a task of
//! layer k outputs 25^k and the job's outputs are checked exactly. Time runs from submit (the
//! graph built, as an application holds it; the client sends it in compact form) to the watch
//! stream reporting the job succeeded (outputs fetched after). Reported: tasks/s per run
//! (median, min, max over `RUNS` runs after one warm-up job); the CPU time per task spent during
//! a run by the control plane (storage, scheduler and EM: the threads of the cluster's
//! processes — in the `silk dev` layout this process but its client thread, which builds,
//! submits and waits for the graphs — but the EM's slot threads), by the slot threads (where a
//! wasm task runs in its sandbox, and where a native task is sent to its executor and waited
//! for), by the native executor children, and by the MySQL/MariaDB server when it runs on this
//! machine; and this process's peak resident memory, written to stdout and to
//! `target/silk-bench/e2e.md`.
//!
//! `cargo bench --bench e2e` (needs `scripts/build-packages`). Environment knobs:
//! `SILK_BENCH_E2E_LAYERS` (10), `SILK_BENCH_E2E_WIDTH` (1000), `SILK_BENCH_E2E_RUNS` (3),
//! `SILK_BENCH_E2E_MODES` (`native,wasm,native@cluster,wasm@cluster`; add `+tls` to a `silk
//! dev` mode for TLS on every connection, e.g. `native+tls`), `SILK_BENCH_E2E_SLOTS` (the CPU
//! count), `SILK_ASYNC_THREADS` (the cluster's async worker threads in every layout, as `silk
//! --async-threads`). Tokens are checked on every call in every mode, as in production.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use silk_benches::cluster::ProcessCluster;
use silk_benches::cpu::{CLIENT_THREAD, CpuSplit};
use silk_benches::layered::{FAN_IN, graph_json};
use silk_benches::memory::{peak_rss_mib, reset_peak_rss};
use silk_client::{Client, JobOutcome};
use silk_core::graph::TaskGraph;
use silk_runtime::auth::config::{ClientTls, ServerTls};
use silk_runtime::dev::{DevCluster, DevOptions, DevTls};
use silk_runtime::em::pool::child::find_executor_bin;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    tasks: usize,
    /// Submit to succeeded.
    elapsed: Duration,
    /// Submit to the job started (graph parsed, validated and stored).
    submitted: Duration,
}

async fn run_job(
    client: Client,
    group: silk_tdl::ResourceGroupId,
    layers: usize,
    width: usize,
) -> Run {
    // Built before the clock starts, as an application builds its graph; the client sends it in
    // compact form.
    let graph = TaskGraph::from_json(&graph_json(layers, width)).expect("valid graph");
    let started = Instant::now();
    let job = client
        .submit_graph(
            group,
            &graph,
            silk_tdl::frame::encode(Vec::<Vec<u8>>::new()).expect("empty frame"),
        )
        .await
        .expect("submit");
    let submitted = started.elapsed();
    let outcome = client.wait(job).await.expect("wait");
    let elapsed = started.elapsed();
    let JobOutcome::Succeeded(outputs) = outcome else {
        panic!("job {job} did not succeed: {outcome:?}");
    };
    let expected = 25u64.wrapping_pow(u32::try_from(layers - 1).expect("few layers"));
    assert_eq!(
        outputs.len(),
        width,
        "one output per task of the last layer"
    );
    for v in &outputs {
        assert_eq!(
            v.as_u64(),
            Some(expected),
            "every last-layer task outputs 25^(layers-1)"
        );
    }
    Run {
        tasks: layers * width,
        elapsed,
        submitted,
    }
}

fn rate(r: &Run) -> f64 {
    r.tasks as f64 / r.elapsed.as_secs_f64()
}

/// TLS for a `+tls` mode: a CA and a `localhost` certificate it signed, written into `dir`.
fn tls(dir: &std::path::Path) -> DevTls {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("certificate");
    let file = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write a PEM file");
        path
    };
    DevTls {
        server: ServerTls {
            cert_file: file("server.pem", cert.pem()),
            key_file: file("server.key", key.serialize_pem()),
            client_ca_file: None,
        },
        client: ClientTls {
            ca_file: Some(file("ca.pem", ca.pem())),
            ..ClientTls::default()
        },
    }
}

/// The cluster a mode runs on.
enum Layout {
    /// `silk dev` in this process.
    Dev(Box<DevCluster>),
    /// Storage on MySQL/MariaDB, the scheduler and an EM, each its own process; the server's URL
    /// and the bench database's name, dropped at the end.
    Processes(ProcessCluster, String, String),
}

/// Waits for `job`, checking meanwhile that the production layout's processes still run (a dead
/// one fails the bench with its log instead of leaving it waiting forever).
async fn watched<F: std::future::Future>(layout: &mut Layout, job: F) -> F::Output {
    let Layout::Processes(cluster, ..) = layout else {
        return job.await;
    };
    tokio::pin!(job);
    let mut check = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            out = &mut job => return out,
            _ = check.tick() => cluster.assert_alive(),
        }
    }
}

/// One run's rate and the cluster's CPU time per task, in µs, by role.
struct Measured {
    rate: f64,
    control_us: f64,
    slots_us: f64,
    executors_us: f64,
    database_us: f64,
}

/// Runs `mode`'s jobs from a client on `client_rt` (its own thread, so its CPU time is told
/// apart from the cluster's).
async fn bench_mode(
    client_rt: &tokio::runtime::Runtime,
    mode: &str,
    layers: usize,
    width: usize,
    runs: usize,
) -> Option<Vec<Measured>> {
    let trust = if mode.starts_with("native") {
        vec!["trivial".to_owned()]
    } else {
        Vec::new()
    };
    let slots = std::env::var("SILK_BENCH_E2E_SLOTS")
        .ok()
        .and_then(|v| v.parse().ok());
    let certs = tempfile::tempdir().expect("a directory for certificates");
    let executor_bin = find_executor_bin();
    let mut layout = if mode.ends_with("@cluster") {
        let Ok(server) = std::env::var("SILK_TEST_MYSQL_URL") else {
            println!(
                "e2e/{mode}: skipped (set SILK_TEST_MYSQL_URL, e.g. by `eval \"$(scripts/mariadb-test-server)\"`)"
            );
            return None;
        };
        let (db, name) = silk_runtime::storage::testing::create_mysql_database(&server)
            .await
            .expect("a bench database on the MySQL/MariaDB server");
        Layout::Processes(
            ProcessCluster::start(
                &db,
                &silk_benches::paths::packages_dir(),
                &executor_bin.expect(
                    "silk-executor-native: run `cargo build --release -p silk-executor-native`",
                ),
                &trust,
                slots
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            )
            .await,
            server,
            name,
        )
    } else {
        Layout::Dev(Box::new(
            DevCluster::start(DevOptions {
                tls: mode.ends_with("+tls").then(|| tls(certs.path())),
                port_base: 0,
                trust,
                executor_bin,
                em_poll_ms: 200,
                slots,
                ..DevOptions::new(silk_benches::paths::packages_dir())
            })
            .await
            .expect("start the local cluster"),
        ))
    };
    let (url, security, pids) = match &layout {
        Layout::Dev(c) => (
            c.storage_url(),
            c.client_security(),
            vec![std::process::id()],
        ),
        Layout::Processes(c, ..) => (c.storage_url(), c.client_security(), c.pids()),
    };
    // Made in the client runtime's context, so its connection tasks run there too.
    let client = {
        let _in_client_rt = client_rt.enter();
        Client::connect_with(&url, &security).expect("client")
    };
    let group = client_rt
        .spawn({
            let client = client.clone();
            async move { client.open_group("bench", b"bench").await.expect("group") }
        })
        .await
        .expect("open the group");
    let job = |layers, width| {
        let handle = client_rt.spawn(run_job(client.clone(), group, layers, width));
        async move { handle.await.expect("the client's job") }
    };
    // Warm-up: connections, executor children, wasm module compilation.
    watched(&mut layout, job(2, FAN_IN.max(width / 10))).await;
    let mut measured = Vec::new();
    for i in 0..runs {
        let before = CpuSplit::now(&pids);
        let r = watched(&mut layout, job(layers, width)).await;
        let spent = CpuSplit::now(&pids) - before;
        let per_task = |d: Duration| d.as_secs_f64() * 1e6 / r.tasks as f64;
        let m = Measured {
            rate: rate(&r),
            control_us: per_task(spent.control),
            slots_us: per_task(spent.slots),
            executors_us: per_task(spent.executors),
            database_us: per_task(spent.database),
        };
        println!(
            "e2e/{mode} run {i}: {} tasks in {:.3} s = {:.0} tasks/s (submit {:.0} ms); CPU per task: control plane {:.1} µs, slot threads {:.1} µs, executors {:.1} µs, database {:.1} µs",
            r.tasks,
            r.elapsed.as_secs_f64(),
            m.rate,
            r.submitted.as_secs_f64() * 1000.0,
            m.control_us,
            m.slots_us,
            m.executors_us,
            m.database_us,
        );
        measured.push(m);
    }
    drop(client);
    match layout {
        Layout::Dev(cluster) => cluster.stop().await.expect("stop the local cluster"),
        Layout::Processes(cluster, server, name) => {
            drop(cluster);
            let dropped = silk_runtime::storage::testing::drop_mysql_database(&server, &name).await;
            if let Err(e) = dropped {
                eprintln!("e2e/{mode}: could not drop bench database {name}: {e}");
            }
        }
    }
    Some(measured)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run a tiny graph then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (layers, width, runs) = if quick {
        (2, FAN_IN, 1)
    } else {
        (
            knob("SILK_BENCH_E2E_LAYERS", 10).max(2),
            knob("SILK_BENCH_E2E_WIDTH", 1000).max(FAN_IN),
            knob("SILK_BENCH_E2E_RUNS", 3).max(1),
        )
    };
    let modes = std::env::var("SILK_BENCH_E2E_MODES")
        .unwrap_or_else(|_| "native,wasm,native@cluster,wasm@cluster".into());
    let runtime = silk_benches::dev_runtime();
    // One thread, kept for the whole bench (a thread's CPU time is only told apart while it lives).
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()
        .expect("the client's tokio runtime");
    let mut table = format!(
        "# End-to-end throughput ({layers} layers × {width} trivial tasks, fan-in {FAN_IN})\n\n\
         CPU µs per task, median (min–max): the control plane (storage, scheduler, EM but its slot \
         threads), the EM's slot threads (wasm sandboxes; native: sending to and waiting for the \
         executor), the native executor children, the MySQL/MariaDB server (production layout, \
         when local).\n\n\
         | mode | runs | median tasks/s | min | max | control plane | slot threads | executors | database | peak RSS (MiB) |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    );
    for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        reset_peak_rss("self");
        let Some(measured) = runtime.block_on(bench_mode(&client_rt, mode, layers, width, runs))
        else {
            continue;
        };
        // This process only: the cluster's own processes are not its children's peak.
        let peak = peak_rss_mib("self");
        let sorted = |f: fn(&Measured) -> f64| {
            let mut v: Vec<f64> = measured.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let spread =
            |v: &[f64]| format!("{:.1} ({:.1}–{:.1})", v[v.len() / 2], v[0], v[v.len() - 1]);
        let rates = sorted(|m| m.rate);
        let median = rates[rates.len() / 2];
        let control = spread(&sorted(|m| m.control_us));
        let slots = spread(&sorted(|m| m.slots_us));
        let executors = spread(&sorted(|m| m.executors_us));
        let database = spread(&sorted(|m| m.database_us));
        println!(
            "e2e/{mode}: median {median:.0} tasks/s over {} runs; CPU µs per task: control plane {control}, slot threads {slots}, executors {executors}, database {database}; peak RSS {peak} MiB",
            rates.len()
        );
        let _ = writeln!(
            table,
            "| {mode} | {} | {median:.0} | {:.0} | {:.0} | {control} | {slots} | {executors} | {database} | {peak} |",
            rates.len(),
            rates[0],
            rates[rates.len() - 1],
        );
    }
    if !quick {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/silk-bench");
        let _ = std::fs::create_dir_all(&dir);
        if let Err(e) = std::fs::write(dir.join("e2e.md"), &table) {
            eprintln!("cannot write e2e.md: {e}");
        }
        print!("{table}");
    }
}
