//! The compact form: every graph round-trips exactly, and a malformed message is refused with a
//! reason instead of a panic or an allocation past its own size.

use silk_proto::storage as pb;

use super::compact::{decode, encode};
use super::tests::{graph, reference, t};
use super::*;

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
    assert_eq!(TaskGraph::from_compact(&wire).unwrap(), g);
    assert_eq!(wire.names, ["pkg", "f", "other_pkg"], "names stored once");
    assert_eq!(wire.policies.len(), 3, "policies stored once");
    // An invalid graph round-trips as it is, so storage's validation names the same fault.
    let mut bad = reference();
    bad.tasks[2].sources = Some(Vec::new());
    bad.tasks[3].sources = Some(vec![Source { task: 7, output: 9 }]);
    assert_eq!(decode(&encode(&bad)).unwrap(), bad);
    assert_eq!(
        TaskGraph::from_compact(&encode(&bad)).unwrap_err(),
        bad.validate().unwrap_err()
    );
}

#[test]
fn a_layered_graph_is_a_fraction_of_its_json() {
    // The shape of the end-to-end bench: each task reads 25 outputs of the layer before.
    let (layers, width) = (4, 200);
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
    let g = graph(tasks);
    g.validate().unwrap();
    let json = serde_json::to_string(&g).unwrap().len();
    let compact = prost::Message::encoded_len(&g.to_compact());
    assert!(compact * 6 < json, "compact {compact} B, JSON {json} B");
    assert_eq!(TaskGraph::from_compact(&g.to_compact()).unwrap(), g);
}

fn refused(wire: &pb::CompactTaskGraph) -> String {
    let e = TaskGraph::from_compact(wire).expect_err("malformed message accepted");
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
