//! The compact form of a task graph ([`pb::CompactTaskGraph`]): what clients send and storage
//! keeps in its database. The same graph as the JSON file format in about an eighth of the bytes,
//! decoded without parsing text: names, types and policies are stored once in tables and each
//! task holds indexes into them; a source is written as the distance back to its producer, a
//! small number in layered graphs. A large graph travels and is stored as several chunks, each
//! with its own tables. Storage decodes and validates them with
//! [`JobGraphBuilder`](super::JobGraphBuilder).

use std::collections::HashMap;
use std::hash::Hash;

use silk_proto::storage as pb;

use prost::Message as _;

use super::model::{Policy, TaskGraph, TerminationSpec};
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

pub(super) fn policy_of(p: &pb::TaskPolicy) -> Policy {
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

pub(super) fn termination_of(t: &pb::TerminationTask) -> TerminationSpec {
    TerminationSpec {
        package: t.package.clone(),
        function: t.function.clone(),
        policy: t.policy.as_ref().map(policy_of).unwrap_or_default(),
    }
}

/// Tasks `range` of `graph` in compact form (which need not be valid: it round-trips as it
/// is). Sources are distances in the whole graph; the first chunk names commit and cleanup.
#[must_use]
pub fn encode(graph: &TaskGraph, range: std::ops::Range<usize>) -> pb::CompactTaskGraph {
    let n = range.len();
    let first = range.start == 0;
    let mut out = pb::CompactTaskGraph {
        schema_version: graph.schema_version.clone(),
        package: Vec::with_capacity(n),
        function: Vec::with_capacity(n),
        policy: Vec::with_capacity(n),
        input_count: Vec::with_capacity(n),
        output_count: Vec::with_capacity(n),
        source_count: Vec::with_capacity(n),
        commit: graph
            .commit
            .as_ref()
            .filter(|_| first)
            .map(termination_message),
        cleanup: graph
            .cleanup
            .as_ref()
            .filter(|_| first)
            .map(termination_message),
        ..pb::CompactTaskGraph::default()
    };
    let (mut names, mut types, mut policies) = (Table::new(), Table::new(), Table::new());
    let (mut name_list, mut type_list, mut policy_list) = (Vec::new(), Vec::new(), Vec::new());
    for (index, task) in graph.tasks[range.clone()].iter().enumerate() {
        let index = index + range.start;
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

impl TaskGraph {
    /// This graph in compact form, as one chunk.
    #[must_use]
    pub fn to_compact(&self) -> pb::CompactTaskGraph {
        encode(self, 0..self.tasks.len())
    }

    /// This graph in compact chunks of about `chunk_bytes` each (a chunk holds at least one
    /// task, so one task larger than that makes a larger chunk), in order: what a client streams
    /// and storage stores.
    #[must_use]
    pub fn to_compact_chunks(&self, chunk_bytes: usize) -> Vec<pb::CompactTaskGraph> {
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < self.tasks.len() || chunks.is_empty() {
            // Tasks of one graph are mostly alike: a chunk grows (at most doubling) towards the
            // size its tasks so far predict until it is at least three quarters full, and is
            // bisected back when it overshoots.
            let mut fits = (start + 1).min(self.tasks.len());
            let mut chunk = encode(self, start..fits);
            let mut too_many: Option<usize> = None;
            loop {
                let size = chunk.encoded_len().max(1);
                let count = fits - start;
                if fits == self.tasks.len() || size >= chunk_bytes / 4 * 3 {
                    break;
                }
                let next = match too_many {
                    Some(over) => fits + (over - fits) / 2,
                    None => {
                        let predicted = (chunk_bytes / 8 * 7).saturating_mul(count) / size;
                        (start + predicted.clamp(count + 1, 2 * count)).min(self.tasks.len())
                    }
                };
                if next == fits {
                    break;
                }
                let candidate = encode(self, start..next);
                if candidate.encoded_len() > chunk_bytes {
                    too_many = Some(next);
                } else {
                    fits = next;
                    chunk = candidate;
                }
            }
            chunks.push(chunk);
            start = fits;
        }
        chunks
    }
}
