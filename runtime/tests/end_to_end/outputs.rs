//! End to end, real `silk` processes: what a task *returns* is contained. The `hostile` package
//! returns values that amplify when decoded, nest deeper than a decoder's stack, sit just past
//! the output limit, fan out to many readers past storage's memory budget, or add up to a job
//! output larger than one gRPC message. For each: the job ends (succeeds, or fails with the
//! kind and the limit named), the peak memory of storage and of the EM stays within
//! [`RSS_FACTOR`] times the largest output over its baseline, and a normal job on the same
//! cluster still succeeds.

use crate::e2e;

use serde_json::json;

use e2e::graphs::{fed, graph, single, task};
use e2e::jobs::{FailureKind, JobState, Jobs};
use e2e::memory::Baseline;
use e2e::values::{i, s};
use e2e::{Backend, Cluster, EmSpec, watchdog};

const MIB: u64 = 1 << 20;

/// Storage or an EM may hold an output a few times over while it arrives, is kept and passed on.
/// Storage: the gRPC message and its decoded copy, the database driver's copies of the task's
/// completion and of the job outputs assembled from it. The EM: the guest's buffer, the outcome,
/// the encoded report. Measured: about 4.2 x (storage) and 3.9 x (EM) for a 16 MiB output.
const RSS_FACTOR: u64 = 5;

/// The services whose peak memory these tests bound.
const BOUNDED: [&str; 2] = ["storage", "em0"];

/// A small job through the whole cluster (a blob read by another task).
async fn normal_job(jobs: &Jobs, group: u64) {
    let g = graph(vec![
        task("hostile", "blob", [json!("int64")], [json!("string")]),
        fed(
            task("hostile", "length", [json!("string")], [json!("int64")]),
            &[(0, 0)],
        ),
    ]);
    let job = jobs.submit(group, &g, &[i(1000)]).await;
    assert_eq!(jobs.wait_succeeded(job).await, [i(1000)]);
}

/// The peaks of storage and the EM grew by at most [`RSS_FACTOR`] times the largest output.
fn assert_bounded(cluster: &Cluster, baseline: &Baseline, largest: u64) {
    baseline.assert_grew_at_most(
        cluster,
        RSS_FACTOR * largest,
        &format!("{RSS_FACTOR} x the largest output, {} MiB", largest / MIB),
    );
}

/// 16 Mi nils in one output: one byte each on the wire, a value-tree node each in a decoder that
/// builds trees (~40 bytes: 640 MiB in storage before its checks streamed).
async fn nil_bomb() {
    let cluster = Cluster::start(&Backend::Sqlite, &[EmSpec::wasm_only(2)]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("nil-bomb").await;
    normal_job(&jobs, group).await;
    let baseline = Baseline::of(&cluster, &BOUNDED);
    let count: u32 = 16 << 20;
    let g = single(
        "hostile",
        "nil_bomb",
        [json!("int64")],
        [json!({"list": "int64"})],
    );
    let job = jobs.submit(group, &g, &[i(i64::from(count))]).await;
    assert_eq!(
        jobs.wait_terminal(job).await,
        JobState::Succeeded,
        "the nil bomb is valid MessagePack: the job succeeds"
    );
    let frame = jobs.outputs_frame(job).await.unwrap();
    // Frame: count, length, then array32 header and one nil per element.
    assert_eq!(frame.len(), 8 + 5 + count as usize);
    assert_eq!(frame[8], 0xdd);
    assert_eq!(u32::from_be_bytes(frame[9..13].try_into().unwrap()), count);
    assert_bounded(&cluster, &baseline, u64::from(count));
    normal_job(&jobs, group).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nil_bomb_costs_storage_no_value_tree() {
    watchdog(180, nil_bomb()).await;
}

/// Values nested deeper than a recursive decoder's depth limit (1 024 in the MessagePack crate
/// storage used to check outputs with): in wasm (whose 512 KiB stack bounds how deep the task's
/// own encoder gets) and natively, deeper.
async fn deep_values(em: EmSpec, depths: &[i64]) {
    let cluster = Cluster::start(&Backend::Sqlite, &[em]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("deep").await;
    for &depth in depths {
        let g = single("hostile", "deep", [json!("int64")], [json!("bytes")]);
        let job = jobs.submit(group, &g, &[i(depth)]).await;
        if jobs.wait_terminal(job).await != JobState::Succeeded {
            panic!("depth {depth}: {:?}", jobs.error(job).await);
        }
        let frame = jobs.outputs_frame(job).await.unwrap();
        let depth = usize::try_from(depth).unwrap();
        assert_eq!(frame.len(), 8 + depth + 1, "one byte per level, then the 0");
        assert!(frame[8..8 + depth].iter().all(|&b| b == 0x91));
    }
    normal_job(&jobs, group).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_outputs_are_checked_without_recursion() {
    let native = EmSpec {
        slots: 1,
        native: vec!["hostile".into()],
        extra: String::new(),
    };
    watchdog(120, async {
        deep_values(EmSpec::wasm_only(1), &[2_000]).await;
        deep_values(native, &[20_000]).await;
    })
    .await;
}

/// An output just under the package's `max_output_bytes` succeeds; just over it, the task fails
/// `OutputTooLarge` naming the limit, without retries.
async fn output_limit() {
    let em = EmSpec::wasm_only(2).with("[wasm_packages.hostile]\nmax_output_bytes = 1048576\n");
    let cluster = Cluster::start(&Backend::Sqlite, &[em]).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("limit").await;
    let g = single("hostile", "blob", [json!("int64")], [json!("string")]);
    let under = i64::try_from(MIB).unwrap() - 64;
    let job = jobs.submit(group, &g, &[i(under)]).await;
    assert_eq!(
        jobs.wait_succeeded(job).await,
        [s(&"x".repeat(usize::try_from(under).unwrap()))]
    );
    let retried = json!({"schema_version": "1.0", "tasks": [{
        "package": "hostile", "function": "blob", "inputs": ["int64"], "outputs": ["string"],
        "policy": {"max_retries": 3}}]});
    let job = jobs
        .submit(group, &retried, &[i(i64::try_from(MIB).unwrap())])
        .await;
    let (message, kind) = jobs.wait_failed(job).await;
    assert_eq!(kind, FailureKind::OutputTooLarge, "{message}");
    assert!(message.contains("max_output_bytes"), "{message}");
    assert!(message.contains("1048576"), "{message}");
    assert!(
        message.contains("after 1 attempt"),
        "not retried: {message}"
    );
    normal_job(&jobs, group).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_over_the_limit_fails_its_task_once() {
    watchdog(120, output_limit()).await;
}

/// One 4 MiB output read by 4 tasks, with storage's output memory budget at 1 MiB: every
/// reader's inputs come back from the database, exactly.
async fn fan_out() {
    let cluster = Cluster::start_with(
        &Backend::Sqlite,
        &[EmSpec::wasm_only(2)],
        false,
        "output_memory_budget_bytes = 1048576",
        false,
    )
    .await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("fan-out").await;
    normal_job(&jobs, group).await;
    let baseline = Baseline::of(&cluster, &BOUNDED);
    let size = 4 * MIB;
    let readers = 4;
    let mut tasks = vec![task("hostile", "blob", [json!("int64")], [json!("string")])];
    for _ in 0..readers {
        tasks.push(fed(
            task("hostile", "length", [json!("string")], [json!("int64")]),
            &[(0, 0)],
        ));
    }
    let job = jobs
        .submit(group, &graph(tasks), &[i(i64::try_from(size).unwrap())])
        .await;
    let expected = vec![i(i64::try_from(size).unwrap()); readers];
    assert_eq!(jobs.wait_succeeded(job).await, expected);
    assert_bounded(&cluster, &baseline, size);
    normal_job(&jobs, group).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_past_the_memory_budget_are_read_back_for_every_reader() {
    watchdog(120, fan_out()).await;
}

/// Three 22 MiB job outputs: a 66 MiB outputs frame, larger than one gRPC message (64 MiB),
/// reaches the client page by page (storage's row limit raised to 96 MiB to store it).
async fn large_job_outputs() {
    let cluster = Cluster::start_with(
        &Backend::Sqlite,
        &[EmSpec::wasm_only(1)],
        false,
        "db_max_write_bytes = 100663296",
        false,
    )
    .await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("large").await;
    let size = 22 * MIB;
    let tasks = vec![task("hostile", "blob", [json!("int64")], [json!("string")]); 3];
    let n = i(i64::try_from(size).unwrap());
    let job = jobs
        .submit(group, &graph(tasks), &[n.clone(), n.clone(), n])
        .await;
    assert_eq!(jobs.wait_terminal(job).await, JobState::Succeeded);
    let frame = jobs.outputs_frame(job).await.unwrap();
    let values = silk_tdl::frame::decode(&frame).unwrap();
    assert_eq!(values.len(), 3);
    for v in values {
        // str32 header, then the bytes.
        assert_eq!(v.len() as u64, 5 + size);
        assert!(v[5..].iter().all(|&b| b == b'x'));
    }
    normal_job(&jobs, group).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_outputs_larger_than_a_message_reach_the_client() {
    watchdog(180, large_job_outputs()).await;
}
