//! [`JobGraph`]: a validated task graph as storage keeps it for every job it runs. Names,
//! policies and type lists are stored once each; a task is three small indexes and its wiring
//! is a slice of two flat arrays (sources, children). Built from the compact form, one chunk at a
//! time ([`JobGraphBuilder`]), so a graph of a million tasks never exists in the per-task
//! [`TaskGraph`] form on the storage side.

use super::model::{Policy, Source, TaskGraph, TaskSpec, TerminationSpec};
use super::types::TypeDesc;

/// Output `output` of task `task` (a source of a task input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Edge {
    /// The producing task.
    pub task: u32,
    /// The position of the output in its outputs.
    pub output: u32,
}

/// One task: indexes into the graph's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TaskEntry {
    pub(super) name: u32,
    pub(super) signature: u32,
    pub(super) policy: u32,
}

/// The input and output types of a task: `types[..inputs]` are its inputs, the rest its outputs
/// (indexes into the graph's types).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Signature {
    pub(super) types: Box<[u32]>,
    pub(super) inputs: u32,
}

impl Signature {
    pub(super) fn inputs(&self) -> &[u32] {
        &self.types[..self.inputs as usize]
    }

    pub(super) fn outputs(&self) -> &[u32] {
        &self.types[self.inputs as usize..]
    }
}

/// A validated task graph in its in-memory form. See the module docs. (The default, with no
/// tasks, is what a job that ended keeps.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobGraph {
    pub(super) schema_version: String,
    /// Distinct `(package, function)` pairs.
    pub(super) names: Vec<(Box<str>, Box<str>)>,
    pub(super) types: Vec<TypeDesc>,
    pub(super) signatures: Vec<Signature>,
    pub(super) policies: Vec<Policy>,
    pub(super) tasks: Vec<TaskEntry>,
    /// Task i's sources are `sources[source_start[i]..source_start[i + 1]]`; an input task has
    /// none (a task with sources has at least one).
    pub(super) source_start: Vec<u32>,
    pub(super) sources: Vec<Edge>,
    /// Task i's children (tasks reading its outputs, ascending, without duplicates) are
    /// `children[child_start[i]..child_start[i + 1]]`.
    pub(super) child_start: Vec<u32>,
    pub(super) children: Vec<u32>,
    pub(super) commit: Option<TerminationSpec>,
    pub(super) cleanup: Option<TerminationSpec>,
}

fn span(start: &[u32], i: usize) -> std::ops::Range<usize> {
    start[i] as usize..start[i + 1] as usize
}

impl JobGraph {
    /// Regular tasks (commit and cleanup not counted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no regular tasks (never, once validated).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn signature(&self, task: usize) -> &Signature {
        &self.signatures[self.tasks[task].signature as usize]
    }

    /// Task `task`'s package.
    #[must_use]
    pub fn package(&self, task: usize) -> &str {
        &self.names[self.tasks[task].name as usize].0
    }

    /// Task `task`'s function.
    #[must_use]
    pub fn function(&self, task: usize) -> &str {
        &self.names[self.tasks[task].name as usize].1
    }

    /// Task `task`'s policy.
    #[must_use]
    pub fn policy(&self, task: usize) -> &Policy {
        &self.policies[self.tasks[task].policy as usize]
    }

    /// Task `task`'s input types.
    pub fn input_types(&self, task: usize) -> impl ExactSizeIterator<Item = &TypeDesc> {
        self.signature(task)
            .inputs()
            .iter()
            .map(|&t| &self.types[t as usize])
    }

    /// How many outputs task `task` declares.
    #[must_use]
    pub fn output_count(&self, task: usize) -> usize {
        self.signature(task).outputs().len()
    }

    /// Where task `task`'s inputs come from; `None` for an input task (inputs from the job).
    #[must_use]
    pub fn sources(&self, task: usize) -> Option<&[Edge]> {
        let sources = &self.sources[span(&self.source_start, task)];
        (!sources.is_empty()).then_some(sources)
    }

    /// The tasks that read task `task`'s outputs (ascending, without duplicates).
    #[must_use]
    pub fn children(&self, task: usize) -> &[u32] {
        &self.children[span(&self.child_start, task)]
    }

    /// The job's inputs: `(task, input position)` of every input of every input task, in task
    /// order then position order.
    pub fn job_inputs(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.len())
            .filter(|&i| self.sources(i).is_none())
            .flat_map(|i| (0..self.signature(i).inputs().len()).map(move |p| (i, p)))
    }

    /// The job's outputs: `(task, output position)` of every output of every task without
    /// children, in task order then position order.
    pub fn job_outputs(&self) -> impl Iterator<Item = (usize, usize)> + Clone + '_ {
        (0..self.len())
            .filter(|&i| self.children(i).is_empty())
            .flat_map(|i| (0..self.output_count(i)).map(move |p| (i, p)))
    }

    /// The commit task.
    #[must_use]
    pub fn commit(&self) -> Option<&TerminationSpec> {
        self.commit.as_ref()
    }

    /// The cleanup task.
    #[must_use]
    pub fn cleanup(&self) -> Option<&TerminationSpec> {
        self.cleanup.as_ref()
    }

    /// Bytes this graph holds on the heap (its vectors' capacities and the tables' contents).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let names: usize = self.names.iter().map(|(p, f)| p.len() + f.len()).sum();
        let signatures: usize = self.signatures.iter().map(|s| s.types.len() * 4).sum();
        names
            + self.names.capacity() * size_of::<(Box<str>, Box<str>)>()
            + self.types.capacity() * size_of::<TypeDesc>()
            + signatures
            + self.signatures.capacity() * size_of::<Signature>()
            + self.policies.capacity() * size_of::<Policy>()
            + self.tasks.capacity() * size_of::<TaskEntry>()
            + (self.source_start.capacity() + self.child_start.capacity()) * 4
            + self.sources.capacity() * size_of::<Edge>()
            + self.children.capacity() * 4
    }

    /// The graph in its per-task form (what a user wrote, in task order).
    #[must_use]
    pub fn to_task_graph(&self) -> TaskGraph {
        let tasks = (0..self.len())
            .map(|i| {
                let signature = self.signature(i);
                let types = |ids: &[u32]| -> Vec<TypeDesc> {
                    ids.iter()
                        .map(|&t| self.types[t as usize].clone())
                        .collect()
                };
                TaskSpec {
                    package: self.package(i).to_owned(),
                    function: self.function(i).to_owned(),
                    inputs: types(signature.inputs()),
                    outputs: types(signature.outputs()),
                    sources: self.sources(i).map(|s| {
                        s.iter()
                            .map(|e| Source {
                                task: e.task as usize,
                                output: e.output as usize,
                            })
                            .collect()
                    }),
                    policy: *self.policy(i),
                }
            })
            .collect();
        TaskGraph {
            schema_version: self.schema_version.clone(),
            tasks,
            commit: self.commit.clone(),
            cleanup: self.cleanup.clone(),
        }
    }
}
