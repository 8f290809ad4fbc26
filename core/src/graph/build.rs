//! [`JobGraphBuilder`]: decodes a graph's compact chunks in order and checks every rule of a
//! valid graph as it goes (the one place the rules live; [`TaskGraph::validate`] runs them
//! too). Decoding trusts nothing: every index and count is checked against the column it points
//! into before anything is allocated for it, so memory grows with the bytes received.

use std::collections::HashMap;

use silk_proto::storage as pb;
use silk_tdl::abi::is_valid_package_name;

use super::compact::{policy_of, termination_of};
use super::job_graph::{Edge, JobGraph, Signature, TaskEntry};
use super::model::{
    GraphError, Location, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, Policy, SCHEMA_MAJOR, TaskGraph,
};
use super::types::TypeDesc;

fn err<T>(location: Location, reason: impl Into<String>) -> Result<T, GraphError> {
    Err(GraphError {
        location,
        reason: reason.into(),
    })
}

fn malformed(reason: impl Into<String>) -> GraphError {
    GraphError {
        location: Location::Graph,
        reason: format!("malformed compact graph: {}", reason.into()),
    }
}

pub(super) fn check_schema(version: &str) -> Result<(), GraphError> {
    if version.split('.').next() == Some(SCHEMA_MAJOR) {
        return Ok(());
    }
    err(
        Location::Graph,
        format!("incompatible schema_version {version:?} (this silk reads {SCHEMA_MAJOR}.x)"),
    )
}

fn check_function(location: Location, package: &str, function: &str) -> Result<(), GraphError> {
    if !is_valid_package_name(package) {
        return err(
            location,
            format!("package name {package:?} is not 1-128 ASCII letters, digits, `_` or `-`"),
        );
    }
    if function.is_empty() {
        return err(location, "function name is empty");
    }
    Ok(())
}

fn check_policy(location: Location, p: &Policy) -> Result<(), GraphError> {
    if p.max_instances < 1 {
        return err(location, "policy.max_instances must be at least 1");
    }
    for (name, v) in [
        ("soft_timeout_ms", p.soft_timeout_ms),
        ("hard_timeout_ms", p.hard_timeout_ms),
    ] {
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&v) {
            return err(
                location,
                format!("policy.{name} = {v} is outside {MIN_TIMEOUT_MS}..={MAX_TIMEOUT_MS}"),
            );
        }
    }
    if p.soft_timeout_ms >= p.hard_timeout_ms {
        return err(
            location,
            format!(
                "policy.soft_timeout_ms ({}) must be less than policy.hard_timeout_ms ({})",
                p.soft_timeout_ms, p.hard_timeout_ms
            ),
        );
    }
    Ok(())
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

fn entry<T: Copy>(table: &[T], what: &str, index: u32, task: usize) -> Result<T, GraphError> {
    table.get(index as usize).copied().ok_or_else(|| {
        malformed(format!(
            "task {task} refers to {what} {index}, but there are {}",
            table.len()
        ))
    })
}

/// A column's length as a task count; more than `u32::MAX` entries cannot be indexed.
fn narrow(n: usize, what: &str) -> Result<u32, GraphError> {
    u32::try_from(n).map_err(|_| malformed(format!("more than {} {what}", u32::MAX)))
}

/// Builds a [`JobGraph`] from compact chunks: the first carries the schema version and the
/// commit and cleanup tasks, each holds the next tasks in order with its own name, type and
/// policy tables, and a source is given as the distance back to its producer in the whole graph.
#[derive(Debug, Default)]
pub struct JobGraphBuilder {
    graph: Option<JobGraph>,
    name_ids: HashMap<(Box<str>, Box<str>), u32>,
    type_ids: HashMap<TypeDesc, u32>,
    /// Per type: why it is invalid, if it is.
    type_problems: Vec<Option<String>>,
    signature_ids: HashMap<Signature, u32>,
    policy_ids: HashMap<Policy, u32>,
    bytes: u64,
}

/// A chunk's tables mapped to the graph's.
struct ChunkTables {
    types: Vec<u32>,
    policies: Vec<Option<u32>>,
    names: HashMap<(u32, u32), u32>,
}

impl JobGraphBuilder {
    /// An empty builder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Tasks added so far.
    #[must_use]
    pub fn tasks(&self) -> usize {
        self.graph.as_ref().map_or(0, JobGraph::len)
    }

    /// Encoded bytes of the chunks added so far (as counted by the caller of [`Self::push`]).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds the next chunk, `encoded_bytes` long on the wire, checking every task in it.
    ///
    /// # Errors
    /// The first problem found: another schema version, columns that do not fit together, or a
    /// rule of valid graphs broken (naming the task and input at fault, by its index in the whole
    /// graph).
    pub fn push(
        &mut self,
        chunk: &pb::CompactTaskGraph,
        encoded_bytes: u64,
    ) -> Result<(), GraphError> {
        self.bytes = self.bytes.saturating_add(encoded_bytes);
        let first = self.graph.is_none();
        if first || !chunk.schema_version.is_empty() {
            check_schema(&chunk.schema_version)?;
        }
        if first {
            self.graph = Some(JobGraph {
                schema_version: chunk.schema_version.clone(),
                names: Vec::new(),
                types: Vec::new(),
                signatures: Vec::new(),
                policies: Vec::new(),
                tasks: Vec::new(),
                source_start: vec![0],
                sources: Vec::new(),
                child_start: Vec::new(),
                children: Vec::new(),
                commit: chunk.commit.as_ref().map(termination_of),
                cleanup: chunk.cleanup.as_ref().map(termination_of),
            });
        } else if chunk.commit.is_some() || chunk.cleanup.is_some() {
            return Err(malformed(
                "only the first chunk may name commit and cleanup tasks",
            ));
        }
        let n = chunk.package.len();
        for (column, len) in [
            ("function", chunk.function.len()),
            ("policy", chunk.policy.len()),
            ("input_count", chunk.input_count.len()),
            ("output_count", chunk.output_count.len()),
            ("source_count", chunk.source_count.len()),
        ] {
            if len != n {
                return Err(malformed(format!(
                    "`{column}` has {len} entries for {n} tasks"
                )));
            }
        }
        if chunk.source_distance.len() != chunk.source_output.len() {
            return Err(malformed(format!(
                "{} source distances but {} source outputs",
                chunk.source_distance.len(),
                chunk.source_output.len()
            )));
        }
        let mut tables = ChunkTables {
            types: Vec::with_capacity(chunk.types.len()),
            policies: vec![None; chunk.policies.len()],
            names: HashMap::new(),
        };
        for (i, text) in chunk.types.iter().enumerate() {
            let ty = serde_json::from_str::<TypeDesc>(text)
                .map_err(|e| malformed(format!("type {i} {text}: {e}")))?;
            tables.types.push(self.type_id(ty)?);
        }
        let mut input_types = Cursor::new("input_types", &chunk.input_types);
        let mut output_types = Cursor::new("output_types", &chunk.output_types);
        let mut distances = Cursor::new("source_distance", &chunk.source_distance);
        let mut outputs = Cursor::new("source_output", &chunk.source_output);
        let mut scratch = Vec::new();
        let mut last_signature: Option<u32> = None;
        let base = self.tasks();
        for local in 0..n {
            let index = base + local;
            let here = Location::Task(index);
            let name = self.name_id(chunk, &mut tables, local, index)?;
            let policy = self.policy_id(chunk, &mut tables, local, index)?;
            let count = |c: u32| c as usize;
            let ins = input_types.take(index, count(chunk.input_count[local]))?;
            let outs = output_types.take(index, count(chunk.output_count[local]))?;
            scratch.clear();
            for &t in ins.iter().chain(outs) {
                scratch.push(entry(&tables.types, "type", t, index)?);
            }
            let inputs = narrow(ins.len(), "inputs")?;
            let signature = self.signature_id(&scratch, inputs, &mut last_signature, index)?;
            let graph = self.graph.as_mut().ok_or_else(|| malformed("no chunk"))?;
            match chunk.source_count[local] {
                0 => {}
                1 => {
                    return err(
                        here,
                        "`sources` is empty: leave it out for an input task (inputs from the job)",
                    );
                }
                c => {
                    let c = count(c - 1);
                    let (d, o) = (distances.take(index, c)?, outputs.take(index, c)?);
                    if c != ins.len() {
                        return err(
                            here,
                            format!(
                                "has {} inputs but {c} sources; give one source per input",
                                ins.len()
                            ),
                        );
                    }
                    for (input, ((&distance, &output), &ty)) in
                        d.iter().zip(o).zip(&scratch[..ins.len()]).enumerate()
                    {
                        let at = Location::Input { task: index, input };
                        let producer =
                            i128::try_from(index).unwrap_or(i128::MAX) - i128::from(distance);
                        if distance <= 0 {
                            return err(
                                at,
                                format!("source task {producer} is not listed before task {index}"),
                            );
                        }
                        let producer = usize::try_from(producer).map_err(|_| {
                            malformed(format!(
                                "a source of task {index} lies {distance} tasks back, before the first task"
                            ))
                        })?;
                        let produced =
                            graph.signatures[graph.tasks[producer].signature as usize].outputs();
                        let Some(&out_ty) = produced.get(output as usize) else {
                            return err(
                                at,
                                format!(
                                    "task {producer} has no output {output} (it has {})",
                                    produced.len()
                                ),
                            );
                        };
                        if out_ty != ty {
                            return err(
                                at,
                                format!(
                                    "type {} does not match task {producer} output {output} of type {}",
                                    graph.types[ty as usize], graph.types[out_ty as usize]
                                ),
                            );
                        }
                        graph.sources.push(Edge {
                            task: narrow(producer, "tasks")?,
                            output,
                        });
                    }
                }
            }
            graph.tasks.push(TaskEntry {
                name,
                signature,
                policy,
            });
            graph
                .source_start
                .push(narrow(graph.sources.len(), "sources")?);
        }
        input_types.finish()?;
        output_types.finish()?;
        distances.finish()?;
        Ok(())
    }

    fn type_id(&mut self, ty: TypeDesc) -> Result<u32, GraphError> {
        let graph = self.graph.as_mut().ok_or_else(|| malformed("no chunk"))?;
        if let Some(&id) = self.type_ids.get(&ty) {
            return Ok(id);
        }
        let id = narrow(graph.types.len(), "types")?;
        self.type_problems.push(ty.problem());
        graph.types.push(ty.clone());
        self.type_ids.insert(ty, id);
        Ok(id)
    }

    fn name_id(
        &mut self,
        chunk: &pb::CompactTaskGraph,
        tables: &mut ChunkTables,
        local: usize,
        index: usize,
    ) -> Result<u32, GraphError> {
        let key = (chunk.package[local], chunk.function[local]);
        if let Some(&id) = tables.names.get(&key) {
            return Ok(id);
        }
        let text = |i: u32| {
            chunk
                .names
                .get(i as usize)
                .map(String::as_str)
                .ok_or_else(|| {
                    malformed(format!(
                        "task {index} refers to name {i}, but there are {}",
                        chunk.names.len()
                    ))
                })
        };
        let (package, function) = (text(key.0)?, text(key.1)?);
        let graph = self.graph.as_mut().ok_or_else(|| malformed("no chunk"))?;
        let pair: (Box<str>, Box<str>) = (package.into(), function.into());
        let id = match self.name_ids.get(&pair) {
            Some(&id) => id,
            None => {
                check_function(Location::Task(index), package, function)?;
                let id = narrow(graph.names.len(), "names")?;
                graph.names.push(pair.clone());
                self.name_ids.insert(pair, id);
                id
            }
        };
        tables.names.insert(key, id);
        Ok(id)
    }

    fn policy_id(
        &mut self,
        chunk: &pb::CompactTaskGraph,
        tables: &mut ChunkTables,
        local: usize,
        index: usize,
    ) -> Result<u32, GraphError> {
        let at = chunk.policy[local];
        if let Some(Some(id)) = tables.policies.get(at as usize) {
            return Ok(*id);
        }
        let policy = policy_of(chunk.policies.get(at as usize).ok_or_else(|| {
            malformed(format!(
                "task {index} refers to policy {at}, but there are {}",
                chunk.policies.len()
            ))
        })?);
        let graph = self.graph.as_mut().ok_or_else(|| malformed("no chunk"))?;
        let id = match self.policy_ids.get(&policy) {
            Some(&id) => id,
            None => {
                check_policy(Location::Task(index), &policy)?;
                let id = narrow(graph.policies.len(), "policies")?;
                graph.policies.push(policy);
                self.policy_ids.insert(policy, id);
                id
            }
        };
        tables.policies[at as usize] = Some(id);
        Ok(id)
    }

    /// The id of the signature `types` (inputs first); a new one has each type checked.
    fn signature_id(
        &mut self,
        types: &[u32],
        inputs: u32,
        last: &mut Option<u32>,
        index: usize,
    ) -> Result<u32, GraphError> {
        let graph = self.graph.as_mut().ok_or_else(|| malformed("no chunk"))?;
        if let Some(id) = *last {
            let s = &graph.signatures[id as usize];
            if s.inputs == inputs && *s.types == *types {
                return Ok(id);
            }
        }
        let signature = Signature {
            types: types.into(),
            inputs,
        };
        let id = match self.signature_ids.get(&signature) {
            Some(&id) => id,
            None => {
                for (position, &t) in types.iter().enumerate() {
                    if let Some(problem) = &self.type_problems[t as usize] {
                        let location = match position.checked_sub(inputs as usize) {
                            None => Location::Input {
                                task: index,
                                input: position,
                            },
                            Some(output) => Location::Output {
                                task: index,
                                output,
                            },
                        };
                        return err(location, problem.clone());
                    }
                }
                let id = narrow(graph.signatures.len(), "signatures")?;
                graph.signatures.push(signature.clone());
                self.signature_ids.insert(signature, id);
                id
            }
        };
        *last = Some(id);
        Ok(id)
    }

    /// The graph: checks what needs every task (at least one; commit and cleanup) and derives
    /// each task's children.
    ///
    /// # Errors
    /// No chunk or no task, or an invalid commit or cleanup task.
    pub fn finish(self) -> Result<JobGraph, GraphError> {
        let Some(mut graph) = self.graph else {
            return err(Location::Graph, "a graph needs at least one task");
        };
        if graph.tasks.is_empty() {
            return err(Location::Graph, "a graph needs at least one task");
        }
        for (location, task) in [
            (Location::Commit, &graph.commit),
            (Location::Cleanup, &graph.cleanup),
        ] {
            if let Some(t) = task {
                check_function(location, &t.package, &t.function)?;
                check_policy(location, &t.policy)?;
            }
        }
        link_children(&mut graph);
        graph.tasks.shrink_to_fit();
        graph.source_start.shrink_to_fit();
        graph.sources.shrink_to_fit();
        Ok(graph)
    }
}

/// Fills `child_start` and `children` from the sources (two passes, no per-task vectors).
fn link_children(graph: &mut JobGraph) {
    let n = graph.tasks.len();
    // Per producer: the last child counted, so a child reading it twice counts once.
    let mut last = vec![u32::MAX; n];
    let mut counts = vec![0u32; n + 1];
    let each_edge = |graph: &JobGraph, f: &mut dyn FnMut(usize, u32)| {
        for child in 0..n {
            let start = graph.source_start[child] as usize;
            let end = graph.source_start[child + 1] as usize;
            for e in &graph.sources[start..end] {
                // Task counts fit u32: checked as tasks were added.
                f(e.task as usize, child as u32);
            }
        }
    };
    each_edge(&*graph, &mut |p, c| {
        if last[p] != c {
            last[p] = c;
            counts[p + 1] += 1;
        }
    });
    for i in 0..n {
        counts[i + 1] += counts[i];
    }
    let mut children = vec![0u32; counts[n] as usize];
    let mut next = counts.clone();
    last.fill(u32::MAX);
    each_edge(&*graph, &mut |p, c| {
        if last[p] != c {
            last[p] = c;
            children[next[p] as usize] = c;
            next[p] += 1;
        }
    });
    graph.child_start = counts;
    graph.children = children;
}

impl JobGraph {
    /// Decodes and validates a graph sent as one compact chunk.
    ///
    /// # Errors
    /// As [`JobGraphBuilder::push`] and [`JobGraphBuilder::finish`].
    pub fn from_compact(chunk: &pb::CompactTaskGraph) -> Result<Self, GraphError> {
        let mut builder = JobGraphBuilder::new();
        builder.push(chunk, 0)?;
        builder.finish()
    }

    /// Validates `graph` and builds its in-memory form.
    ///
    /// # Errors
    /// The first rule `graph` breaks.
    pub fn from_task_graph(graph: &TaskGraph) -> Result<Self, GraphError> {
        Self::from_compact(&graph.to_compact())
    }
}
