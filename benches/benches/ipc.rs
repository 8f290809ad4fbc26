//! The IPC bench: what it costs to hand a task to an executor — native over shm or pipes, or the
//! wasm sandbox — per path, in one process, one path after another, on identical payloads.
//!
//! ```text
//! scripts/build-packages && cargo build --release -p silk-executor-native
//! cargo bench -p silk-benches --bench ipc
//! ```
//!
//! 1. The overhead table: for `noop`, `sleep_and_echo` (upstream's 100-path payload) and
//!    `echo_bytes` (a string of about the same size, no sleep), every
//!    path of `silk_benches::paths::all_paths` runs `SILK_BENCH_SAMPLES` (default 10 000) timed
//!    tasks after a warm-up; the summary goes to `target/silk-bench/ipc-overhead.md` and stdout.
//! 2. criterion groups for the same paths and tasks, and a payload sweep (64 B … 16 MiB through
//!    `echo_bytes`) over shm and pipes.

use std::hint::black_box;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use silk_benches::paths::{BenchPath, BenchTask, Native, all_paths};
use silk_benches::payload::{echo_inputs, sleep_and_echo_inputs};
use silk_benches::stats::{PathResult, task_table};
use silk_runtime::em::pool::{TransportKind, WaitMode};

/// `echo_bytes`'s string in the overhead table: about `sleep_and_echo`'s payload, so the two rows
/// tell the cost of moving the bytes from the cost of waiting around a task that sleeps.
const ECHO_BYTES: usize = 3_500;

const SWEEP_SIZES: [usize; 7] = [64, 1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20];

fn samples() -> usize {
    std::env::var("SILK_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

fn tasks() -> Vec<(BenchTask, Vec<u8>)> {
    vec![
        (
            BenchTask::Noop,
            silk_tdl::frame::FrameWriter::new().finish(),
        ),
        (BenchTask::SleepAndEcho, sleep_and_echo_inputs()),
        (BenchTask::EchoBytes, echo_inputs(ECHO_BYTES)),
    ]
}

fn measure(
    path: &mut dyn BenchPath,
    task: BenchTask,
    inputs: &[u8],
    n: usize,
) -> Vec<silk_benches::paths::Sample> {
    for _ in 0..(n / 10).max(100) {
        black_box(path.run(task, inputs));
    }
    (0..n).map(|_| path.run(task, inputs)).collect()
}

fn overhead_table(n: usize) {
    let mut md = format!(
        "# IPC overhead: EM → executor (native and wasm)\n\n\
         `cargo bench -p silk-benches --bench ipc`, {n} samples per row after a warm-up, \
         {cpus} CPUs, paths run one after another in one process. Times in µs.\n\n\
         * **E2E**: `NativeExecutor::execute` as the EM sees it (direct path: the call).\n\
         * **executor**: the executor's own `elapsed_ns` (package lookup + FFI call, including \
         the task's input decoding and output encoding).\n\
         * **executor-internal**: executor − the median in-process direct call of the same task \
         and payload (the task's own work, real sleep included), i.e. the executor's machinery \
         around the task; an estimate, negative for samples faster than that median. The nominal \
         50 µs sleep is never subtracted.\n\
         * **IPC overhead**: E2E − executor, per sample.\n\
         * shm *adaptive*: the EM spins up to ~2× the recent task time (20–400 µs) while a CPU is \
         spare, then parks; *parked*: both sides block on the futex at once.\n\
         * wasm: in-process, so *executor* is the sandbox's whole run (fresh store + instantiate \
         + copy in + call + copy out + drop) and *executor-internal* is the sandbox's cost over \
         the native direct call (for `noop`, the per-task sandbox overhead).\n\n",
        cpus = std::thread::available_parallelism().map_or(1, |c| c.get()),
    );
    for (task, inputs) in tasks() {
        let mut results = Vec::new();
        let mut direct_median = None;
        for (name, start) in all_paths() {
            let mut path = start();
            let samples = measure(&mut *path, task, &inputs, n);
            drop(path);
            let result = PathResult::new(name, &samples, direct_median);
            if direct_median.is_none() {
                direct_median = Some(result.executor.p50);
            }
            results.push(result);
        }
        md.push_str(&task_table(task.name(), &results));
        md.push('\n');
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/silk-bench");
    std::fs::create_dir_all(&dir).expect("create target/silk-bench");
    let file = dir.join("ipc-overhead.md");
    std::fs::write(&file, &md).expect("write the overhead table");
    println!("{md}\nwritten to {}", file.display());
}

fn criterion_paths(c: &mut Criterion) {
    for (task, inputs) in tasks() {
        let mut group = c.benchmark_group(task.name());
        for (name, start) in all_paths() {
            let mut path = start();
            group.bench_function(name, |b| b.iter(|| black_box(path.run(task, &inputs))));
        }
        group.finish();
    }
}

fn criterion_sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("payload_sweep");
    group.sample_size(10);
    for (name, transport) in [("shm", TransportKind::Shm), ("pipe", TransportKind::Pipe)] {
        let mut path = Native::spawn(name, transport, WaitMode::Adaptive);
        for size in SWEEP_SIZES {
            let inputs = echo_inputs(size);
            group.throughput(Throughput::Bytes(2 * size as u64));
            group.bench_with_input(BenchmarkId::new(name, size), &inputs, |b, inputs| {
                b.iter(|| black_box(path.run(BenchTask::EchoBytes, inputs)));
            });
        }
    }
    group.finish();
}

fn main() {
    // The executor runs with 1 ns timer slack; give the direct path's sleeps the same.
    if let Err(e) = rustix::thread::set_current_timer_slack(NonZeroU64::new(1)) {
        eprintln!("cannot set timer slack: {e}");
    }
    overhead_table(samples());
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    criterion_paths(&mut c);
    criterion_sweep(&mut c);
    c.final_summary();
}
