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

use super::model::{Policy, TaskGraph, TaskSpec, TerminationSpec};
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

/// Writes consecutive tasks of a graph into one chunk, keeping count of its encoded size.
struct ChunkWriter<'a> {
    out: pb::CompactTaskGraph,
    names: Table<'a, str>,
    types: Table<'a, TypeDesc>,
    policies: Table<'a, Policy>,
    name_list: Vec<&'a str>,
    type_list: Vec<&'a TypeDesc>,
    policy_list: Vec<&'a Policy>,
    /// The chunk's encoded size so far, within a few bytes per column.
    bytes: usize,
}

fn varint(v: u64) -> usize {
    prost::encoding::encoded_len_varint(v)
}

impl<'a> ChunkWriter<'a> {
    /// An empty chunk of `graph`; the first names the commit and cleanup tasks.
    fn new(graph: &'a TaskGraph, first: bool) -> Self {
        let termination =
            |t: &Option<TerminationSpec>| t.as_ref().filter(|_| first).map(termination_message);
        let out = pb::CompactTaskGraph {
            schema_version: graph.schema_version.clone(),
            commit: termination(&graph.commit),
            cleanup: termination(&graph.cleanup),
            ..pb::CompactTaskGraph::default()
        };
        Self {
            bytes: out.encoded_len(),
            out,
            names: Table::new(),
            types: Table::new(),
            policies: Table::new(),
            name_list: Vec::new(),
            type_list: Vec::new(),
            policy_list: Vec::new(),
        }
    }

    fn tasks(&self) -> usize {
        self.out.package.len()
    }

    /// Appends `task`, task `index` of the whole graph.
    fn push(&mut self, index: usize, task: &'a TaskSpec) {
        let (names, types, policies) = (
            self.name_list.len(),
            self.type_list.len(),
            self.policy_list.len(),
        );
        let out = &mut self.out;
        let mut bytes = 0;
        let mut put = |column: &mut Vec<u32>, v: u32| {
            bytes += varint(u64::from(v));
            column.push(v);
        };
        let name_list = &mut self.name_list;
        put(
            &mut out.package,
            self.names.get(task.package.as_str(), |s| name_list.push(s)),
        );
        put(
            &mut out.function,
            self.names
                .get(task.function.as_str(), |s| name_list.push(s)),
        );
        let policy_list = &mut self.policy_list;
        put(
            &mut out.policy,
            self.policies.get(&task.policy, |p| policy_list.push(p)),
        );
        let type_list = &mut self.type_list;
        put(&mut out.input_count, narrow(task.inputs.len()));
        for t in &task.inputs {
            put(
                &mut out.input_types,
                self.types.get(t, |t| type_list.push(t)),
            );
        }
        put(&mut out.output_count, narrow(task.outputs.len()));
        for t in &task.outputs {
            put(
                &mut out.output_types,
                self.types.get(t, |t| type_list.push(t)),
            );
        }
        match &task.sources {
            None => put(&mut out.source_count, 0),
            Some(sources) => {
                put(
                    &mut out.source_count,
                    narrow(sources.len()).saturating_add(1),
                );
                for s in sources {
                    let distance = i128::try_from(index).unwrap_or(i128::MAX)
                        - i128::try_from(s.task).unwrap_or(i128::MAX);
                    let distance = i64::try_from(distance).unwrap_or(i64::MIN);
                    out.source_distance.push(distance);
                    put(&mut out.source_output, narrow(s.output));
                }
            }
        }
        // sint64: zigzag, then a varint.
        let start = out.source_distance.len() - task.sources.as_ref().map_or(0, Vec::len);
        bytes += out.source_distance[start..]
            .iter()
            .map(|&d| varint(((d << 1) ^ (d >> 63)) as u64))
            .sum::<usize>();
        // New table entries: their text and a few bytes of framing.
        bytes += self.name_list[names..]
            .iter()
            .map(|n| n.len() + 2)
            .sum::<usize>();
        bytes += (self.type_list.len() - types) * 16 + (self.policy_list.len() - policies) * 24;
        self.bytes += bytes;
    }

    fn finish(self) -> pb::CompactTaskGraph {
        let mut out = self.out;
        out.names = self.name_list.into_iter().map(str::to_owned).collect();
        // A type descriptor always serializes (plain enum of strings and boxes).
        out.types = self
            .type_list
            .into_iter()
            .map(|t| serde_json::to_string(t).unwrap_or_default())
            .collect();
        out.policies = self.policy_list.into_iter().map(policy_message).collect();
        out
    }
}

impl TaskGraph {
    /// This graph in compact form, as one chunk (which need not be valid: it is encoded as it
    /// is, so storage's validation names the fault).
    #[must_use]
    pub fn to_compact(&self) -> pb::CompactTaskGraph {
        self.to_compact_chunks(usize::MAX).remove(0)
    }

    /// This graph in compact chunks of about `chunk_bytes` each (a chunk holds at least one
    /// task and is closed after the task that fills it), in order: what a client streams and
    /// storage stores. Sources are distances in the whole graph; the first chunk names the
    /// commit and cleanup tasks. One pass over the tasks.
    #[must_use]
    pub fn to_compact_chunks(&self, chunk_bytes: usize) -> Vec<pb::CompactTaskGraph> {
        let mut chunks = Vec::new();
        let mut chunk = ChunkWriter::new(self, true);
        for (index, task) in self.tasks.iter().enumerate() {
            if chunk.tasks() > 0 && chunk.bytes >= chunk_bytes {
                chunks.push(std::mem::replace(&mut chunk, ChunkWriter::new(self, false)).finish());
            }
            chunk.push(index, task);
        }
        chunks.push(chunk.finish());
        chunks
    }
}
