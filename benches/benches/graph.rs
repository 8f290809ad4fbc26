//! What submitting a large graph costs before any task runs: the layered graph of the e2e bench
//! (10 layers × 1 000 tasks, fan-in 25) parsed from JSON, put in compact form and encoded (the
//! client's side), and decoded, validated and built into storage's in-memory form from the
//! compact bytes (storage's side), with the size of each form.
//!
//! `cargo bench -p silk-benches --bench graph`.

use criterion::{Criterion, criterion_group, criterion_main};
use prost::Message as _;
use silk_benches::layered::graph_json;
use silk_core::graph::{JobGraph, TaskGraph};
use silk_proto::storage::CompactTaskGraph;

fn bench(c: &mut Criterion) {
    let json = graph_json(10, 1000);
    let graph = TaskGraph::from_json(&json).expect("valid graph");
    let bytes = graph.to_compact().encode_to_vec();
    println!(
        "graph of {} tasks: JSON {} bytes, compact {} bytes",
        graph.tasks.len(),
        json.len(),
        bytes.len()
    );
    let mut group = c.benchmark_group("graph_10k_tasks");
    group.sample_size(10);
    group.bench_function("from_json", |b| {
        b.iter(|| TaskGraph::from_json(&json).expect("valid"));
    });
    group.bench_function("to_compact_and_encode", |b| {
        b.iter(|| graph.to_compact().encode_to_vec());
    });
    group.bench_function("decode_and_from_compact", |b| {
        b.iter(|| {
            let wire = CompactTaskGraph::decode(bytes.as_slice()).expect("decodes");
            JobGraph::from_compact(&wire).expect("valid")
        });
    });
    group.bench_function("validate", |b| {
        b.iter(|| graph.validate().expect("valid"));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
