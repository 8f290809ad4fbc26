//! The task graph as written by users (JSON) and its validation.
//!
//! Tasks are listed in topological order: a task's id is its index, and a task may only read
//! outputs of tasks listed before it. An *input task* (no `sources`) takes all its inputs from the
//! job's inputs; every other task names one source `(task, output)` per input, whose type must
//! equal the input's type exactly. Job outputs are the outputs of tasks that no task reads from.

use serde::{Deserialize, Serialize};

use super::types::TypeDesc;

/// The schema version this silk writes. It reads every `1.x`.
pub const SCHEMA_VERSION: &str = "1.0";
pub(super) const SCHEMA_MAJOR: &str = "1";

/// Shortest allowed timeout.
pub const MIN_TIMEOUT_MS: u64 = 100;
/// Longest allowed timeout (24 h).
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// A job's task graph, as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskGraph {
    /// Format version, `"1.0"`.
    pub schema_version: String,
    /// The tasks, in topological order.
    pub tasks: Vec<TaskSpec>,
    /// Runs after every task succeeded; sees the job outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<TerminationSpec>,
    /// Runs after the job is cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<TerminationSpec>,
}

/// One task of a graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// The package holding the function.
    pub package: String,
    /// The task's name in the package.
    pub function: String,
    /// Input types, in parameter order.
    #[serde(default)]
    pub inputs: Vec<TypeDesc>,
    /// Output types.
    #[serde(default)]
    pub outputs: Vec<TypeDesc>,
    /// Where each input comes from; absent for an input task (inputs from the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<Source>>,
    /// Retries, instances and timeouts.
    #[serde(default)]
    pub policy: Policy,
}

/// Output `output` of task `task`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Index of the producing task.
    pub task: usize,
    /// Position of the output in that task's outputs.
    pub output: usize,
}

/// A commit or cleanup task: no inputs, no outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminationSpec {
    /// The package holding the function.
    pub package: String,
    /// The task's name in the package.
    pub function: String,
    /// Retries, instances and timeouts.
    #[serde(default)]
    pub policy: Policy,
}

/// Execution policy of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Times a failed task is retried (0: no retry).
    pub max_retries: u32,
    /// Instances that may run at once (more than 1 allows a speculative copy after the soft
    /// timeout).
    pub max_instances: u32,
    /// After this, the task is started again elsewhere (if `max_instances` allows).
    pub soft_timeout_ms: u64,
    /// After this, the task is stopped and counts as failed.
    pub hard_timeout_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_retries: 0,
            max_instances: 1,
            soft_timeout_ms: 150_000,
            hard_timeout_ms: 300_000,
        }
    }
}

/// Where in a graph a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The graph as a whole.
    Graph,
    /// A task.
    Task(usize),
    /// One input of a task.
    Input {
        /// The task.
        task: usize,
        /// The input position.
        input: usize,
    },
    /// One output of a task.
    Output {
        /// The task.
        task: usize,
        /// The output position.
        output: usize,
    },
    /// The commit task.
    Commit,
    /// The cleanup task.
    Cleanup,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Graph => f.write_str("graph"),
            Self::Task(t) => write!(f, "task {t}"),
            Self::Input { task, input } => write!(f, "task {task}, input {input}"),
            Self::Output { task, output } => write!(f, "task {task}, output {output}"),
            Self::Commit => f.write_str("commit task"),
            Self::Cleanup => f.write_str("cleanup task"),
        }
    }
}

/// A rejected graph: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task graph: {location}: {reason}")]
pub struct GraphError {
    /// Where the problem is.
    pub location: Location,
    /// What is wrong.
    pub reason: String,
}

impl TaskGraph {
    /// Checks every rule; see the module docs and `docs/task-graph.md`.
    ///
    /// # Errors
    /// The first problem found, naming the task and input at fault.
    pub fn validate(&self) -> Result<(), GraphError> {
        super::JobGraph::from_task_graph(self).map(drop)
    }

    /// Parses and validates a graph. The schema version is checked before anything else, so a
    /// graph of another major version gets that error rather than a field error.
    ///
    /// # Errors
    /// A [`GraphError`] for malformed JSON, another schema version, unknown or missing fields, or
    /// any rule [`TaskGraph::validate`] checks.
    pub fn from_json(text: &str) -> Result<Self, GraphError> {
        /// Only the version, every other key skipped: checked before the graph is read.
        #[derive(serde::Deserialize)]
        struct Versioned {
            schema_version: Option<serde_json::Value>,
        }
        let parse_error = |e: serde_json::Error| GraphError {
            location: Location::Graph,
            reason: e.to_string(),
        };
        let versioned: Versioned = serde_json::from_str(text).map_err(parse_error)?;
        let missing = || GraphError {
            location: Location::Graph,
            reason: "missing field `schema_version`".into(),
        };
        match versioned.schema_version.ok_or_else(missing)? {
            serde_json::Value::String(v) => super::build::check_schema(&v)?,
            v => {
                return Err(GraphError {
                    location: Location::Graph,
                    reason: format!(
                        "incompatible schema_version {v} (this silk reads {SCHEMA_MAJOR}.x)"
                    ),
                });
            }
        }
        let graph: Self = serde_json::from_str(text).map_err(parse_error)?;
        graph.validate()?;
        Ok(graph)
    }

    /// For each task, the tasks that read its outputs (ascending, without duplicates).
    #[must_use]
    pub fn children(&self) -> Vec<Vec<usize>> {
        let mut children = vec![Vec::new(); self.tasks.len()];
        for (index, task) in self.tasks.iter().enumerate() {
            for src in task.sources.iter().flatten() {
                if children[src.task].last() != Some(&index) {
                    children[src.task].push(index);
                }
            }
        }
        children
    }

    /// The job's inputs: `(task, input position)` of every input of every input task, in task
    /// order then position order.
    #[must_use]
    pub fn job_inputs(&self) -> Vec<(usize, usize)> {
        self.tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.sources.is_none())
            .flat_map(|(i, t)| (0..t.inputs.len()).map(move |p| (i, p)))
            .collect()
    }

    /// The job's outputs: `(task, output position)` of every output of every task without
    /// children, in task order then position order.
    #[must_use]
    pub fn job_outputs(&self) -> Vec<(usize, usize)> {
        let children = self.children();
        self.tasks
            .iter()
            .enumerate()
            .filter(|(i, _)| children[*i].is_empty())
            .flat_map(|(i, t)| (0..t.outputs.len()).map(move |p| (i, p)))
            .collect()
    }
}
