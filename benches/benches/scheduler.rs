//! Scheduler bench: assignments/s through the round-robin core with 1 000 jobs (10 resource
//! groups × 100 jobs, 10 tasks each). One iteration ingests every job's ready tasks (as storage's
//! lane would deliver them, task 0 of every job first), then drains the core through the bounded
//! dispatch queue (capacity 256) the way execution managers pull: decide into the free room,
//! pop in batches of 16.
//!
//! Paths, one after the other in one process:
//! * `core/decide`: ingest + decide only;
//! * `core+dispatch`: ingest + decide + dispatch queue push/pop.
//!
//! Criterion reports time per iteration and assignments/s (throughput).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use silk_core::ids::SessionId;
use silk_runtime::scheduler::{CoreConfig, DispatchQueue, RoundRobinCore};
use silk_runtime::storage::ReadyTask;
use silk_tdl::{JobId, ResourceGroupId, TaskId};

const GROUPS: u64 = 10;
const JOBS: u64 = 1_000;
const TASKS: u64 = 10;
const DISPATCH: usize = 256;

fn entries() -> Vec<ReadyTask> {
    let mut out = Vec::new();
    for t in 0..TASKS {
        for j in 0..JOBS {
            out.push(ReadyTask {
                group: ResourceGroupId(j % GROUPS),
                job: JobId(j),
                task: TaskId::Index(t),
            });
        }
    }
    out
}

fn fresh_core() -> RoundRobinCore {
    let mut core = RoundRobinCore::new(CoreConfig {
        dispatch_queue_capacity: DISPATCH,
        ..CoreConfig::default()
    });
    core.observe_session(SessionId(1));
    core
}

fn bench(c: &mut Criterion) {
    let entries = entries();
    let total = u64::try_from(entries.len()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("scheduler");
    group.throughput(Throughput::Elements(total));
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("core/decide", |b| {
        b.iter(|| {
            let mut core = fresh_core();
            core.ingest(&entries, Instant::now());
            let mut n = 0;
            loop {
                let batch = core.decide(DISPATCH);
                if batch.is_empty() {
                    break;
                }
                n += batch.len();
            }
            assert_eq!(n, entries.len());
        });
    });

    group.bench_function("core+dispatch", |b| {
        b.iter(|| {
            let mut core = fresh_core();
            let queue = DispatchQueue::new(DISPATCH);
            queue.bump_session(SessionId(1)).unwrap();
            core.ingest(&entries, Instant::now());
            let mut n = 0;
            while n < entries.len() {
                let batch = core.decide(queue.free());
                assert_eq!(queue.push(&batch), batch.len());
                while !queue.is_empty() {
                    n += rt.block_on(queue.pop(16, Duration::ZERO)).len();
                }
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
