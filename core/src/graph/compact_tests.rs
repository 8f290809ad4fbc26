//! The compact form and the job graph built from it: every graph round-trips exactly, in one
//! chunk or many, and a malformed message is refused with a reason instead of a panic or an
//! allocation past its own size.

use prost::Message as _;
use silk_proto::storage as pb;

use super::tests::{graph, reference, t};
use super::*;

/// Builds a job graph from `chunks` as storage does.
fn build(chunks: &[pb::CompactTaskGraph]) -> Result<JobGraph, GraphError> {
    let mut builder = JobGraphBuilder::new();
    for c in chunks {
        builder.push(c, c.encoded_len() as u64)?;
    }
    builder.finish()
}

/// The reference graph with commit and cleanup tasks, nested types and several policies.
fn rich() -> TaskGraph {
    let mut g = reference();
    g.tasks[3].policy.max_retries = 4;
    g.tasks[5].policy.hard_timeout_ms = 200_000;
    g.tasks[9].outputs = vec![TypeDesc::Map {
        key: Box::new(TypeDesc::String),
        value: Box::new(TypeDesc::List(Box::new(TypeDesc::Struct("Point".into())))),
    }];
    g.tasks[9].package = "other_pkg".into();
    g.commit = Some(TerminationSpec {
        package: "pkg".into(),
        function: "commit".into(),
        policy: Policy {
            max_retries: 2,
            ..Policy::default()
        },
    });
    g.cleanup = Some(TerminationSpec {
        package: "pkg".into(),
        function: "cleanup".into(),
        policy: Policy::default(),
    });
    g
}

#[test]
fn graphs_round_trip_exactly() {
    let g = rich();
    let wire = g.to_compact();
    assert_eq!(JobGraph::from_compact(&wire).unwrap().to_task_graph(), g);
    assert_eq!(wire.names, ["pkg", "f", "other_pkg"], "names stored once");
    assert_eq!(wire.policies.len(), 3, "policies stored once");
    // An invalid graph is encoded as it is, so storage's validation names the same fault.
    let mut bad = reference();
    bad.tasks[3].sources = Some(vec![Source { task: 7, output: 9 }]);
    assert_eq!(
        JobGraph::from_compact(&bad.to_compact()).unwrap_err(),
        bad.validate().unwrap_err()
    );
    assert_eq!(
        bad.validate().unwrap_err().location,
        Location::Input { task: 3, input: 0 }
    );
}

fn layered(layers: usize, width: usize) -> TaskGraph {
    let mut tasks = vec![t(vec![], vec![TypeDesc::Int64], None); width];
    for layer in 1..layers {
        for i in 0..width {
            let sources = (0..25)
                .map(|k| ((layer - 1) * width + (i + k) % width, 0))
                .collect();
            tasks.push(t(
                vec![TypeDesc::Int64; 25],
                vec![TypeDesc::Int64],
                Some(sources),
            ));
        }
    }
    graph(tasks)
}

#[test]
fn a_layered_graph_is_a_fraction_of_its_json() {
    // The shape of the end-to-end bench: each task reads 25 outputs of the layer before.
    let g = layered(4, 200);
    g.validate().unwrap();
    let json = serde_json::to_string(&g).unwrap().len();
    let compact = g.to_compact().encoded_len();
    assert!(compact * 6 < json, "compact {compact} B, JSON {json} B");
    assert_eq!(
        JobGraph::from_compact(&g.to_compact())
            .unwrap()
            .to_task_graph(),
        g
    );
}

#[test]
fn chunks_rebuild_the_same_graph() {
    let mut g = layered(6, 300);
    g.commit = rich().commit;
    g.cleanup = rich().cleanup;
    g.tasks[1000].policy.max_retries = 3;
    let whole = JobGraph::from_compact(&g.to_compact()).unwrap();
    let chunks = g.to_compact_chunks(4096);
    assert!(chunks.len() > 10, "{} chunks", chunks.len());
    for c in &chunks {
        assert!(
            c.encoded_len() < 3 * 4096,
            "a chunk of {} B",
            c.encoded_len()
        );
    }
    let rebuilt = build(&chunks).unwrap();
    assert_eq!(rebuilt, whole);
    assert_eq!(rebuilt.to_task_graph(), g);
    // Task 0 is read by task 300 (its first input) and by tasks 576..600 (wrapping around).
    let expected: Vec<u32> = std::iter::once(300).chain(576..600).collect();
    assert_eq!(rebuilt.children(0), expected);
}

#[test]
fn a_later_chunk_faults_by_its_index_in_the_whole_graph() {
    let mut g = layered(4, 200);
    g.tasks[650].inputs[3] = TypeDesc::String;
    let chunks = g.to_compact_chunks(2048);
    assert!(chunks.len() > 3);
    let e = build(&chunks).unwrap_err();
    assert_eq!(e, g.validate().unwrap_err());
    assert_eq!(
        e.location,
        Location::Input {
            task: 650,
            input: 3
        }
    );
    let mut late_commit = chunks.clone();
    late_commit[2].commit = rich().commit.as_ref().map(|c| pb::TerminationTask {
        package: c.package.clone(),
        function: c.function.clone(),
        policy: None,
    });
    assert!(
        build(&late_commit)
            .unwrap_err()
            .reason
            .contains("only the first chunk")
    );
}

#[test]
fn a_pending_task_of_the_bench_shape_takes_a_few_hundred_bytes() {
    // 25 inputs each: the sources (8 B each) and children (4 B each) dominate.
    let g = JobGraph::from_task_graph(&layered(10, 1000)).unwrap();
    let per_task = g.heap_bytes() / g.len();
    assert!(per_task <= 330, "{per_task} B per task");
}

fn refused(wire: &pb::CompactTaskGraph) -> String {
    let e = JobGraph::from_compact(wire).expect_err("malformed message accepted");
    assert_eq!(e.location, Location::Graph);
    e.reason
}

/// A change that breaks a compact message.
type Corruption = Box<dyn Fn(&mut pb::CompactTaskGraph)>;

#[test]
fn malformed_messages_are_refused_with_a_reason() {
    let good = rich().to_compact();
    let cases: Vec<(&str, Corruption)> = vec![
        (
            "`function` has 9 entries for 10 tasks",
            Box::new(|w| w.function.truncate(w.function.len() - 1)),
        ),
        (
            "refers to name 7, but there are 3",
            Box::new(|w| w.package[4] = 7),
        ),
        ("refers to type 99", Box::new(|w| w.input_types[0] = 99)),
        ("refers to policy 5", Box::new(|w| w.policy[0] = 5)),
        (
            "needs 4000000000 entries of `input_types`",
            Box::new(|w| w.input_count[0] = 4_000_000_000),
        ),
        (
            "`output_types` has 13 entries but the tasks use 12",
            Box::new(|w| w.output_types.push(0)),
        ),
        (
            "lies 5 tasks back, before the first task",
            Box::new(|w| w.source_distance[0] = 5),
        ),
        (
            "source distances but",
            Box::new(|w| w.source_output.truncate(w.source_output.len() - 1)),
        ),
        (
            "needs 1 entries of `source_distance`",
            Box::new(|w| {
                let last = w.source_count.len() - 1;
                w.source_count[last] = 2;
            }),
        ),
        (
            "type 0 \"int65\": unknown variant",
            Box::new(|w| w.types[0] = "\"int65\"".into()),
        ),
        (
            "incompatible schema_version \"2.0\"",
            Box::new(|w| w.schema_version = "2.0".into()),
        ),
    ];
    for (expected, corrupt) in cases {
        let mut wire = good.clone();
        corrupt(&mut wire);
        let reason = refused(&wire);
        assert!(reason.contains(expected), "{expected:?} not in {reason:?}");
    }
}

#[test]
fn an_empty_message_is_an_empty_graph() {
    let wire = pb::CompactTaskGraph {
        schema_version: SCHEMA_VERSION.into(),
        ..pb::CompactTaskGraph::default()
    };
    assert!(refused(&wire).contains("at least one task"));
}
