//! The graph shape of the end-to-end and graph benches (upstream's neural-network workload):
//! `layers` × `width` tasks of the `trivial` package. Layer 0 is `trivial::one`; task i of a later
//! layer is `trivial::sum25`, reading outputs i, i+1, … i+24 (modulo the width) of the layer
//! before, so a task of layer k outputs 25^k.

use std::fmt::Write as _;

/// Inputs of each task after the first layer.
pub const FAN_IN: usize = 25;

/// The graph as JSON (the file format users write).
#[must_use]
pub fn graph_json(layers: usize, width: usize) -> String {
    let mut out = String::with_capacity(layers * width * 400);
    out.push_str(r#"{"schema_version":"1.0","tasks":["#);
    for layer in 0..layers {
        for i in 0..width {
            if layer + i > 0 {
                out.push(',');
            }
            if layer == 0 {
                out.push_str(r#"{"package":"trivial","function":"one","outputs":["int64"]}"#);
                continue;
            }
            out.push_str(r#"{"package":"trivial","function":"sum25","inputs":["#);
            out.push_str(&vec![r#""int64""#; FAN_IN].join(","));
            out.push_str(r#"],"outputs":["int64"],"sources":["#);
            for k in 0..FAN_IN {
                if k > 0 {
                    out.push(',');
                }
                let source = (layer - 1) * width + (i + k) % width;
                let _ = write!(out, r#"{{"task":{source},"output":0}}"#);
            }
            out.push_str("]}");
        }
    }
    out.push_str("]}");
    out
}

/// The same graph built directly (no JSON text: a million-task graph's JSON is about a GB).
#[must_use]
pub fn graph(layers: usize, width: usize) -> silk_core::graph::TaskGraph {
    use silk_core::graph::{Policy, SCHEMA_VERSION, Source, TaskGraph, TaskSpec, TypeDesc};
    let task = |function: &str, inputs: usize, sources: Option<Vec<Source>>| TaskSpec {
        package: "trivial".into(),
        function: function.into(),
        inputs: vec![TypeDesc::Int64; inputs],
        outputs: vec![TypeDesc::Int64],
        sources,
        policy: Policy::default(),
    };
    let mut tasks = Vec::with_capacity(layers * width);
    for layer in 0..layers {
        for i in 0..width {
            tasks.push(if layer == 0 {
                task("one", 0, None)
            } else {
                let sources = (0..FAN_IN)
                    .map(|k| Source {
                        task: (layer - 1) * width + (i + k) % width,
                        output: 0,
                    })
                    .collect();
                task("sum25", FAN_IN, Some(sources))
            });
        }
    }
    TaskGraph {
        schema_version: SCHEMA_VERSION.into(),
        tasks,
        commit: None,
        cleanup: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn built_and_json_graphs_agree() {
        let json = silk_core::graph::TaskGraph::from_json(&super::graph_json(3, 30)).unwrap();
        assert_eq!(super::graph(3, 30), json);
    }
}
