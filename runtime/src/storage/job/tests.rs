//! Unit tests of one job's control block: the diamond graph with exact inputs, instance limits,
//! retries, termination tasks and invalid outputs.

use silk_ipc::FailureKind;
use silk_tdl::{JobId, ResourceGroupId, TaskId, TaskInstanceId, frame};

use super::{FailOutcome, JobControl};
use crate::storage::error::{Error, Stale};
use crate::storage::task_state::TaskState;
use silk_core::JobState;
use silk_core::graph::{JobGraph, TaskGraph};

const BYTES: &str = r#""bytes""#;

fn diamond() -> TaskGraph {
    let json = format!(
        r#"{{"schema_version": "1.0", "tasks": [
            {{"package": "t", "function": "a", "inputs": [{BYTES}, {BYTES}], "outputs": [{BYTES}, {BYTES}]}},
            {{"package": "t", "function": "b", "inputs": [{BYTES}, {BYTES}], "outputs": [{BYTES}],
              "sources": [{{"task": 0, "output": 0}}, {{"task": 0, "output": 1}}]}},
            {{"package": "t", "function": "c", "inputs": [{BYTES}, {BYTES}], "outputs": [{BYTES}],
              "sources": [{{"task": 0, "output": 0}}, {{"task": 0, "output": 1}}]}},
            {{"package": "t", "function": "d", "inputs": [{BYTES}, {BYTES}], "outputs": [{BYTES}],
              "sources": [{{"task": 1, "output": 0}}, {{"task": 2, "output": 0}}]}}
        ],
        "commit": {{"package": "t", "function": "commit"}},
        "cleanup": {{"package": "t", "function": "cleanup"}}}}"#
    );
    TaskGraph::from_json(&json).unwrap()
}

/// `v` as one MessagePack bin value.
fn bin(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &rmpv::Value::Binary(v.to_vec())).unwrap();
    out
}

fn frame_of(values: &[Vec<u8>]) -> Vec<u8> {
    frame::encode(values).unwrap()
}

fn job(graph: TaskGraph, inputs: &[Vec<u8>]) -> JobControl {
    let mut c = JobControl::new(
        JobId(1),
        ResourceGroupId(1),
        JobGraph::from_task_graph(&graph).unwrap(),
        &frame_of(inputs),
        JobState::Ready,
    )
    .unwrap();
    c.set_state(JobState::Running, None, 0);
    c
}

/// Runs `task` to success with `outputs`, returning the inputs it was given and the children
/// it released.
fn run(
    c: &mut JobControl,
    task: u64,
    instance: u64,
    outputs: &[Vec<u8>],
) -> (Vec<Vec<u8>>, Vec<TaskId>) {
    let t = TaskId::Index(task);
    let ctx = c.register(t, TaskInstanceId(instance)).unwrap();
    let inputs = frame::decode(&ctx.inputs)
        .unwrap()
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    let frame = frame_of(outputs);
    let values = c
        .check_success(t, TaskInstanceId(instance), &frame)
        .unwrap()
        .unwrap();
    c.succeed(t, TaskInstanceId(instance), values).unwrap();
    (inputs, c.release_children(usize::try_from(task).unwrap()))
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

#[test]
fn diamond_hands_out_exact_inputs() {
    let (a, b) = (vec![1, 2, 3, 4], vec![9, 8, 7, 6]);
    let mut c = job(diamond(), &[bin(&a), bin(&b)]);
    assert_eq!(c.ready_tasks(), [TaskId::Index(0)]);
    // A: (b^a^b, a^b^a) = (a, b); B: in0^in1^in0 = in1; C: in1^in0^in1 = in0; D: in0^in1.
    let (inputs, ready) = run(&mut c, 0, 1, &[bin(&a), bin(&b)]);
    assert_eq!(inputs, [bin(&a), bin(&b)]);
    assert_eq!(ready, [TaskId::Index(1), TaskId::Index(2)]);
    let (inputs, ready) = run(&mut c, 1, 2, &[bin(&b)]);
    assert_eq!(inputs, [bin(&a), bin(&b)]);
    assert!(ready.is_empty());
    let (inputs, ready) = run(&mut c, 2, 3, &[bin(&a)]);
    assert_eq!(inputs, [bin(&a), bin(&b)]);
    assert_eq!(ready, [TaskId::Index(3)]);
    let (inputs, ready) = run(&mut c, 3, 4, &[bin(&xor(&b, &a))]);
    assert_eq!(inputs, [bin(&b), bin(&a)]);
    assert!(ready.is_empty());
    assert!(c.all_tasks_persisted());
    assert_eq!(
        c.collect_outputs().unwrap(),
        Ok(frame_of(&[bin(&xor(&a, &b))]))
    );
}

#[test]
fn commit_gets_job_outputs_and_cleanup_an_empty_frame() {
    let mut c = job(diamond(), &[bin(&[1]), bin(&[2])]);
    c.set_state(JobState::CommitReady, Some(frame_of(&[bin(&[3])])), 0);
    assert_eq!(c.ready_tasks(), [TaskId::Commit]);
    assert_eq!(
        c.progress().cancelled,
        4,
        "unfinished tasks end with the phase"
    );
    let ctx = c.register(TaskId::Commit, TaskInstanceId(1)).unwrap();
    assert_eq!(ctx.inputs, [0, 0, 0, 0]);
    assert_eq!(ctx.job_outputs, Some(frame_of(&[bin(&[3])])));
    assert_eq!(ctx.function, "commit");
    let stale = c.register(TaskId::Index(0), TaskInstanceId(2)).unwrap_err();
    assert!(matches!(
        stale,
        Error::Stale(Stale::JobNotRunning {
            state: JobState::CommitReady,
            ..
        })
    ));

    c.set_state(JobState::CleanupReady, None, 0);
    assert_eq!(c.ready_tasks(), [TaskId::Cleanup]);
    let ctx = c.register(TaskId::Cleanup, TaskInstanceId(3)).unwrap();
    assert_eq!(ctx.inputs, [0, 0, 0, 0], "an empty frame, not empty bytes");
    assert_eq!(ctx.job_outputs, None);
}

/// A job that ends keeps only its state and counts; late reports about its tasks are stale,
/// not errors, and releasing a late-persisted task's children does nothing.
#[test]
fn an_ended_job_sheds_its_graph_and_tasks() {
    let mut c = job(diamond(), &[bin(&[1]), bin(&[2])]);
    let ctx = c.register(TaskId::Index(0), TaskInstanceId(1)).unwrap();
    let running = c.heap_bytes();
    c.set_state(JobState::Cancelled, None, 5);
    assert!(
        c.heap_bytes() * 4 < running,
        "{} of {running} B kept",
        c.heap_bytes()
    );
    assert_eq!((c.progress().cancelled, c.progress().total), (4, 4));
    assert_eq!(c.ended_at_ms(), Some(5));
    for stale in [
        c.register(TaskId::Index(1), TaskInstanceId(2)).map(drop),
        c.registered_again(TaskId::Index(0), ctx.instance).map(drop),
        c.check_success(TaskId::Index(0), ctx.instance, &frame_of(&[]))
            .map(drop),
        c.fail(
            TaskId::Index(0),
            ctx.instance,
            FailureKind::TaskError,
            "late",
        )
        .map(drop),
    ] {
        assert!(
            matches!(stale, Err(Error::Stale(Stale::JobNotRunning { .. }))),
            "{stale:?}"
        );
    }
    assert!(c.release_children(0).is_empty());
    assert!(!c.force_remove(TaskId::Index(0), ctx.instance));
    assert!(!c.revert_success(0));
    assert!(c.ready_tasks().is_empty());
}

fn flat(policy: &str) -> TaskGraph {
    let json = format!(
        r#"{{"schema_version": "1.0", "tasks": [{{"package": "t", "function": "f", "inputs": [{BYTES}],
            "outputs": [{BYTES}], "policy": {policy}}}]}}"#
    );
    TaskGraph::from_json(&json).unwrap()
}

#[test]
fn instance_limit_and_terminated_task() {
    let mut c = job(flat(r#"{"max_instances": 2}"#), &[bin(&[0])]);
    let t = TaskId::Index(0);
    c.register(t, TaskInstanceId(1)).unwrap();
    c.register(t, TaskInstanceId(2)).unwrap();
    let e = c.register(t, TaskInstanceId(3)).unwrap_err();
    assert!(
        matches!(e, Error::Stale(Stale::InstanceLimit { max: 2, .. })),
        "{e}"
    );
    let values = c
        .check_success(t, TaskInstanceId(2), &frame_of(&[bin(&[1])]))
        .unwrap()
        .unwrap();
    c.succeed(t, TaskInstanceId(2), values).unwrap();
    let e = c.register(t, TaskInstanceId(4)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Stale(Stale::TaskTerminated {
                state: TaskState::Succeeded,
                ..
            })
        ),
        "{e}"
    );
    let e = c
        .check_success(t, TaskInstanceId(1), &frame_of(&[bin(&[1])]))
        .unwrap_err();
    assert!(
        matches!(e, Error::Stale(Stale::TaskTerminated { .. })),
        "{e}"
    );
    let e = c.register(TaskId::Index(5), TaskInstanceId(9)).unwrap_err();
    assert!(matches!(e, Error::NoSuchTask { .. }), "{e}");
}

#[test]
fn retries_then_failure_with_readable_error() {
    let mut c = job(
        flat(r#"{"max_retries": 1, "max_instances": 2}"#),
        &[bin(&[0])],
    );
    let t = TaskId::Index(0);
    c.register(t, TaskInstanceId(1)).unwrap();
    assert_eq!(
        c.fail(t, TaskInstanceId(1), FailureKind::Panicked, "boom")
            .unwrap(),
        FailOutcome::Retry
    );
    assert_eq!(c.ready_tasks(), [t]);
    let e = c
        .fail(t, TaskInstanceId(1), FailureKind::Panicked, "again")
        .unwrap_err();
    assert!(
        matches!(e, Error::Stale(Stale::UnknownInstance { .. })),
        "{e}"
    );
    c.register(t, TaskInstanceId(2)).unwrap();
    let FailOutcome::Exhausted(err) = c
        .fail(
            t,
            TaskInstanceId(2),
            FailureKind::Timeout,
            "hard timeout (5 ms) exceeded",
        )
        .unwrap()
    else {
        panic!("no retry left");
    };
    assert_eq!(err.kind, FailureKind::Timeout);
    assert_eq!(
        err.message,
        "task 0 (t::f) failed after 2 attempt(s) [Timeout]: hard timeout (5 ms) exceeded"
    );
}

#[test]
fn an_output_too_large_spends_no_retries() {
    let mut c = job(flat(r#"{"max_retries": 3}"#), &[bin(&[0])]);
    let t = TaskId::Index(0);
    c.register(t, TaskInstanceId(1)).unwrap();
    let outcome = c
        .fail(t, TaskInstanceId(1), FailureKind::OutputTooLarge, "too big")
        .unwrap();
    let FailOutcome::Exhausted(err) = outcome else {
        panic!("the same task returns the same bytes: no retry");
    };
    assert_eq!(err.kind, FailureKind::OutputTooLarge);
    assert!(
        err.message.contains("after 1 attempt(s)"),
        "{}",
        err.message
    );
}

#[test]
fn invalid_outputs_are_reported_not_fatal() {
    let mut c = job(flat("{}"), &[bin(&[0])]);
    let t = TaskId::Index(0);
    c.register(t, TaskInstanceId(1)).unwrap();
    let two = frame_of(&[bin(&[1]), bin(&[2])]);
    let reason = c
        .check_success(t, TaskInstanceId(1), &two)
        .unwrap()
        .unwrap_err();
    assert_eq!(reason, "task returned 2 output(s), the graph declares 1");
    let reason = c
        .check_success(t, TaskInstanceId(1), &[1, 0])
        .unwrap()
        .unwrap_err();
    assert!(reason.starts_with("malformed outputs frame"), "{reason}");
    let not_msgpack = frame_of(&[vec![0xc4, 0x05, 1]]);
    let reason = c
        .check_success(t, TaskInstanceId(1), &not_msgpack)
        .unwrap()
        .unwrap_err();
    assert!(
        reason.starts_with("output 0 is not one MessagePack value: truncated"),
        "{reason}"
    );
    assert_eq!(c.progress().running, 1, "checking changes nothing");
}

#[test]
fn force_remove_readies_the_task_without_spending_a_retry() {
    let mut c = job(flat("{}"), &[bin(&[0])]);
    let t = TaskId::Index(0);
    c.register(t, TaskInstanceId(1)).unwrap();
    assert!(c.force_remove(t, TaskInstanceId(1)));
    assert!(!c.force_remove(t, TaskInstanceId(1)), "only once");
    let e = c
        .check_success(t, TaskInstanceId(1), &frame_of(&[bin(&[1])]))
        .unwrap_err();
    assert!(
        matches!(e, Error::Stale(Stale::UnknownInstance { .. })),
        "{e}"
    );
    c.register(t, TaskInstanceId(2)).unwrap();
    let FailOutcome::Exhausted(_) = c
        .fail(t, TaskInstanceId(2), FailureKind::TaskError, "x")
        .unwrap()
    else {
        panic!("max_retries 0: the first real failure is final");
    };
}

#[test]
fn inputs_frame_must_match_the_graph() {
    let e = JobControl::new(
        JobId(1),
        ResourceGroupId(1),
        JobGraph::from_task_graph(&flat("{}")).unwrap(),
        &frame_of(&[]),
        JobState::Ready,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid request: job inputs: expected 1 values, frame has 0"
    );
}

#[test]
fn losses_past_the_free_ones_spend_retries() {
    let mut c = job(flat(r#"{"max_retries": 1}"#), &[bin(&[0])]);
    let t = TaskId::Index(0);
    let mut outcomes = Vec::new();
    for i in 1..=3 {
        c.register(t, TaskInstanceId(i)).unwrap();
        outcomes.push(c.lose(t, TaskInstanceId(i), 1, "declared dead"));
        assert_eq!(c.lose(t, TaskInstanceId(i), 1, "again"), None, "only once");
    }
    // Loss 1 is free, loss 2 spends the one retry, loss 3 fails the task.
    assert_eq!(outcomes[0], Some(FailOutcome::Retry));
    assert_eq!(outcomes[1], Some(FailOutcome::Retry));
    let Some(FailOutcome::Exhausted(error)) = &outcomes[2] else {
        panic!("{outcomes:?}");
    };
    assert_eq!(error.kind, FailureKind::Crashed);
    assert!(
        error
            .message
            .contains("lost with its execution manager 3 time(s), the last: declared dead"),
        "{}",
        error.message
    );
    assert_eq!(c.progress().failed, 1);
}

/// What storage holds for each pending task of the bench's shape (25 inputs wired from the layer
/// before, one output), besides input and output values: the graph and the task's control.
#[test]
fn a_pending_task_costs_under_500_bytes() {
    let (layers, width) = (10, 1000);
    let mut tasks = Vec::new();
    for layer in 0..layers {
        for i in 0..width {
            tasks.push(if layer == 0 {
                r#"{"package":"p","function":"one","outputs":["int64"]}"#.to_owned()
            } else {
                let sources: Vec<String> = (0..25)
                    .map(|k| format!(r#"{{"task":{},"output":0}}"#, (layer - 1) * width + (i + k) % width))
                    .collect();
                format!(
                    r#"{{"package":"p","function":"sum","inputs":[{}],"outputs":["int64"],"sources":[{}]}}"#,
                    vec![r#""int64""#; 25].join(","),
                    sources.join(",")
                )
            });
        }
    }
    let json = format!(
        r#"{{"schema_version":"1.0","tasks":[{}]}}"#,
        tasks.join(",")
    );
    let graph = TaskGraph::from_json(&json).unwrap();
    let c = job(graph, &[]);
    let per_task = c.heap_bytes() / (layers * width);
    assert!(per_task <= 500, "{per_task} bytes per task");
}
