//! Task outputs and storage memory: outputs past `output_memory_budget_bytes`, and outputs no
//! unfinished child reads any more, leave memory and are read back from the database — children
//! (retried ones too), the job outputs and a restarted storage see exactly the bytes produced.

use silk_core::JobState;
use silk_core::ids::ExecutionManagerId;
use silk_runtime::storage::db::Db;
use silk_runtime::storage::{Storage, StorageConfig};
use silk_tdl::{JobId, TaskId};

use crate::harness::{bin, config, framed, setup_with, submit};

/// A → (B, C) → D, every value `size` bytes; B fails once before it succeeds.
const DIAMOND: &str = r#"{"schema_version": "1.0", "tasks": [
    {"package": "t", "function": "a", "inputs": ["bytes"], "outputs": ["bytes", "bytes"]},
    {"package": "t", "function": "b", "inputs": ["bytes"], "outputs": ["bytes"],
     "sources": [{"task": 0, "output": 0}], "policy": {"max_retries": 1}},
    {"package": "t", "function": "c", "inputs": ["bytes"], "outputs": ["bytes"],
     "sources": [{"task": 0, "output": 1}]},
    {"package": "t", "function": "d", "inputs": ["bytes", "bytes"], "outputs": ["bytes"],
     "sources": [{"task": 1, "output": 0}, {"task": 2, "output": 0}]}]}"#;

fn value(tag: u8, size: usize) -> Vec<u8> {
    bin(&vec![tag; size])
}

/// Registers `task`, checks its inputs, then reports `outputs` (or a
/// failure when `None`).
async fn run<D: Db + Clone>(
    (storage, em): (&Storage<D>, ExecutionManagerId),
    job: JobId,
    task: u64,
    inputs: &[Vec<u8>],
    outputs: Option<&[Vec<u8>]>,
) {
    let s = storage.session();
    let ctx = storage
        .register_instance(s, job, TaskId::Index(task), em)
        .await
        .unwrap();
    assert_eq!(ctx.inputs, framed(inputs), "inputs of task {task}");
    match outputs {
        Some(o) => storage
            .report_success(s, job, TaskId::Index(task), ctx.instance, framed(o))
            .await
            .unwrap(),
        None => storage
            .report_failure(
                s,
                job,
                TaskId::Index(task),
                ctx.instance,
                silk_ipc::FailureKind::TaskError,
                "once",
            )
            .await
            .unwrap(),
    }
}

async fn diamond<D: Db + Clone>(db: D, budget: u64, size: usize) {
    let config = StorageConfig {
        output_memory_budget_bytes: budget,
        ..config()
    };
    let (storage, group, em) = setup_with(db, config).await;
    let at = (&storage, em);
    let (x, a0, a1, b, c, d) = (
        value(1, size),
        value(2, size),
        value(3, size),
        value(4, size),
        value(5, size),
        value(6, size),
    );
    let job = submit(&storage, group, DIAMOND, &framed(std::slice::from_ref(&x))).await;
    run(at, job, 0, &[x], Some(&[a0.clone(), a1.clone()])).await;
    let held_after_a = storage.held_output_bytes();
    run(at, job, 1, std::slice::from_ref(&a0), None).await;
    run(
        at,
        job,
        1,
        std::slice::from_ref(&a0),
        Some(std::slice::from_ref(&b)),
    )
    .await;
    run(at, job, 2, &[a1], Some(std::slice::from_ref(&c))).await;
    // Both children of A succeeded: A's outputs left memory.
    assert!(
        storage.held_output_bytes() < held_after_a + size as u64,
        "A's outputs are no longer held"
    );
    run(at, job, 3, &[b, c], Some(std::slice::from_ref(&d))).await;
    assert_eq!(storage.job_state(job).await.unwrap(), JobState::Succeeded);
    assert_eq!(storage.job_outputs(job).await.unwrap(), framed(&[d]));
    assert_eq!(
        storage.held_output_bytes(),
        0,
        "a finished job holds nothing"
    );
    storage.shutdown().await;
}

/// Every output over the budget: each input is read back from the database.
pub async fn outputs_over_budget_are_read_back<D: Db + Clone>(db: D) {
    diamond(db, 1 << 10, 100 << 10).await;
}

/// Every output fits: held only while a child still reads it.
pub async fn outputs_leave_memory_once_read<D: Db + Clone>(db: D) {
    diamond(db, 64 << 20, 100 << 10).await;
}

/// A job outputs frame larger than one page (almost 4 MiB) is read whole.
pub async fn large_job_outputs_are_paged<D: Db + Clone>(db: D) {
    let (storage, group, em) = setup_with(db, config()).await;
    let graph = r#"{"schema_version": "1.0", "tasks": [
        {"package": "t", "function": "a", "inputs": ["bytes"], "outputs": ["bytes", "bytes"]}]}"#;
    let x = value(1, 8);
    let job = submit(&storage, group, graph, &framed(std::slice::from_ref(&x))).await;
    let ctx = storage
        .register_instance(storage.session(), job, TaskId::Index(0), em)
        .await
        .unwrap();
    let outputs = [value(7, 3 << 20), value(8, 3 << 20)];
    storage
        .report_success(
            storage.session(),
            job,
            TaskId::Index(0),
            ctx.instance,
            framed(&outputs),
        )
        .await
        .unwrap();
    let frame = storage.job_outputs(job).await.unwrap();
    assert_eq!(frame, framed(&outputs));
    let (total, first) = storage.job_outputs_page(job, 0).await.unwrap();
    assert_eq!(total, frame.len() as u64);
    assert_eq!(
        first.len() as u64,
        silk_runtime::storage::OUTPUTS_PAGE_BYTES
    );
    let past = storage.job_outputs_page(job, total + 1).await.unwrap_err();
    assert!(past.to_string().contains("past the end"), "{past}");
    storage.shutdown().await;
}
