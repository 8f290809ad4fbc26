//! The Rust client against a real in-process storage service (SQLite in a temp dir, gRPC on a
//! random loopback port): graph building, resource groups, submit / state / cancel / list,
//! outputs and errors, `wait` on jobs driven to the end through the storage API (standing in for
//! an execution manager), and the retry rules when storage is down or comes up late.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rmpv::Value;
use serde_json::json;
use silk_client::{
    Client, ClientError, GraphBuilder, JobOutcome, JobState, ListFilter, RetryPolicy, list,
};
use silk_core::graph::{Location, Policy, TaskGraph, TypeDesc};
use silk_ipc::FailureKind;
use silk_runtime::storage::db::SqliteDb;
use silk_runtime::storage::{Storage, StorageConfig, grpc};
use silk_tdl::{JobId, TaskId, frame};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::Code;

struct Server {
    addr: SocketAddr,
    storage: Storage<SqliteDb>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn serve_on(listener: tokio::net::TcpListener) -> Server {
    serve_on_with(listener, StorageConfig::default()).await
}

async fn serve_on_with(listener: tokio::net::TcpListener, config: StorageConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&dir.path().join("storage.db"))
        .await
        .unwrap();
    let storage = Storage::open(db, config).await.unwrap();
    let (addr, stop) = (listener.local_addr().unwrap(), CancellationToken::new());
    tokio::spawn(grpc::serve(
        storage.clone(),
        listener,
        stop.clone().cancelled_owned(),
    ));
    Server {
        addr,
        storage,
        stop,
        _dir: dir,
    }
}

async fn server() -> Server {
    serve_with(StorageConfig::default()).await
}

async fn serve_with(config: StorageConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on_with(listener, config).await
}

/// Copies bytes from `from` to `to` until `from` closes.
async fn pump(from: &TcpStream, to: &TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0; 16 * 1024];
    loop {
        from.readable().await?;
        let n = match from.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut sent = 0;
        while sent < n {
            to.writable().await?;
            match to.try_write(&buf[sent..n]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A TCP forwarder from `listener` to `target`; aborting the task closes every connection.
fn proxy(listener: TcpListener, target: SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((inbound, _)) = listener.accept().await {
            connections.spawn(async move {
                let outbound = TcpStream::connect(target).await?;
                tokio::try_join!(pump(&inbound, &outbound), pump(&outbound, &inbound)).map(drop)
            });
        }
    })
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn retry(ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_elapsed: Duration::from_millis(ms),
    }
}

/// Two chained int64 tasks: job input -> fib -> fib.
fn chain() -> TaskGraph {
    let mut g = GraphBuilder::new();
    let a = g
        .task("fixtures", "fibonacci")
        .input(TypeDesc::Int64)
        .output(TypeDesc::Int64)
        .add();
    g.task("fixtures", "fibonacci")
        .input_from(a.output(0), TypeDesc::Int64)
        .output(TypeDesc::Int64)
        .add();
    g.build().unwrap()
}

fn msgpack(v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &Value::from(v)).unwrap();
    out
}

/// Runs `task` of `job` as an execution manager would: success with `output`, or a failure.
async fn run(s: &Storage<SqliteDb>, job: JobId, task: u64, output: Result<i64, &str>) {
    let (em, session) = s.register_execution_manager("127.0.0.1").await.unwrap();
    let ctx = s
        .register_instance(session, job, TaskId::Index(task), em)
        .await
        .unwrap();
    match output {
        Ok(v) => {
            let outputs = frame::encode([msgpack(v)]).unwrap();
            s.report_success(session, job, TaskId::Index(task), ctx.instance, outputs)
                .await
        }
        Err(m) => {
            s.report_failure(
                session,
                job,
                TaskId::Index(task),
                ctx.instance,
                FailureKind::Panicked,
                m,
            )
            .await
        }
    }
    .unwrap();
}

#[test]
fn builder_diamond_json() {
    let mut g = GraphBuilder::new();
    let split = g
        .task("p", "split")
        .input(TypeDesc::Int64)
        .output(TypeDesc::Int64)
        .output(TypeDesc::Int64)
        .add();
    let left = g
        .task("p", "left")
        .input_from(split.output(0), TypeDesc::Int64)
        .output(TypeDesc::String)
        .add();
    let right = g
        .task("p", "right")
        .input_from(split.output(1), TypeDesc::Int64)
        .output(TypeDesc::String)
        .add();
    let policy = Policy {
        max_retries: 2,
        hard_timeout_ms: 60_000,
        soft_timeout_ms: 30_000,
        ..Policy::default()
    };
    let join = g
        .task("p", "join")
        .input_from(left.output(0), TypeDesc::String)
        .input_from(right.output(0), TypeDesc::String);
    assert_eq!(
        join.output(list(TypeDesc::Bytes))
            .policy(policy)
            .add()
            .index(),
        3
    );
    g.commit("p", "commit").policy.max_retries = 1;
    g.cleanup("p", "cleanup");
    let graph = g.build().unwrap();
    let default = json!({"max_retries": 0, "max_instances": 1, "soft_timeout_ms": 150000, "hard_timeout_ms": 300000});
    let expected = json!({
        "schema_version": "1.0",
        "tasks": [
            {"package": "p", "function": "split", "inputs": ["int64"], "outputs": ["int64", "int64"], "policy": default},
            {"package": "p", "function": "left", "inputs": ["int64"], "outputs": ["string"],
             "sources": [{"task": 0, "output": 0}], "policy": default},
            {"package": "p", "function": "right", "inputs": ["int64"], "outputs": ["string"],
             "sources": [{"task": 0, "output": 1}], "policy": default},
            {"package": "p", "function": "join", "inputs": ["string", "string"], "outputs": [{"list": "bytes"}],
             "sources": [{"task": 1, "output": 0}, {"task": 2, "output": 0}],
             "policy": {"max_retries": 2, "max_instances": 1, "soft_timeout_ms": 30000, "hard_timeout_ms": 60000}},
        ],
        "commit": {"package": "p", "function": "commit", "policy": {"max_retries": 1, "max_instances": 1, "soft_timeout_ms": 150000, "hard_timeout_ms": 300000}},
        "cleanup": {"package": "p", "function": "cleanup", "policy": default},
    });
    assert_eq!(serde_json::to_value(&graph).unwrap(), expected);
    let text = serde_json::to_string(&graph).unwrap();
    assert_eq!(
        TaskGraph::from_json(&text).unwrap(),
        graph,
        "the JSON loads back"
    );
}

#[tokio::test]
async fn invalid_wiring_is_rejected() {
    let mut g = GraphBuilder::new();
    let a = g
        .task("p", "a")
        .input(TypeDesc::Int64)
        .output(TypeDesc::Int64)
        .add();
    g.task("p", "b")
        .input_from(a.output(0), TypeDesc::String)
        .add();
    let e = g.build().unwrap_err();
    assert_eq!(e.location, Location::Input { task: 1, input: 0 });
    assert!(e.to_string().contains("task 1, input 0"), "{e}");

    let mut g = GraphBuilder::new();
    let a = g
        .task("p", "a")
        .input(TypeDesc::Int64)
        .output(TypeDesc::Int64)
        .add();
    g.task("p", "b")
        .input_from(a.output(3), TypeDesc::Int64)
        .add();
    assert_eq!(
        g.build().unwrap_err().location,
        Location::Input { task: 1, input: 0 }
    );

    // The client checks a graph before sending it: no server needed.
    let client = Client::connect(&closed_port().to_string())
        .unwrap()
        .with_retry(retry(0));
    let mut bad = chain();
    bad.tasks[1].inputs[0] = TypeDesc::Bool;
    let e = client
        .submit(silk_tdl::ResourceGroupId(1), &bad, &[Value::from(1)])
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::InvalidGraph(ref g) if g.location == Location::Input { task: 1, input: 0 }),
        "{e}"
    );
    let e = client
        .submit(silk_tdl::ResourceGroupId(1), &chain(), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::InvalidArgument(ref m) if m.contains("1 job input")),
        "{e}"
    );
}

#[tokio::test]
async fn open_group_is_idempotent_and_checks_the_secret() {
    let s = server().await;
    let client = Client::connect(&s.addr.to_string()).unwrap();
    let a = client.open_group("team", b"pw").await.unwrap();
    assert_eq!(client.open_group("team", b"pw").await.unwrap(), a);
    assert_ne!(client.open_group("other", b"pw").await.unwrap(), a);
    let wrong = client.open_group("team", b"guess").await.unwrap_err();
    assert!(matches!(wrong, ClientError::Unauthenticated(_)), "{wrong}");
    s.stop.cancel();
}

#[tokio::test]
async fn submit_state_cancel_and_list() {
    let s = server().await;
    let client = Client::connect(&format!("http://{}", s.addr)).unwrap();
    assert_eq!(client.address(), format!("http://{}", s.addr));
    let (g, h) = (
        client.open_group("g", "pw").await.unwrap(),
        client.open_group("h", "pw").await.unwrap(),
    );
    let a = client.submit(g, &chain(), &[Value::from(5)]).await.unwrap();
    let json = serde_json::to_string(&chain()).unwrap();
    let b = client
        .submit_json(h, &json, frame::encode([msgpack(6)]).unwrap())
        .await
        .unwrap();
    let c = client.submit(g, &chain(), &[Value::from(7)]).await.unwrap();
    assert_eq!(client.state(a).await.unwrap(), JobState::Running);

    assert_eq!(client.cancel(a).await.unwrap(), JobState::Cancelled);
    assert_eq!(
        client.cancel(a).await.unwrap(),
        JobState::Cancelled,
        "cancel is idempotent"
    );
    assert_eq!(client.state(a).await.unwrap(), JobState::Cancelled);
    assert_eq!(client.wait(a).await.unwrap(), JobOutcome::Cancelled);
    let early = client.outputs(c).await.unwrap_err();
    assert!(
        matches!(
            early,
            ClientError::Rpc {
                code: Code::FailedPrecondition,
                ..
            }
        ),
        "{early}"
    );

    let all = client.list(ListFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|j| j.job).collect::<Vec<_>>(),
        [c, b, a],
        "newest first"
    );
    assert_eq!(
        (all[2].state, all[2].group, all[2].task_count),
        (JobState::Cancelled, g, 2)
    );
    assert!(all[2].ended_at_ms.is_some() && all[0].ended_at_ms.is_none());
    let running = client
        .list(ListFilter {
            state: Some(JobState::Running),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(running.iter().map(|j| j.job).collect::<Vec<_>>(), [c, b]);
    let of_g = client
        .list(ListFilter {
            limit: 1,
            group: Some(g),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(of_g.iter().map(|j| j.job).collect::<Vec<_>>(), [c]);

    let unknown = JobId(9_999);
    assert!(matches!(client.outputs(unknown).await, Err(ClientError::NotFound(j)) if j == unknown));
    assert!(matches!(client.state(unknown).await, Err(ClientError::NotFound(j)) if j == unknown));
    let mut watch = client.watch(unknown);
    assert!(matches!(
        watch.next().await,
        Some(Err(ClientError::NotFound(_)))
    ));
    assert!(
        watch.next().await.is_none(),
        "the stream ends after an error"
    );
    s.stop.cancel();
}

#[tokio::test]
async fn wait_returns_outputs_or_the_error() {
    let s = server().await;
    let client = Client::connect(&s.addr.to_string()).unwrap();
    let group = client.open_group("w", "pw").await.unwrap();
    let ok = client
        .submit(group, &chain(), &[Value::from(6)])
        .await
        .unwrap();
    let mut watch = client.watch(ok);
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (first.state, first.total, first.ready, first.pending),
        (JobState::Running, 2, 1, 1)
    );
    run(&s.storage, ok, 0, Ok(8)).await;
    run(&s.storage, ok, 1, Ok(21)).await;
    let last = tokio::time::timeout(Duration::from_secs(30), async {
        let mut last = first;
        while let Some(p) = watch.next().await {
            last = p.unwrap();
        }
        last
    })
    .await
    .expect("watch ends after the terminal state");
    assert_eq!(
        (last.state, last.succeeded, last.total),
        (JobState::Succeeded, 2, 2)
    );
    assert_eq!(
        client.wait(ok).await.unwrap(),
        JobOutcome::Succeeded(vec![Value::from(21)])
    );
    assert_eq!(
        client.outputs_frame(ok).await.unwrap(),
        frame::encode([msgpack(21)]).unwrap()
    );

    let bad = client
        .submit(group, &chain(), &[Value::from(1)])
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.wait(bad).await }
    });
    run(&s.storage, bad, 0, Err("boom")).await;
    let outcome = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let JobOutcome::Failed(error) = outcome else {
        panic!("expected a failure, got {outcome:?}")
    };
    assert_eq!(error.kind, FailureKind::Panicked);
    assert!(
        error.message.contains("boom") && error.message.contains("task 0"),
        "{error}"
    );
    assert_eq!(client.error(bad).await.unwrap(), error);
    s.stop.cancel();
}

#[tokio::test]
async fn closed_port_is_unavailable_after_the_deadline() {
    let addr = closed_port();
    let client = Client::connect(&addr.to_string())
        .unwrap()
        .with_retry(retry(300));
    let start = Instant::now();
    let e = client.state(JobId(1)).await.unwrap_err();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "retried until the deadline"
    );
    assert!(matches!(e, ClientError::Unavailable { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot reach storage at http://{addr} (is `silk dev` running?)"
        )),
        "{text}"
    );
    // RegisterJob is retried too, but only because the connection was refused (never sent).
    let start = Instant::now();
    let graph = serde_json::to_string(&chain()).unwrap();
    let e = client
        .submit_json(
            silk_tdl::ResourceGroupId(1),
            &graph,
            frame::encode([msgpack(3)]).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Unavailable { .. }), "{e}");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "register retried"
    );
}

#[tokio::test]
async fn calls_succeed_when_storage_comes_up_during_the_backoff() {
    let addr = closed_port();
    let client = Client::connect(&addr.to_string())
        .unwrap()
        .with_retry(retry(20_000));
    // Both the idempotent open and the register (retried only because its connection was
    // refused, i.e. the request never left) wait for the server.
    let pending = tokio::spawn({
        let client = client.clone();
        async move {
            let group = client.open_group("late", "pw").await?;
            let graph = serde_json::to_string(&chain()).unwrap();
            client
                .submit_json(group, &graph, frame::encode([msgpack(3)]).unwrap())
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished());
    let s = serve_on(tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    let job = tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let jobs = client.list(ListFilter::default()).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.job).collect::<Vec<_>>(),
        [job],
        "registered exactly once"
    );
    s.stop.cancel();
}

#[tokio::test]
async fn watch_resumes_after_the_connection_breaks() {
    let s = server().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    let forwarder = proxy(listener, s.addr);
    let client = Client::connect(&front.to_string())
        .unwrap()
        .with_retry(retry(20_000));
    let group = client.open_group("watch", "pw").await.unwrap();
    let job = client
        .submit(group, &chain(), &[Value::from(6)])
        .await
        .unwrap();
    let mut watch = client.watch(job);
    assert_eq!(
        watch.next().await.unwrap().unwrap().state,
        JobState::Running
    );

    // Break the connection, finish the job meanwhile, then let the client back in.
    forwarder.abort();
    let _ = forwarder.await;
    run(&s.storage, job, 0, Ok(8)).await;
    run(&s.storage, job, 1, Ok(21)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _forwarder = proxy(TcpListener::bind(front).await.unwrap(), s.addr);
    let last = tokio::time::timeout(Duration::from_secs(30), async {
        let mut last = None;
        while let Some(p) = watch.next().await {
            last = Some(p.unwrap());
        }
        last
    })
    .await
    .expect("the watch ends");
    let last = last.expect("progress after reconnecting");
    assert_eq!((last.state, last.succeeded), (JobState::Succeeded, 2));
    s.stop.cancel();
}

/// A job past storage's `max_job_bytes` is refused with its size and the key named (not a
/// transport error from deep inside HTTP/2), and nothing is registered.
#[tokio::test]
async fn a_job_over_max_job_bytes_is_refused_with_its_size() {
    let s = serve_with(StorageConfig {
        max_job_bytes: 8 << 20,
        ..StorageConfig::default()
    })
    .await;
    let client = Client::connect(&format!("http://{}", s.addr)).unwrap();
    let g = client.open_group("big", "pw").await.unwrap();
    let huge = vec![0u8; 9 << 20];
    let e = client
        .submit_graph(g, &chain(), frame::encode([huge]).unwrap())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ClientError::InvalidArgument(_)), "{e:?}");
    assert!(
        text.contains("the job is too large") && text.contains("max_job_bytes = 8388608"),
        "{text}"
    );
    assert!(client.list(ListFilter::default()).await.unwrap().is_empty());
    s.stop.cancel();
}

/// A graph of a million tasks — far past one gRPC message in any form — is streamed to storage
/// in chunks, and what storage stored is the same graph: every task's names, types, policy and
/// wiring (sources at distances from 1 to about a million, outputs past the first).
#[tokio::test]
async fn a_million_task_graph_round_trips_through_submit() {
    use silk_core::graph::{JobGraph, JobGraphBuilder, Source, TaskSpec};
    use silk_runtime::storage::db::Db as _;

    let n: usize = 1_000_000;
    let retried = Policy {
        max_retries: 3,
        ..Policy::default()
    };
    let mut tasks = Vec::with_capacity(n);
    tasks.push(TaskSpec {
        package: "p".into(),
        function: "start".into(),
        inputs: vec![TypeDesc::Int64],
        outputs: vec![TypeDesc::Int64, TypeDesc::String],
        sources: None,
        policy: Policy::default(),
    });
    for i in 1..n {
        // Wiring that no pattern predicts: the task before, the first task, one in between.
        let between = (i.wrapping_mul(2_654_435_761) >> 7) % i;
        tasks.push(TaskSpec {
            package: if i % 3 == 0 { "p" } else { "q" }.into(),
            function: "step".into(),
            inputs: vec![TypeDesc::Int64, TypeDesc::String, TypeDesc::Int64],
            outputs: vec![TypeDesc::Int64, TypeDesc::String],
            sources: Some(vec![
                Source {
                    task: i - 1,
                    output: 0,
                },
                Source { task: 0, output: 1 },
                Source {
                    task: between,
                    output: 0,
                },
            ]),
            policy: if i % 1000 == 0 {
                retried
            } else {
                Policy::default()
            },
        });
    }
    let graph = TaskGraph {
        schema_version: "1.0".into(),
        tasks,
        commit: None,
        cleanup: None,
    };
    let expected = JobGraph::from_task_graph(&graph).unwrap();
    let s = server().await;
    let client = Client::connect(&format!("http://{}", s.addr)).unwrap();
    let g = client.open_group("wide", "pw").await.unwrap();
    let job = client
        .submit_graph(g, &graph, frame::encode([msgpack(7)]).unwrap())
        .await
        .unwrap();
    drop(graph);
    let (chunks, inputs) = s.storage.db().job_parts(job).await.unwrap();
    assert!(chunks.len() > 10, "{} chunks", chunks.len());
    assert_eq!(inputs, frame::encode([msgpack(7)]).unwrap());
    let mut stored = JobGraphBuilder::new();
    for chunk in &chunks {
        let wire = prost::Message::decode(chunk.as_slice()).unwrap();
        stored.push(&wire, chunk.len() as u64).unwrap();
    }
    assert!(
        stored.finish().unwrap() == expected,
        "the stored graph differs"
    );
    s.stop.cancel();
}
