//! Task graphs: the typed DAG a job runs, its JSON and compact forms and its validation rules. The format is
//! documented for users in `docs/task-graph.md`.

mod check;
mod compact;
mod model;
mod types;

pub use check::check_value;
pub use model::{
    GraphError, Location, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, Policy, SCHEMA_VERSION, Source,
    TaskGraph, TaskSpec, TerminationSpec,
};
pub use types::TypeDesc;

#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod tests;
