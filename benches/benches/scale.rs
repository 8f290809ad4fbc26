//! How silk's cost grows with a job's size: one job each of 10 000, 100 000 and 1 000 000 tasks of
//! the neural-network shape (10 layers; every task after the first layer reads 25 outputs of the
//! layer before, see `silk_benches::layered`), each through a fresh local cluster in wasm mode.
//!
//! The cluster (storage on SQLite, scheduler, one execution manager: what `silk dev` runs) is a
//! child process — this bench binary started again in cluster mode — so its peak resident memory
//! is measured apart from the client's (`VmHWM` of the child; it holds storage's whole in-memory
//! state of the job). Reported per size: submit time (the client's compact chunks streamed,
//! checked and stored, and the job started), run time (started to succeeded, outputs checked),
//! tasks/s over both, and the cluster's peak RSS; to stdout and `target/silk-bench/scale.md`.
//!
//! `cargo bench -p silk-benches --bench scale` (needs `scripts/build-packages`). Knobs:
//! `SILK_BENCH_SCALE_SIZES` (`10000,100000,1000000`; each a multiple of 10, at least 250),
//! `SILK_BENCH_SCALE_MODE` (`wasm`, or `native`).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use silk_benches::layered::{FAN_IN, graph};
use silk_client::{Client, JobOutcome};
use silk_core::auth::{ClientSecurity, Token};
use silk_runtime::dev::{DevCluster, DevOptions};
use silk_runtime::em::pool::child::find_executor_bin;

const CLUSTER_MODE: &str = "SILK_BENCH_SCALE_CLUSTER";
const LAYERS: usize = 10;

/// Cluster mode: starts the cluster, prints `READY <storage url> <admin token>`, and stops when
/// its standard input closes.
fn cluster_main(mode: &str) {
    let runtime = silk_benches::dev_runtime();
    runtime.block_on(async {
        let cluster = DevCluster::start(DevOptions {
            port_base: 0,
            trust: if mode == "native" {
                vec!["trivial".to_owned()]
            } else {
                Vec::new()
            },
            executor_bin: find_executor_bin(),
            em_poll_ms: 200,
            ..DevOptions::new(silk_benches::paths::packages_dir())
        })
        .await
        .expect("start the local cluster");
        println!(
            "READY {} {}",
            cluster.storage_url(),
            cluster.admin_token().expose()
        );
        std::io::stdout().flush().expect("stdout");
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        })
        .await
        .expect("stdin");
        cluster.stop().await.expect("stop the local cluster");
    });
}

struct Cluster {
    child: Child,
    url: String,
    token: Token,
}

impl Cluster {
    fn start(mode: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this bench's path"))
            .env(CLUSTER_MODE, mode)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the cluster process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the cluster's first line");
        let mut words = line
            .split_whitespace()
            .skip_while(|w| *w != "READY")
            .skip(1);
        let (Some(url), Some(token)) = (words.next(), words.next()) else {
            panic!("the cluster did not start: {line:?}");
        };
        Self {
            url: url.to_owned(),
            token: Token::new(token, "admin token").expect("token"),
            child,
        }
    }

    /// The cluster's peak resident memory so far, in MiB.
    fn peak_rss_mib(&self) -> u64 {
        silk_benches::memory::peak_rss_mib(&self.child.id().to_string())
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

struct Measured {
    tasks: usize,
    submit: Duration,
    run: Duration,
    peak_mib: u64,
}

async fn run_size(mode: &str, tasks: usize) -> Measured {
    let width = tasks / LAYERS;
    // Built before the clock starts, as an application holds its graph.
    let graph = graph(LAYERS, width);
    let cluster = Cluster::start(mode);
    let security = ClientSecurity {
        token: Some(cluster.token.clone()),
        tls: None,
    };
    let client = Client::connect_with(&cluster.url, &security).expect("client");
    let group = client.open_group("scale", b"scale").await.expect("group");
    let empty = silk_tdl::frame::encode(Vec::<Vec<u8>>::new()).expect("empty frame");
    // Warm-up (connections, the wasm module's compilation), not measured.
    let warm_up = client
        .submit_graph(
            group,
            &silk_benches::layered::graph(2, FAN_IN),
            empty.clone(),
        )
        .await
        .expect("submit the warm-up job");
    client.wait(warm_up).await.expect("warm-up job");
    let started = Instant::now();
    let job = client
        .submit_graph(group, &graph, empty)
        .await
        .expect("submit");
    let submit = started.elapsed();
    drop(graph);
    let outcome = client.wait(job).await.expect("wait");
    let run = started.elapsed() - submit;
    let JobOutcome::Succeeded(outputs) = outcome else {
        panic!("job {job} did not succeed: {outcome:?}");
    };
    let expected = 25u64.pow(u32::try_from(LAYERS - 1).expect("few layers"));
    assert_eq!(outputs.len(), width, "one output per last-layer task");
    assert!(outputs.iter().all(|v| v.as_u64() == Some(expected)));
    let peak_mib = cluster.peak_rss_mib();
    cluster.stop();
    Measured {
        tasks,
        submit,
        run,
        peak_mib,
    }
}

fn main() {
    if let Ok(mode) = std::env::var(CLUSTER_MODE) {
        cluster_main(&mode);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: one small job then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = if quick {
        vec![10 * FAN_IN]
    } else {
        std::env::var("SILK_BENCH_SCALE_SIZES")
            .unwrap_or_else(|_| "10000,100000,1000000".into())
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .map(|n: usize| (n / LAYERS * LAYERS).max(LAYERS * FAN_IN))
            .collect()
    };
    let mode = std::env::var("SILK_BENCH_SCALE_MODE").unwrap_or_else(|_| "wasm".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut table = format!(
        "# Job size ({mode}; {LAYERS} layers, fan-in {FAN_IN}; one job per fresh `silk dev`)\n\n\
         | tasks | submit (s) | run (s) | tasks/s | cluster peak RSS (MiB) |\n|---|---|---|---|---|\n"
    );
    for tasks in sizes {
        let m = runtime.block_on(run_size(&mode, tasks));
        let rate = m.tasks as f64 / (m.submit + m.run).as_secs_f64();
        println!(
            "scale/{mode} {} tasks: submit {:.2} s, run {:.2} s, {rate:.0} tasks/s, peak RSS {} MiB",
            m.tasks,
            m.submit.as_secs_f64(),
            m.run.as_secs_f64(),
            m.peak_mib
        );
        let _ = writeln!(
            table,
            "| {} | {:.2} | {:.2} | {rate:.0} | {} |",
            m.tasks,
            m.submit.as_secs_f64(),
            m.run.as_secs_f64(),
            m.peak_mib
        );
    }
    if !quick {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/silk-bench");
        let _ = std::fs::create_dir_all(&dir);
        if let Err(e) = std::fs::write(dir.join("scale.md"), &table) {
            eprintln!("cannot write scale.md: {e}");
        }
        print!("{table}");
    }
}
