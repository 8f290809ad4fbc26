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
