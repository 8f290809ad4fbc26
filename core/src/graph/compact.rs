//! The compact form of a task graph ([`pb::CompactTaskGraph`]): what clients send and storage
//! keeps in its database. The same graph as the JSON file format in about an eighth of the bytes,
//! decoded without parsing text: names, types and policies are stored once in tables and each
//! task holds indexes into them; a source is written as the distance back to its producer, a
//! small number in layered graphs.
//!
//! Decoding trusts nothing: every index and count is checked against the columns it points
//! into before anything is allocated for it, so what decoding allocates is bounded by the size of
//! the message. The result still has to pass [`TaskGraph::validate`]
//! ([`TaskGraph::from_compact`] does both).

use std::collections::HashMap;
use std::hash::Hash;

use silk_proto::storage as pb;

use super::model::{
    GraphError, Location, Policy, SCHEMA_MAJOR, Source, TaskGraph, TaskSpec, TerminationSpec,
};
use super::types::TypeDesc;

/// Gives each distinct value the index of its first appearance.
struct Table<'a, T: ?Sized> {
    index: HashMap<&'a T, u32>,
    /// The value asked for last: neighbouring tasks and inputs mostly repeat it, and comparing
    /// is cheaper than hashing.
    last: Option<(&'a T, u32)>,
}

impl<'a, T: ?Sized + Eq + Hash> Table<'a, T> {
    fn new() -> Self {
        Self {
            index: HashMap::new(),
            last: None,
        }
    }

    /// The index of `value`; `add` stores a new one in the message's table.
    fn get(&mut self, value: &'a T, add: impl FnOnce(&'a T)) -> u32 {
        if let Some((last, i)) = self.last
            && last == value
        {
            return i;
        }
        let next = u32::try_from(self.index.len()).unwrap_or(u32::MAX);
        let i = *self.index.entry(value).or_insert_with(|| {
            add(value);
            next
        });
        self.last = Some((value, i));
        i
    }
}

/// A count or position as stored (saturated: a value past `u32::MAX` cannot be valid, and
/// decoding or validation then says so).
fn narrow(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn policy_message(p: &Policy) -> pb::TaskPolicy {
    pb::TaskPolicy {
        max_retries: p.max_retries,
        max_instances: p.max_instances,
        soft_timeout_ms: p.soft_timeout_ms,
        hard_timeout_ms: p.hard_timeout_ms,
    }
}

fn policy_of(p: &pb::TaskPolicy) -> Policy {
    Policy {
        max_retries: p.max_retries,
        max_instances: p.max_instances,
        soft_timeout_ms: p.soft_timeout_ms,
        hard_timeout_ms: p.hard_timeout_ms,
    }
}

fn termination_message(t: &TerminationSpec) -> pb::TerminationTask {
    pb::TerminationTask {
        package: t.package.clone(),
        function: t.function.clone(),
        policy: Some(policy_message(&t.policy)),
    }
}

fn termination_of(t: &pb::TerminationTask) -> TerminationSpec {
    TerminationSpec {
        package: t.package.clone(),
        function: t.function.clone(),
        policy: t.policy.as_ref().map(policy_of).unwrap_or_default(),
    }
}

/// The compact form of `graph` (which need not be valid: it round-trips as it is).
#[must_use]
pub fn encode(graph: &TaskGraph) -> pb::CompactTaskGraph {
    let n = graph.tasks.len();
    let mut out = pb::CompactTaskGraph {
        schema_version: graph.schema_version.clone(),
        package: Vec::with_capacity(n),
        function: Vec::with_capacity(n),
        policy: Vec::with_capacity(n),
        input_count: Vec::with_capacity(n),
        output_count: Vec::with_capacity(n),
        source_count: Vec::with_capacity(n),
        commit: graph.commit.as_ref().map(termination_message),
        cleanup: graph.cleanup.as_ref().map(termination_message),
        ..pb::CompactTaskGraph::default()
    };
    let (mut names, mut types, mut policies) = (Table::new(), Table::new(), Table::new());
    let (mut name_list, mut type_list, mut policy_list) = (Vec::new(), Vec::new(), Vec::new());
    for (index, task) in graph.tasks.iter().enumerate() {
        out.package
            .push(names.get(task.package.as_str(), |s| name_list.push(s)));
        out.function
            .push(names.get(task.function.as_str(), |s| name_list.push(s)));
        out.policy
            .push(policies.get(&task.policy, |p| policy_list.push(p)));
        out.input_count.push(narrow(task.inputs.len()));
        for t in &task.inputs {
            out.input_types.push(types.get(t, |t| type_list.push(t)));
        }
        out.output_count.push(narrow(task.outputs.len()));
        for t in &task.outputs {
            out.output_types.push(types.get(t, |t| type_list.push(t)));
        }
        match &task.sources {
            None => out.source_count.push(0),
            Some(sources) => {
                out.source_count
                    .push(narrow(sources.len()).saturating_add(1));
                for s in sources {
                    let distance = i128::try_from(index).unwrap_or(i128::MAX)
                        - i128::try_from(s.task).unwrap_or(i128::MAX);
                    out.source_distance
                        .push(i64::try_from(distance).unwrap_or(i64::MIN));
                    out.source_output.push(narrow(s.output));
                }
            }
        }
    }
    out.names = name_list.into_iter().map(str::to_owned).collect();
    // A type descriptor always serializes (plain enum of strings and boxes).
    out.types = type_list
        .into_iter()
        .map(|t: &TypeDesc| serde_json::to_string(t).unwrap_or_default())
        .collect();
    out.policies = policy_list.into_iter().map(policy_message).collect();
    out
}

fn malformed(reason: impl Into<String>) -> GraphError {
    GraphError {
        location: Location::Graph,
        reason: format!("malformed compact graph: {}", reason.into()),
    }
}

/// Reads consecutive entries of a concatenated column.
struct Cursor<'a, T> {
    name: &'static str,
    column: &'a [T],
    at: usize,
}

impl<'a, T> Cursor<'a, T> {
    fn new(name: &'static str, column: &'a [T]) -> Self {
        Self {
            name,
            column,
            at: 0,
        }
    }

    fn take(&mut self, task: usize, count: usize) -> Result<&'a [T], GraphError> {
        let end = self
            .at
            .checked_add(count)
            .filter(|&end| end <= self.column.len())
            .ok_or_else(|| {
                malformed(format!(
                    "task {task} needs {count} entries of `{}` from position {}, which has {}",
                    self.name,
                    self.at,
                    self.column.len()
                ))
            })?;
        let slice = &self.column[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn finish(&self) -> Result<(), GraphError> {
        if self.at == self.column.len() {
            Ok(())
        } else {
            Err(malformed(format!(
                "`{}` has {} entries but the tasks use {}",
                self.name,
                self.column.len(),
                self.at
            )))
        }
    }
}

fn entry<'a, T>(table: &'a [T], what: &str, index: u32, task: usize) -> Result<&'a T, GraphError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .ok_or_else(|| {
            malformed(format!(
                "task {task} refers to {what} {index}, but there are {}",
                table.len()
            ))
        })
}

/// The graph a compact message describes, not yet validated.
///
/// # Errors
/// A [`GraphError`] when the columns do not fit together (a column of the wrong length, an index
/// past its table, a type that does not parse, a source before the first task).
pub fn decode(wire: &pb::CompactTaskGraph) -> Result<TaskGraph, GraphError> {
    let n = wire.package.len();
    for (column, len) in [
        ("function", wire.function.len()),
        ("policy", wire.policy.len()),
        ("input_count", wire.input_count.len()),
        ("output_count", wire.output_count.len()),
        ("source_count", wire.source_count.len()),
    ] {
        if len != n {
            return Err(malformed(format!(
                "`{column}` has {len} entries for {n} tasks"
            )));
        }
    }
    if wire.source_distance.len() != wire.source_output.len() {
        return Err(malformed(format!(
            "{} source distances but {} source outputs",
            wire.source_distance.len(),
            wire.source_output.len()
        )));
    }
    let types = wire
        .types
        .iter()
        .enumerate()
        .map(|(i, text)| {
            serde_json::from_str::<TypeDesc>(text)
                .map_err(|e| malformed(format!("type {i} {text}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let policies: Vec<Policy> = wire.policies.iter().map(policy_of).collect();
    let mut input_types = Cursor::new("input_types", &wire.input_types);
    let mut output_types = Cursor::new("output_types", &wire.output_types);
    let mut distances = Cursor::new("source_distance", &wire.source_distance);
    let mut outputs = Cursor::new("source_output", &wire.source_output);
    let count = |c: u32| usize::try_from(c).unwrap_or(usize::MAX);
    // Loops that push into vectors of known size: collecting through `Result` cannot presize.
    let type_list = |task: usize, indexes: &[u32]| {
        let mut list = Vec::with_capacity(indexes.len());
        for &t in indexes {
            list.push(entry(&types, "type", t, task)?.clone());
        }
        Ok::<_, GraphError>(list)
    };
    let mut tasks = Vec::with_capacity(n);
    for task in 0..n {
        let sources = match wire.source_count[task] {
            0 => None,
            c => {
                let c = count(c - 1);
                let (d, o) = (distances.take(task, c)?, outputs.take(task, c)?);
                let mut sources = Vec::with_capacity(c);
                for (&distance, &output) in d.iter().zip(o) {
                    let producer = i128::try_from(task).unwrap_or(i128::MAX) - i128::from(distance);
                    let producer = usize::try_from(producer).map_err(|_| {
                        malformed(format!(
                            "a source of task {task} lies {distance} tasks back, before the first task"
                        ))
                    })?;
                    sources.push(Source {
                        task: producer,
                        output: count(output),
                    });
                }
                Some(sources)
            }
        };
        tasks.push(TaskSpec {
            package: entry(&wire.names, "name", wire.package[task], task)?.clone(),
            function: entry(&wire.names, "name", wire.function[task], task)?.clone(),
            inputs: type_list(task, input_types.take(task, count(wire.input_count[task]))?)?,
            outputs: type_list(
                task,
                output_types.take(task, count(wire.output_count[task]))?,
            )?,
            sources,
            policy: *entry(&policies, "policy", wire.policy[task], task)?,
        });
    }
    for unused in [input_types.finish(), output_types.finish()] {
        unused?;
    }
    distances.finish()?;
    Ok(TaskGraph {
        schema_version: wire.schema_version.clone(),
        tasks,
        commit: wire.commit.as_ref().map(termination_of),
        cleanup: wire.cleanup.as_ref().map(termination_of),
    })
}

impl TaskGraph {
    /// Decodes and validates a graph in compact form. The schema version is checked first, as
    /// in [`TaskGraph::from_json`].
    ///
    /// # Errors
    /// A [`GraphError`] for another schema version, columns that do not fit together, or any
    /// rule [`TaskGraph::validate`] checks.
    pub fn from_compact(wire: &pb::CompactTaskGraph) -> Result<Self, GraphError> {
        if wire.schema_version.split('.').next() != Some(SCHEMA_MAJOR) {
            return Err(GraphError {
                location: Location::Graph,
                reason: format!(
                    "incompatible schema_version {:?} (this silk reads {SCHEMA_MAJOR}.x)",
                    wire.schema_version
                ),
            });
        }
        let graph = decode(wire)?;
        graph.validate()?;
        Ok(graph)
    }

    /// This graph in compact form, ready to send or store.
    #[must_use]
    pub fn to_compact(&self) -> pb::CompactTaskGraph {
        encode(self)
    }
}
