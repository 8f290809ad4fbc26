//! A slot given several tasks at once queues consecutive native ones to its executor back to
//! back: each still gets its own outcome, deadline and stop, and a task that crashes or wedges
//! the executor fails alone while the tasks queued behind it run on the fresh executor.

use crate::support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rmpv::Value;
use silk_ipc::{Execute, FailureKind, TaskFailure};
use silk_runtime::em::pool::{PackagePolicy, Queued, Slot, Stop, TaskSuccess};
use support::{frame, outputs, request};

const T: Duration = Duration::from_secs(20);

fn slot() -> Slot {
    crate::pool_backends::slot(PackagePolicy::trusting(["fixtures"]), BTreeMap::new())
}

fn fib(n: u64) -> Execute {
    request("fixtures", "fibonacci", frame(&[Value::from(n)]))
}

/// Runs `tasks` (request, hard timeout, stop) as one batch; returns each outcome in order (and
/// how many times the executor was restarted) and checks every task got exactly one, in order.
fn run(
    slot: &mut Slot,
    tasks: &[(Execute, Duration, Stop)],
) -> (Vec<Result<TaskSuccess, TaskFailure>>, u64) {
    let now = Instant::now();
    let batch: Vec<Queued<'_>> = tasks
        .iter()
        .map(|(request, timeout, stop)| Queued {
            request,
            hard_timeout: *timeout,
            deadline: now + *timeout,
            stop,
        })
        .collect();
    let mut seen = Vec::new();
    let mut restarts = 0;
    slot.execute_batch(&batch, &mut |k, outcome, stats| {
        seen.push((k, outcome));
        restarts += stats.restarts;
    });
    let order: Vec<usize> = seen.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        order,
        (0..tasks.len()).collect::<Vec<_>>(),
        "one outcome per task, in order"
    );
    (
        seen.into_iter().map(|(_, outcome)| outcome).collect(),
        restarts,
    )
}

fn fib_of(outcome: &Result<TaskSuccess, TaskFailure>) -> u64 {
    outputs::<u64>(&outcome.as_ref().expect("succeeded").outputs)[0]
}

#[test]
fn a_crash_and_a_timeout_inside_a_batch_fail_only_their_own_tasks() {
    let mut s = slot();
    let tasks = [
        (fib(10), T, Stop::default()),
        (request("fixtures", "abort", frame(&[])), T, Stop::default()),
        (fib(7), T, Stop::default()),
        // Runs for many seconds natively: its 300 ms (counted from when the batch started) ends
        // while it runs.
        (fib(45), Duration::from_millis(300), Stop::default()),
        (fib(12), T, Stop::default()),
        (fib(1), T, Stop::default()),
    ];
    let started = Instant::now();
    let (out, restarts) = run(&mut s, &tasks);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(fib_of(&out[0]), 55);
    assert_eq!(
        out[1].as_ref().unwrap_err().kind(),
        FailureKind::Crashed,
        "{:?}",
        out[1]
    );
    assert_eq!(fib_of(&out[2]), 13);
    assert_eq!(out[3], Err(TaskFailure::Timeout { after_ms: 300 }));
    assert_eq!(fib_of(&out[4]), 144);
    assert_eq!(fib_of(&out[5]), 1);
    assert_eq!(
        restarts, 2,
        "the executor was replaced once for the crash and once for the timeout, no more"
    );
}

#[test]
fn stopping_a_queued_task_spares_the_one_running_before_it() {
    let mut s = slot();
    let tasks = [
        (fib(25), T, Stop::default()),
        (fib(10), T, Stop::default()),
        (fib(7), T, Stop::default()),
    ];
    // Stopped before the batch started: never sent, so the executor is not even restarted.
    tasks[1].2.stop();
    let (out, restarts) = run(&mut s, &tasks);
    assert_eq!(fib_of(&out[0]), 75_025);
    assert_eq!(out[1], Err(TaskFailure::stopped()));
    assert_eq!(fib_of(&out[2]), 13);
    assert_eq!(restarts, 0);

    // Stopped while it waits in the executor's ring behind a task that runs for a while: the
    // running task must still finish with its own result.
    let tasks = [
        (fib(38), T, Stop::default()),
        (fib(10), T, Stop::default()),
        (fib(7), T, Stop::default()),
    ];
    let out = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(30));
            tasks[1].2.stop();
        });
        run(&mut s, &tasks).0
    });
    assert_eq!(fib_of(&out[0]), 39_088_169);
    assert_eq!(out[1], Err(TaskFailure::stopped()));
    assert_eq!(fib_of(&out[2]), 13);
}

#[test]
fn native_and_wasm_tasks_of_one_batch_each_run_on_their_backend_in_order() {
    let mut s = slot();
    let dot = request(
        "complex",
        "dot_product",
        frame(&[Value::Array(vec![]), Value::Array(vec![])]),
    );
    let tasks = [
        (fib(10), T, Stop::default()),
        (fib(11), T, Stop::default()),
        (dot, T, Stop::default()),
        (fib(12), T, Stop::default()),
        (
            request("fixtures", "always_fail", frame(&[])),
            T,
            Stop::default(),
        ),
        (fib(13), T, Stop::default()),
    ];
    let (out, restarts) = run(&mut s, &tasks);
    assert_eq!(fib_of(&out[0]), 55);
    assert_eq!(fib_of(&out[1]), 89);
    assert_eq!(
        outputs::<(f64, f64)>(&out[2].as_ref().unwrap().outputs),
        vec![(0.0, 0.0)]
    );
    assert_eq!(fib_of(&out[3]), 144);
    assert_eq!(out[4].as_ref().unwrap_err().kind(), FailureKind::TaskError);
    assert_eq!(fib_of(&out[5]), 233);
    assert_eq!(restarts, 0, "a task's own error keeps its executor");
}
