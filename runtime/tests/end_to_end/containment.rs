//! End to end, real `silk` processes: what a task *returns* cannot wedge an execution manager.
//! The `hostile` test package returns outputs of tens of MiB that finish at the same moment (so
//! their outcomes meet in one report), and an output too large for any report; each job must end
//! within a bound (succeeding, or failing `OutputTooLarge` naming the limit), the peak memory of
//! storage and of the EM must stay within a small multiple of the bytes in flight, and a normal
//! job submitted afterwards on the same cluster must succeed.

use crate::e2e;

use serde_json::json;

use e2e::graphs::{fed, graph, single, task};
use e2e::jobs::{FailureKind, JobState};
use e2e::memory::Baseline;
use e2e::values::i;
use e2e::{Backend, Cluster, EmSpec, watchdog};

const MIB: i64 = 1 << 20;
const MIB_U64: u64 = 1 << 20;

/// The services whose peak memory these tests bound.
const BOUNDED: [&str; 2] = ["storage", "em0"];

/// How many times the bytes of the outputs (or inputs) in flight at once storage and the EM may
/// hold at their peak.
const IN_FLIGHT_FACTOR: u64 = 3;

/// One scenario at a time: each moves hundreds of MiB through storage, an EM and SQLite, and
/// three at once on a two-core machine shared with other builds do not finish in their bound.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Heartbeat cutoff of these clusters: storage writing hundreds of MiB to SQLite on a loaded
/// machine delays its heartbeat bookkeeping past the harness's default.
const PATIENT_CUTOFF_MS: u64 = 30_000;

/// Milliseconds since the Unix epoch, `ahead_ms` from now: when `hostile::blob_at` tasks return.
fn at(ahead_ms: u64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    i64::try_from(now).unwrap() + i64::try_from(ahead_ms).unwrap()
}

/// A job of `n` independent `hostile::blob_at` tasks, each returning `bytes` at `at_ms`, each
/// read by a `hostile::length` task (the job outputs are the lengths: the blobs stay
/// intermediate outputs, under storage's row limit for a job's outputs).
fn blobs_at(n: usize) -> serde_json::Value {
    let int = json!("int64");
    let blobs = (0..n).map(|_| {
        task(
            "hostile",
            "blob_at",
            [int.clone(), int.clone()],
            [json!("string")],
        )
    });
    let lengths = (0..n).map(|k| {
        fed(
            task("hostile", "length", [json!("string")], [int.clone()]),
            &[(k, 0)],
        )
    });
    graph(blobs.chain(lengths).collect())
}

/// The job a healthy cluster always runs: `fixtures::fibonacci(10)`.
async fn normal_job_succeeds(jobs: &e2e::Jobs, group: u64) {
    let int = json!("int64");
    let job = jobs
        .submit(
            group,
            &single("fixtures", "fibonacci", [int.clone()], [int]),
            &[i(10)],
        )
        .await;
    assert_eq!(jobs.wait_succeeded(job).await, [i(55)]);
}

/// Four tasks return 40 MiB each at the same moment, on one EM with four native slots: two such
/// outcomes in one report would exceed storage's 64 MiB message cap. The job succeeds, and so
/// does a normal job afterwards (the reporter is not stuck on an unsendable batch).
async fn simultaneous_large_outputs(native: bool) {
    let mut spec = EmSpec::native(4);
    if native {
        spec.native.push("hostile".into());
    }
    let cluster = Cluster::start_patient(&Backend::Sqlite, &[spec], PATIENT_CUTOFF_MS).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("large-outputs").await;
    normal_job_succeeds(&jobs, group).await;
    let baseline = Baseline::of(&cluster, &BOUNDED);
    let when = at(3000);
    let inputs: Vec<_> = (0..4).flat_map(|_| [i(40 * MIB), i(when)]).collect();
    let job = jobs.submit(group, &blobs_at(4), &inputs).await;
    let state = jobs.wait_terminal(job).await;
    if state == JobState::Failed {
        let (message, kind) = jobs.error(job).await;
        panic!("job of four 40 MiB outputs failed ({kind:?}): {message}");
    }
    assert_eq!(state, JobState::Succeeded);
    assert_eq!(jobs.try_outputs(job).await.unwrap(), vec![i(40 * MIB); 4]);
    // In wasm the guests' linear memories live in the EM too: each holds its output twice more
    // (the string and its encoding).
    let factor = if native {
        IN_FLIGHT_FACTOR
    } else {
        IN_FLIGHT_FACTOR + 2
    };
    baseline.assert_grew_at_most(&cluster, factor * 4 * 40 * MIB_U64, "in flight");
    normal_job_succeeds(&jobs, group).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_40_mib_outputs_native_do_not_wedge_the_em() {
    let _heavy = ONE_AT_A_TIME.lock().await;
    watchdog(180, simultaneous_large_outputs(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_40_mib_outputs_wasm_do_not_wedge_the_em() {
    let _heavy = ONE_AT_A_TIME.lock().await;
    watchdog(180, simultaneous_large_outputs(false)).await;
}
/// A native task returning 70 MiB, under a native output limit raised to 100 MiB: its outcome
/// cannot fit in any report under storage's 64 MiB message cap, so the task fails
/// `OutputTooLarge` naming that cap (once: no retry), and a normal job succeeds afterwards.
async fn output_too_large_for_any_report() {
    let spec = EmSpec {
        native: vec!["fixtures".into(), "hostile".into()],
        ..EmSpec::native(2)
    }
    .with("[native_default]\nmax_output_bytes = 104857600");
    let cluster = Cluster::start_patient(&Backend::Sqlite, &[spec], PATIENT_CUTOFF_MS).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("too-large").await;
    let job = jobs
        .submit(
            group,
            &single("hostile", "blob", [json!("int64")], [json!("string")]),
            &[i(70 * MIB)],
        )
        .await;
    let (message, kind) = jobs.wait_failed(job).await;
    assert_eq!(kind, FailureKind::OutputTooLarge, "{message}");
    assert!(
        message.contains("ReportTaskOutcomes message cap"),
        "names the cap: {message}"
    );
    normal_job_succeeds(&jobs, group).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_too_large_for_any_report_fails_output_too_large() {
    let _heavy = ONE_AT_A_TIME.lock().await;
    watchdog(180, output_too_large_for_any_report()).await;
}

/// One 20 MiB output fanned out to six tasks: their registrations, handed to one EM together,
/// would carry 120 MiB of inputs in one response, over storage's 64 MiB message cap. Storage
/// hands out what fits and queues the rest again; the job succeeds and so does a normal job.
async fn large_inputs_fanned_out() {
    let mut spec = EmSpec::native(4);
    spec.native.push("hostile".into());
    let cluster = Cluster::start_patient(&Backend::Sqlite, &[spec], PATIENT_CUTOFF_MS).await;
    let jobs = cluster.jobs().await;
    let group = jobs.add_group("fan-out").await;
    normal_job_succeeds(&jobs, group).await;
    let baseline = Baseline::of(&cluster, &BOUNDED);
    let (int, string) = (json!("int64"), json!("string"));
    let mut tasks = vec![task("hostile", "blob", [int.clone()], [string.clone()])];
    for _ in 0..6 {
        tasks.push(fed(
            task("hostile", "length", [string.clone()], [int.clone()]),
            &[(0, 0)],
        ));
    }
    let job = jobs.submit(group, &graph(tasks), &[i(20 * MIB)]).await;
    let outputs = jobs.wait_succeeded(job).await;
    assert_eq!(outputs, vec![i(20 * MIB); 6]);
    baseline.assert_grew_at_most(&cluster, IN_FLIGHT_FACTOR * 6 * 20 * MIB_U64, "in flight");
    normal_job_succeeds(&jobs, group).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_inputs_fanned_out_to_many_tasks_are_handed_out_in_parts() {
    let _heavy = ONE_AT_A_TIME.lock().await;
    watchdog(180, large_inputs_fanned_out()).await;
}
