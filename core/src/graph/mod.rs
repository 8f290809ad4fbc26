//! Task graphs: the typed DAG a job runs, its JSON and compact forms and its validation rules. The format is
//! documented for users in `docs/task-graph.md`.

mod build;
mod check;
mod compact;
mod job_graph;
mod model;
mod types;

pub use build::JobGraphBuilder;
pub use check::check_value;
pub use job_graph::{Edge, JobGraph};
pub use model::{
    GraphError, Location, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, Policy, SCHEMA_VERSION, Source,
    TaskGraph, TaskSpec, TerminationSpec,
};
pub use types::TypeDesc;

#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod tests;
