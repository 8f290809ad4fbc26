//! Task graphs (JSON, see `docs/task-graph.md`) the end-to-end tests submit, with their inputs
//! and expected outputs.

use rmpv::Value;
use serde_json::{Value as Json, json};

use super::values::{i, s};

/// A task of `package::function`: an input task unless `sources` is given.
pub fn task(
    package: &str,
    function: &str,
    inputs: impl IntoIterator<Item = Json>,
    outputs: impl IntoIterator<Item = Json>,
) -> Json {
    let inputs: Vec<Json> = inputs.into_iter().collect();
    let outputs: Vec<Json> = outputs.into_iter().collect();
    json!({"package": package, "function": function, "inputs": inputs, "outputs": outputs})
}

/// `task` with `sources` (`(task, output)` pairs).
pub fn fed(mut task: Json, sources: &[(usize, usize)]) -> Json {
    task["sources"] = sources
        .iter()
        .map(|(t, o)| json!({"task": t, "output": o}))
        .collect();
    task
}

/// `task` with a policy.
pub fn with_policy(mut task: Json, policy: Json) -> Json {
    task["policy"] = policy;
    task
}

/// A graph of `tasks`.
pub fn graph(tasks: Vec<Json>) -> Json {
    json!({"schema_version": "1.0", "tasks": tasks})
}

/// A graph of one input task.
pub fn single(
    package: &str,
    function: &str,
    inputs: impl IntoIterator<Item = Json>,
    outputs: impl IntoIterator<Item = Json>,
) -> Json {
    graph(vec![task(package, function, inputs, outputs)])
}

const STEP_TYPES: [&str; 3] = ["string", "int64", "int64"];

fn step_task() -> Json {
    let types = STEP_TYPES.map(|t| json!(t));
    task("fixtures", "step", types.clone(), types)
}

/// `chains` parallel chains of `len` `fixtures::step` links, laid out layer by layer: link `k`
/// of chain `c` is task `k * chains + c`, so a task index says how far the job got. Each step
/// sleeps `ms` and logs its task index to `log`.
pub struct StepChains {
    /// Parallel chains.
    pub chains: usize,
    /// Links per chain.
    pub len: usize,
    /// Sleep of each step.
    pub ms: u64,
    /// The log file every step appends to.
    pub log: String,
}

impl StepChains {
    /// Tasks in the graph.
    pub fn tasks(&self) -> usize {
        self.chains * self.len
    }

    /// The graph.
    pub fn graph(&self) -> Json {
        let mut tasks = Vec::new();
        for k in 0..self.len {
            for c in 0..self.chains {
                if k == 0 {
                    tasks.push(step_task());
                } else {
                    let prev = (k - 1) * self.chains + c;
                    tasks.push(fed(step_task(), &[(prev, 0), (prev, 1), (prev, 2)]));
                }
            }
        }
        graph(tasks)
    }

    /// The job inputs: chain `c` starts at value `100 * c`.
    pub fn inputs(&self) -> Vec<Value> {
        (0..self.chains)
            .flat_map(|c| [s(&self.log), i(self.ms as i64), i(100 * c as i64)])
            .collect()
    }

    /// The job outputs: per chain `(log, ms, 100 * c + len)`.
    pub fn outputs(&self) -> Vec<Value> {
        (0..self.chains)
            .flat_map(|c| {
                [
                    s(&self.log),
                    i(self.ms as i64),
                    i(100 * c as i64 + self.len as i64),
                ]
            })
            .collect()
    }
}

/// One parsed line of a `fixtures::step` log: the task index and the EM directory it ran in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRun {
    /// Task index.
    pub task: u64,
    /// `em<i>`.
    pub em: String,
}

/// The runs logged in a `fixtures::step` log, in order.
pub fn step_runs(log: &std::path::Path) -> Vec<StepRun> {
    super::read_lines(log)
        .iter()
        .map(|line| {
            let (task, em) = line.split_once(' ').unwrap_or((line, ""));
            StepRun {
                task: task
                    .parse()
                    .unwrap_or_else(|_| panic!("bad log line {line:?}")),
                em: em.to_owned(),
            }
        })
        .collect()
}

/// How often each task index `0..tasks` appears in `runs`.
pub fn run_counts(runs: &[StepRun], tasks: usize) -> Vec<usize> {
    let mut counts = vec![0; tasks];
    for r in runs {
        counts[usize::try_from(r.task).unwrap()] += 1;
    }
    counts
}
