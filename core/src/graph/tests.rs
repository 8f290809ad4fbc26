//! Validation rules of task graphs, each reject naming its task and input.

use super::*;

pub(super) fn t(
    inputs: Vec<TypeDesc>,
    outputs: Vec<TypeDesc>,
    sources: Option<Vec<(usize, usize)>>,
) -> TaskSpec {
    TaskSpec {
        package: "pkg".into(),
        function: "f".into(),
        inputs,
        outputs,
        sources: sources.map(|s| {
            s.into_iter()
                .map(|(task, output)| Source { task, output })
                .collect()
        }),
        policy: Policy::default(),
    }
}

pub(super) fn graph(tasks: Vec<TaskSpec>) -> TaskGraph {
    TaskGraph {
        schema_version: SCHEMA_VERSION.into(),
        tasks,
        commit: None,
        cleanup: None,
    }
}

use TypeDesc::{Int64, String as Str};

/// A 10-task reference graph: two input tasks, fan-out, a diamond, a chain, a dangling output.
pub(super) fn reference() -> TaskGraph {
    graph(vec![
        t(vec![Int64, Int64], vec![Int64, Int64], None), // 0: input task, two job inputs
        t(vec![Str], vec![Str], None),                   // 1: input task, one job input
        t(vec![Int64], vec![Int64], Some(vec![(0, 0)])), // 2
        t(vec![Int64], vec![Int64], Some(vec![(0, 1)])), // 3
        t(
            vec![Int64, Int64],
            vec![Int64, Str],
            Some(vec![(2, 0), (3, 0)]),
        ), // 4: diamond join, output 1 dangles
        t(vec![Str], vec![Str], Some(vec![(1, 0)])),     // 5
        t(vec![Int64, Str], vec![Int64], Some(vec![(4, 0), (5, 0)])), // 6
        t(vec![Int64], vec![Int64], Some(vec![(6, 0)])), // 7: output
        t(vec![Int64, Int64], vec![Int64], Some(vec![(6, 0), (6, 0)])), // 8: same output twice; output
        t(vec![], vec![Bool()], None), // 9: zero-input input task; output
    ])
}

#[expect(non_snake_case, reason = "reads like the type name")]
fn Bool() -> TypeDesc {
    TypeDesc::Bool
}

#[test]
fn reference_graph_is_valid_with_derived_inputs_outputs_children() {
    let g = reference();
    g.validate().unwrap();
    assert_eq!(g.job_inputs(), vec![(0, 0), (0, 1), (1, 0)]);
    assert_eq!(
        g.job_outputs(),
        vec![(7, 0), (8, 0), (9, 0)],
        "task 4's dangling output is not a job output"
    );
    let children = g.children();
    assert_eq!(children[0], vec![2, 3]);
    assert_eq!(children[6], vec![7, 8], "deduplicated and ascending");
    assert!(children[9].is_empty());
}

#[test]
fn json_round_trip_and_docs_example() {
    let g = reference();
    let text = serde_json::to_string_pretty(&g).unwrap();
    assert_eq!(TaskGraph::from_json(&text).unwrap(), g);
    let doc = TaskGraph::from_json(include_str!("../../../docs/examples/diamond.json")).unwrap();
    assert_eq!(doc.job_inputs().len(), 4);
    assert_eq!(doc.job_outputs(), vec![(2, 0)]);
    assert_eq!(doc.tasks[2].policy.max_retries, 2);
    assert_eq!(doc.tasks[0].policy, Policy::default());
}

fn reject(g: &TaskGraph) -> GraphError {
    g.validate().expect_err("graph should be rejected")
}

#[test]
fn rejects_name_the_task_and_input() {
    let mut g = reference();
    g.tasks[4].sources = Some(vec![Source { task: 2, output: 0 }]);
    let e = reject(&g);
    assert_eq!(e.location, Location::Task(4));
    assert!(e.reason.contains("2 inputs but 1 sources"), "{e}");

    let mut g = reference();
    g.tasks[2].sources = Some(vec![Source { task: 5, output: 0 }]);
    let e = reject(&g);
    assert_eq!(e.location, Location::Input { task: 2, input: 0 });
    assert!(e.reason.contains("not listed before"), "{e}");

    let mut g = reference();
    g.tasks[2].sources = Some(vec![Source { task: 2, output: 0 }]);
    assert!(reject(&g).reason.contains("not listed before"));

    let mut g = reference();
    g.tasks[7].sources = Some(vec![Source { task: 6, output: 3 }]);
    let e = reject(&g);
    assert_eq!(e.location, Location::Input { task: 7, input: 0 });
    assert!(e.reason.contains("has no output 3"), "{e}");

    let mut g = reference();
    g.tasks[6].inputs[1] = Int64;
    let e = reject(&g);
    assert_eq!(e.location, Location::Input { task: 6, input: 1 });
    assert_eq!(
        e.to_string(),
        "invalid task graph: task 6, input 1: type int64 does not match task 5 output 0 of type string"
    );

    let mut g = reference();
    g.tasks[3].sources = Some(vec![]);
    assert!(reject(&g).reason.contains("leave it out"));
}

#[test]
fn rejects_bad_policies_and_names() {
    type Mutation = Box<dyn Fn(&mut TaskGraph)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|g| g.tasks[1].policy.max_instances = 0),
            "max_instances",
        ),
        (
            Box::new(|g| g.tasks[1].policy.soft_timeout_ms = 300_000),
            "must be less than",
        ),
        (
            Box::new(|g| g.tasks[1].policy.soft_timeout_ms = 99),
            "outside",
        ),
        (
            Box::new(|g| g.tasks[1].policy.hard_timeout_ms = MAX_TIMEOUT_MS + 1),
            "outside",
        ),
        (
            Box::new(|g| g.tasks[1].package = "../x".into()),
            "package name",
        ),
        (
            Box::new(|g| g.tasks[1].function = String::new()),
            "function name is empty",
        ),
        (
            Box::new(|g| {
                g.tasks[1].outputs[0] = TypeDesc::Map {
                    key: Box::new(TypeDesc::Float32),
                    value: Box::new(Int64),
                }
            }),
            "map key type",
        ),
    ];
    for (mutate, expect) in cases {
        let mut g = reference();
        mutate(&mut g);
        let e = reject(&g);
        assert!(e.reason.contains(expect), "expected {expect:?}: {e}");
        assert!(
            matches!(
                e.location,
                Location::Task(1) | Location::Output { task: 1, .. }
            ),
            "{e}"
        );
    }
    let mut g = reference();
    g.commit = Some(TerminationSpec {
        package: "pkg".into(),
        function: String::new(),
        policy: Policy::default(),
    });
    assert_eq!(reject(&g).location, Location::Commit);
    let mut g = reference();
    g.tasks.clear();
    assert!(reject(&g).reason.contains("at least one task"));
}

#[test]
fn json_errors_are_clear() {
    let e =
        TaskGraph::from_json(r#"{"schema_version": "2.0", "tasks": "not checked"}"#).unwrap_err();
    assert!(e.reason.contains("incompatible schema_version"), "{e}");
    let e = TaskGraph::from_json(r#"{"tasks": []}"#).unwrap_err();
    assert!(e.reason.contains("missing field `schema_version`"), "{e}");
    let e =
        TaskGraph::from_json(r#"{"schema_version": "1.0", "tasks": [], "extra": 1}"#).unwrap_err();
    assert!(e.reason.contains("unknown field `extra`"), "{e}");
    let e = TaskGraph::from_json(r#"{"schema_version": "1.0"}"#).unwrap_err();
    assert!(e.reason.contains("missing field `tasks`"), "{e}");
    let e = TaskGraph::from_json("{").unwrap_err();
    assert_eq!(e.location, Location::Graph);
}
