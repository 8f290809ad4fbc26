//! The in-memory control block of one job: its task graph, the state of every task (instances,
//! retries, outputs) and of its commit and cleanup tasks, and its progress counts.
//!
//! Everything here is synchronous and does no I/O: the service ([`super::Storage`]) takes the
//! job's lock for one short step at a time and does database writes and queue pushes between
//! steps. The job state itself changes only through [`JobControl::set_state`], which the service
//! calls after the database accepted the transition.

mod held;
mod job_phase;
mod loss;
mod msgpack;
mod task_control;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use silk_ipc::FailureKind;
use silk_tdl::{JobId, ResourceGroupId, TaskId, TaskInstanceId, frame};

use super::db::JobError;
use super::error::{Error, Result, Stale};
use super::task_state::TaskState;
use held::Output;
use silk_core::JobState;
use silk_core::graph::{JobGraph, Policy};
use task_control::TaskControl;

pub use held::{Charge, OutputBudget, Part, Values};
pub use task_control::{FailOutcome, Progress};

/// What an execution manager needs to run a task instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionContext {
    /// The new instance.
    pub instance: TaskInstanceId,
    /// Package holding the function.
    pub package: String,
    /// The function.
    pub function: String,
    /// Retries, instances and timeouts.
    pub policy: Policy,
    /// The inputs frame (an empty frame for commit and cleanup tasks). Empty while
    /// [`Self::unresolved`] is set.
    pub inputs: Vec<u8>,
    /// When some inputs are only in the database: every input in order, to read back and frame
    /// (the service does this before answering).
    pub unresolved: Option<Vec<Part>>,
    /// For the commit task: the job outputs frame.
    pub job_outputs: Option<Vec<u8>>,
}

/// One job's in-memory state.
#[derive(Debug)]
pub struct JobControl {
    id: JobId,
    group: ResourceGroupId,
    graph: JobGraph,
    /// Job input values, by (task, position) in `graph.job_inputs()` order.
    job_inputs: Vec<Vec<u8>>,
    /// For each input task, the offset of its first value in `job_inputs`.
    input_offsets: Vec<u32>,
    state: JobState,
    tasks: Vec<TaskControl>,
    outputs: Vec<Output>,
    /// For each task, how many of its children have not yet succeeded (persisted): its outputs
    /// leave memory when this reaches zero.
    unread_by: Vec<u32>,
    budget: OutputBudget,
    /// This job's share of the memory budget of running jobs, held until it ends.
    memory: Option<Charge>,
    commit: Option<TaskControl>,
    cleanup: Option<TaskControl>,
    job_outputs: Option<Vec<u8>>,
    progress: Progress,
    ended_at_ms: Option<i64>,
}

impl JobControl {
    /// Builds a job in `state` from its graph and inputs frame.
    ///
    /// # Errors
    /// [`Error::BadRequest`] if the inputs frame is malformed or does not hold one value per job
    /// input.
    pub fn new(
        id: JobId,
        group: ResourceGroupId,
        graph: JobGraph,
        inputs: &[u8],
        state: JobState,
    ) -> Result<Self> {
        let expected = graph.job_inputs().count();
        let values = frame::decode_exact(inputs, expected)
            .map_err(|e| Error::BadRequest(format!("job inputs: {e}")))?;
        let job_inputs = values.iter().map(|v| v.to_vec()).collect();
        let mut offset = 0u32;
        let mut input_offsets = vec![0; graph.len()];
        for (i, at) in input_offsets.iter_mut().enumerate() {
            if graph.sources(i).is_none() {
                *at = offset;
                // The frame holds fewer than u32::MAX values (its count is a u32).
                offset += graph.input_types(i).len() as u32;
            }
        }
        let tasks: Vec<TaskControl> = (0..graph.len())
            .map(|i| TaskControl::new(distinct_parents(&graph, i).len()))
            .collect();
        let progress = Progress::new(state, &tasks);
        Ok(Self {
            id,
            group,
            unread_by: (0..graph.len())
                .map(|i| u32::try_from(graph.children(i).len()).unwrap_or(u32::MAX))
                .collect(),
            outputs: std::iter::repeat_with(Output::default)
                .take(graph.len())
                .collect(),
            budget: OutputBudget::default(),
            memory: None,
            commit: graph.commit().map(|_| TaskControl::termination()),
            cleanup: graph.cleanup().map(|_| TaskControl::termination()),
            graph,
            job_inputs,
            input_offsets,
            state,
            tasks,
            job_outputs: None,
            progress,
            ended_at_ms: None,
        })
    }

    /// Keeps task outputs in memory only within `budget` (shared by the service's jobs).
    #[must_use]
    pub fn with_budget(mut self, budget: OutputBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The job.
    #[must_use]
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Its resource group.
    #[must_use]
    pub fn group(&self) -> ResourceGroupId {
        self.group
    }

    /// Its state as of the last accepted transition.
    #[must_use]
    pub fn state(&self) -> JobState {
        self.state
    }

    /// Task counts by state, plus the job state.
    #[must_use]
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// When the job reached a terminal state.
    #[must_use]
    pub fn ended_at_ms(&self) -> Option<i64> {
        self.ended_at_ms
    }

    /// Whether the job has a commit / cleanup task.
    #[must_use]
    pub fn has_termination(&self, task: TaskId) -> bool {
        match task {
            TaskId::Commit => self.commit.is_some(),
            TaskId::Cleanup => self.cleanup.is_some(),
            TaskId::Index(_) => false,
        }
    }

    /// The job outputs frame, once known.
    #[must_use]
    pub fn job_outputs(&self) -> Option<&[u8]> {
        self.job_outputs.as_deref()
    }

    /// Holds `charge` (this job's memory, see [`Self::memory_estimate`]) until the job ends.
    #[must_use]
    pub fn with_memory(mut self, charge: Charge) -> Self {
        self.memory = Some(charge);
        self
    }

    /// The bytes a job of `graph` will hold in memory for its graph and its tasks' control
    /// (what [`Self::heap_bytes`] measures once it is built), not counting input and output
    /// values.
    #[must_use]
    pub fn memory_estimate(graph: &JobGraph) -> u64 {
        use std::mem::size_of;
        let per_task = size_of::<TaskControl>() + size_of::<Output>() + 2 * size_of::<u32>();
        (graph.heap_bytes() + graph.len() * per_task) as u64
    }

    /// Bytes this job holds on the heap for its graph and its tasks' control, not counting input
    /// and output values.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.graph.heap_bytes()
            + self.tasks.capacity() * size_of::<TaskControl>()
            + self.outputs.capacity() * size_of::<Output>()
            + (self.unread_by.capacity() + self.input_offsets.capacity()) * 4
            + self.job_inputs.capacity() * size_of::<Vec<u8>>()
    }

    /// Whether every regular task succeeded and its outputs are persisted.
    #[must_use]
    pub fn all_tasks_persisted(&self) -> bool {
        self.progress.persisted as usize == self.tasks.len()
    }

    fn control(&self, task: TaskId) -> Result<&TaskControl> {
        let found = match task {
            TaskId::Index(i) => usize::try_from(i).ok().and_then(|i| self.tasks.get(i)),
            TaskId::Commit => self.commit.as_ref(),
            TaskId::Cleanup => self.cleanup.as_ref(),
        };
        found.ok_or(Error::NoSuchTask { job: self.id, task })
    }

    fn control_mut(&mut self, task: TaskId) -> Result<&mut TaskControl> {
        let id = self.id;
        let found = match task {
            TaskId::Index(i) => usize::try_from(i).ok().and_then(|i| self.tasks.get_mut(i)),
            TaskId::Commit => self.commit.as_mut(),
            TaskId::Cleanup => self.cleanup.as_mut(),
        };
        found.ok_or(Error::NoSuchTask { job: id, task })
    }

    /// Sets a task's state, keeping the progress counts right. Every move is one of the table
    /// of [`TaskState::can_become`].
    fn set_task(&mut self, task: TaskId, to: TaskState) {
        let Ok(control) = self.control_mut(task) else {
            return;
        };
        let from = std::mem::replace(&mut control.state, to);
        debug_assert!(
            from.can_become(to),
            "task {task}: {from} -> {to} is not a task state transition"
        );
        if matches!(task, TaskId::Index(_)) {
            self.progress.moved(from, to);
        }
    }

    /// Checks that `task` may run in the job's current state.
    fn check_phase(&self, task: TaskId) -> Result<()> {
        let running = match task {
            TaskId::Index(_) => self.state == JobState::Running,
            TaskId::Commit => self.state == JobState::CommitReady,
            TaskId::Cleanup => self.state == JobState::CleanupReady,
        };
        // Not running first: a job that ended keeps no tasks (see `shed`).
        if !running {
            return Err(Stale::JobNotRunning {
                job: self.id,
                task,
                state: self.state,
            }
            .into());
        }
        self.control(task).map(drop)
    }

    /// Registers a new instance of `task` and returns what it needs to run.
    ///
    /// # Errors
    /// [`Error::NoSuchTask`]; [`Stale`] if the job is not in the task's phase, the task is
    /// terminal or not ready, or `max_instances` instances run already.
    pub fn register(&mut self, task: TaskId, instance: TaskInstanceId) -> Result<ExecutionContext> {
        self.check_phase(task)?;
        let id = self.id;
        let max_instances = self.policy(task)?.max_instances;
        let control = self.control_mut(task)?;
        control.admit(id, task, max_instances)?;
        control.instances.push(instance);
        self.set_task(task, TaskState::Running);
        self.context(task, instance)
    }

    /// What live `instance` of `task` needs to run, again: a retried registration (its answer
    /// was lost) gets the instance it already has instead of meeting the instance limit.
    ///
    /// # Errors
    /// As [`Self::register`]; [`Stale::UnknownInstance`] once the instance is gone.
    pub fn registered_again(
        &self,
        task: TaskId,
        instance: TaskInstanceId,
    ) -> Result<ExecutionContext> {
        self.check_phase(task)?;
        self.control(task)?
            .check_instance(self.id, task, instance)?;
        self.context(task, instance)
    }

    /// The execution context of `instance` of `task`.
    fn context(&self, task: TaskId, instance: TaskInstanceId) -> Result<ExecutionContext> {
        let id = self.id;
        let policy = *self.policy(task)?;
        let (inputs, unresolved, job_outputs) = match task {
            TaskId::Index(i) => match self.inputs_of(usize::try_from(i).unwrap_or(usize::MAX))? {
                Ok(frame) => (frame, None, None),
                Err(parts) => (Vec::new(), Some(parts), None),
            },
            TaskId::Commit | TaskId::Cleanup => {
                let outputs = (task == TaskId::Commit)
                    .then(|| self.job_outputs.clone().unwrap_or_else(empty_frame));
                (empty_frame(), None, outputs)
            }
        };
        let (package, function) = self
            .names(task)
            .ok_or(Error::NoSuchTask { job: id, task })?;
        let (package, function) = (package.to_owned(), function.to_owned());
        Ok(ExecutionContext {
            instance,
            package,
            function,
            policy,
            inputs,
            unresolved,
            job_outputs,
        })
    }

    /// Task `index`'s inputs frame, or — when some of them are only in the database — the
    /// parts to assemble it from.
    fn inputs_of(&self, index: usize) -> Result<std::result::Result<Vec<u8>, Vec<Part>>> {
        let Some(sources) = self.graph.sources(index) else {
            let start = self.input_offsets[index] as usize;
            let values = self.job_inputs[start..start + self.graph.input_types(index).len()]
                .iter()
                .map(Vec::as_slice);
            return Ok(Ok(encode_frame(values)?));
        };
        let not_ready = || {
            Error::Stale(Stale::TaskNotReady {
                job: self.id,
                task: TaskId::Index(index as u64),
            })
        };
        if sources
            .iter()
            .any(|s| !self.outputs[s.task as usize].is_present())
        {
            return Err(not_ready());
        }
        self.frame_or_parts(sources.iter().map(|s| (s.task as usize, s.output as usize)))
            .ok_or_else(not_ready)?
    }

    /// The frame of the outputs at `(task, position)`, or the parts to assemble it from when
    /// some are only in the database. `None` if a position does not exist.
    fn frame_or_parts(
        &self,
        at: impl Iterator<Item = (usize, usize)> + Clone,
    ) -> Option<Result<std::result::Result<Vec<u8>, Vec<Part>>>> {
        let held: Option<Vec<&[u8]>> = at.clone().map(|(t, p)| self.outputs[t].held(p)).collect();
        if let Some(values) = held {
            return Some(encode_frame(values.into_iter()).map(Ok));
        }
        let parts = at
            .map(|(t, p)| match &self.outputs[t] {
                Output::Held { .. } => self.outputs[t].held(p).map(|v| Part::Value(v.to_vec())),
                Output::Stored => Some(Part::Stored {
                    task: t as u64,
                    output: p,
                }),
                Output::Missing => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Ok(Err(parts)))
    }

    /// Checks a success report of a regular task without changing anything, and returns the
    /// decoded output values. `Err(Err(..))` is a stale or unknown report; `Ok(Err(reason))`
    /// means the outputs do not fit the task's declaration (the caller counts it as a failure).
    ///
    /// # Errors
    /// See above.
    pub fn check_success(
        &self,
        task: TaskId,
        instance: TaskInstanceId,
        outputs: &[u8],
    ) -> Result<std::result::Result<Values, String>> {
        Ok(match self.declared_outputs(task, instance)? {
            Some(declared) => decode_outputs(Arc::new(outputs.to_vec()), declared),
            None => Ok(Values::default()),
        })
    }

    /// Checks that a success report of `instance` is current and returns how many outputs the
    /// task declares (`None` for commit and cleanup, whose outputs are ignored): the first half
    /// of [`Self::check_success`], for a caller that checks the outputs outside the job's lock.
    ///
    /// # Errors
    /// As [`Self::check_success`].
    pub fn declared_outputs(
        &self,
        task: TaskId,
        instance: TaskInstanceId,
    ) -> Result<Option<usize>> {
        self.check_phase(task)?;
        self.control(task)?
            .check_instance(self.id, task, instance)?;
        let TaskId::Index(i) = task else {
            return Ok(None);
        };
        Ok(Some(
            self.graph
                .output_count(usize::try_from(i).unwrap_or(usize::MAX)),
        ))
    }

    /// Marks a task succeeded by `instance` with `values` (checked by [`Self::check_success`]).
    /// Children are released separately by [`Self::release_children`], once the completion is
    /// persisted.
    ///
    /// # Errors
    /// As [`Self::check_success`] (the state may have changed since).
    pub fn succeed(
        &mut self,
        task: TaskId,
        instance: TaskInstanceId,
        values: Values,
    ) -> Result<()> {
        self.check_phase(task)?;
        let id = self.id;
        self.control_mut(task)?.check_instance(id, task, instance)?;
        self.control_mut(task)?.instances.clear();
        self.set_task(task, TaskState::Succeeded);
        if let TaskId::Index(i) = task {
            let i = usize::try_from(i).unwrap_or(usize::MAX);
            self.outputs[i] = if self.unread_by[i] == 0 && !self.graph.children(i).is_empty() {
                Output::Stored
            } else {
                Output::keep(values, &self.budget)
            };
        }
        Ok(())
    }

    /// Undoes [`Self::succeed`] when persisting the completion failed: the task is ready again
    /// (returns whether to queue it).
    pub fn revert_success(&mut self, index: u64) -> bool {
        let task = TaskId::Index(index);
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        let succeeded = self
            .control(task)
            .is_ok_and(|t| t.state == TaskState::Succeeded);
        if !succeeded || self.state != JobState::Running {
            return false;
        }
        self.outputs[i] = Output::Missing;
        self.set_task(task, TaskState::Ready);
        true
    }

    /// Counts a persisted success and returns the children that became ready. Does nothing once
    /// the job left `Running` (cancelled or failed meanwhile).
    pub fn release_children(&mut self, index: usize) -> Vec<TaskId> {
        self.progress.persisted += 1;
        // Out of `Running`, outputs were evicted and an ended job keeps no graph.
        if self.state != JobState::Running {
            return Vec::new();
        }
        self.read_parents(index);
        let mut ready = Vec::new();
        for at in 0..self.graph.children(index).len() {
            let child = self.graph.children(index)[at];
            let control = &mut self.tasks[child as usize];
            control.unfinished_parents = control.unfinished_parents.saturating_sub(1);
            if control.unfinished_parents == 0 && control.state == TaskState::Pending {
                self.set_task(TaskId::Index(u64::from(child)), TaskState::Ready);
                ready.push(TaskId::Index(u64::from(child)));
            }
        }
        ready
    }

    /// Task `index` succeeded for good: each of its parents has one child fewer to read its
    /// outputs, and a parent none of whose children still reads them leaves memory.
    fn read_parents(&mut self, index: usize) {
        for p in distinct_parents(&self.graph, index) {
            self.unread_by[p] = self.unread_by[p].saturating_sub(1);
            if self.unread_by[p] == 0 {
                self.outputs[p].evict();
            }
        }
    }

    /// Records a failed instance. Spends a retry; when none is left, or the failure is not
    /// [worth retrying](FailureKind::worth_retrying), the task fails and the returned
    /// [`JobError`] is what the job fails with.
    ///
    /// # Errors
    /// [`Error::NoSuchTask`] or [`Stale`], as for a success.
    pub fn fail(
        &mut self,
        task: TaskId,
        instance: TaskInstanceId,
        kind: FailureKind,
        message: &str,
    ) -> Result<FailOutcome> {
        self.check_phase(task)?;
        let id = self.id;
        let max_retries = self.policy(task)?.max_retries;
        let control = self.control_mut(task)?;
        control.check_instance(id, task, instance)?;
        control.instances.retain(|i| *i != instance);
        control.failures += 1;
        if control.failures <= max_retries && kind.worth_retrying() {
            let idle = control.instances.is_empty();
            if idle {
                self.set_task(task, TaskState::Ready);
            }
            return Ok(FailOutcome::Retry);
        }
        let attempts = control.failures;
        self.set_task(task, TaskState::Failed);
        let (package, function) = self.names(task).unwrap_or(("?", "?"));
        Ok(FailOutcome::Exhausted(JobError {
            message: format!(
                "task {task} ({package}::{function}) failed after {attempts} attempt(s) [{kind}]: {message}"
            ),
            kind,
        }))
    }

    /// The package and function of `task`.
    fn names(&self, task: TaskId) -> Option<(&str, &str)> {
        match task {
            TaskId::Index(i) => usize::try_from(i)
                .ok()
                .filter(|&i| i < self.graph.len())
                .map(|i| (self.graph.package(i), self.graph.function(i))),
            TaskId::Commit => self.graph.commit().map(|t| (&*t.package, &*t.function)),
            TaskId::Cleanup => self.graph.cleanup().map(|t| (&*t.package, &*t.function)),
        }
    }

    /// The policy of `task`.
    fn policy(&self, task: TaskId) -> Result<&Policy> {
        let found = match task {
            TaskId::Index(i) => usize::try_from(i)
                .ok()
                .filter(|&i| i < self.graph.len())
                .map(|i| self.graph.policy(i)),
            TaskId::Commit => self.graph.commit().map(|t| &t.policy),
            TaskId::Cleanup => self.graph.cleanup().map(|t| &t.policy),
        };
        found.ok_or(Error::NoSuchTask { job: self.id, task })
    }

    /// Drops an instance without spending a retry (storage could not hand it its inputs; an
    /// instance lost with its execution manager goes through [`Self::lose`]). Returns whether
    /// the task should be queued again.
    pub fn force_remove(&mut self, task: TaskId, instance: TaskInstanceId) -> bool {
        let Ok(control) = self.control_mut(task) else {
            return false;
        };
        let before = control.instances.len();
        control.instances.retain(|i| *i != instance);
        let removed = control.instances.len() != before;
        let idle = control.state == TaskState::Running && control.instances.is_empty();
        if removed && idle {
            self.set_task(task, TaskState::Ready);
        }
        removed
            && self.check_phase(task).is_ok()
            && !self.control(task).is_ok_and(|t| t.state.is_terminal())
    }

    /// Whether `task` still runs and may take another instance (for a soft-timeout re-enqueue).
    #[must_use]
    pub fn wants_more(&self, task: TaskId) -> bool {
        self.check_phase(task).is_ok() && self.control(task).is_ok_and(|t| !t.state.is_terminal())
    }
}

/// The tasks whose outputs task `index` reads, each once.
fn distinct_parents(graph: &JobGraph, index: usize) -> Vec<usize> {
    let mut parents: Vec<usize> = graph
        .sources(index)
        .unwrap_or_default()
        .iter()
        .map(|s| s.task as usize)
        .collect();
    parents.sort_unstable();
    parents.dedup();
    parents
}

/// Frames values, mapping the (impossible past the gRPC cap) overflow to a request error.
fn encode_frame<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Vec<u8>> {
    frame::encode(values).map_err(|e| Error::BadRequest(e.to_string()))
}

/// The empty frame (count 0): what commit and cleanup tasks get as inputs.
fn empty_frame() -> Vec<u8> {
    vec![0, 0, 0, 0]
}

/// Checks an outputs frame of `declared` values, each one complete MessagePack value, and returns
/// the values as slices of it (no copy); `Err` says why not. Walks every byte once in constant
/// memory.
pub fn decode_outputs(
    outputs: Arc<Vec<u8>>,
    declared: usize,
) -> std::result::Result<Values, String> {
    let values = frame::decode(&outputs).map_err(|e| format!("malformed outputs frame: {e}"))?;
    if values.len() != declared {
        return Err(format!(
            "task returned {} output(s), the graph declares {declared}",
            values.len()
        ));
    }
    for (position, value) in values.iter().enumerate() {
        msgpack::check_one_value(value)
            .map_err(|e| format!("output {position} is not one MessagePack value: {e}"))?;
    }
    let base = outputs.as_ptr() as usize;
    let ranges = values
        .iter()
        .map(|v| {
            let start = v.as_ptr() as usize - base;
            start..start + v.len()
        })
        .collect();
    Ok(Values::new(outputs, ranges))
}
