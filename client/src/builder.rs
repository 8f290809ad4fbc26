//! [`GraphBuilder`]: builds a [`TaskGraph`] (the model of `docs/task-graph.md`) task by task,
//! wiring outputs to inputs through [`TaskHandle`]s, so task indexes never have to be written by
//! hand. [`GraphBuilder::build`] checks every rule with [`TaskGraph::validate`].

use silk_core::graph::{
    GraphError, Location, Policy, SCHEMA_VERSION, Source, TaskGraph, TaskSpec, TerminationSpec,
    TypeDesc,
};

/// Builds a task graph. Tasks are added in order, so a task can only read outputs of tasks
/// added before it, and the graph is acyclic by construction.
///
/// ```
/// use silk_client::GraphBuilder;
/// use silk_client::graph::TypeDesc;
///
/// let mut g = GraphBuilder::new();
/// let a = g.task("fixtures", "fibonacci").input(TypeDesc::Int64).output(TypeDesc::Int64).add();
/// g.task("fixtures", "fibonacci").input_from(a.output(0), TypeDesc::Int64).output(TypeDesc::Int64).add();
/// let graph = g.build().unwrap();
/// assert_eq!(graph.job_inputs(), [(0, 0)]);
/// assert_eq!(graph.job_outputs(), [(1, 0)]);
/// ```
#[derive(Debug, Default, Clone)]
pub struct GraphBuilder {
    tasks: Vec<TaskSpec>,
    commit: Option<TerminationSpec>,
    cleanup: Option<TerminationSpec>,
    /// The first wiring problem seen while adding tasks; reported by `build`.
    problem: Option<GraphError>,
}

/// A task added to a [`GraphBuilder`]: its index, and the way to name its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskHandle {
    index: usize,
}

impl TaskHandle {
    /// The task's id in the graph (its position).
    #[must_use]
    pub fn index(self) -> usize {
        self.index
    }

    /// Output `position` of this task, to wire into a later task's input.
    #[must_use]
    pub fn output(self, position: usize) -> Source {
        Source {
            task: self.index,
            output: position,
        }
    }
}

/// One task being declared; [`TaskBuilder::add`] puts it in the graph.
#[derive(Debug)]
#[must_use = "a task is only part of the graph once `add` is called"]
pub struct TaskBuilder<'g> {
    graph: &'g mut GraphBuilder,
    spec: TaskSpec,
    /// Per input: where it comes from (`None`: a job input).
    sources: Vec<Option<Source>>,
}

impl GraphBuilder {
    /// An empty graph.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts declaring a task running `function` of `package`.
    pub fn task(&mut self, package: &str, function: &str) -> TaskBuilder<'_> {
        TaskBuilder {
            graph: self,
            spec: TaskSpec {
                package: package.to_owned(),
                function: function.to_owned(),
                inputs: Vec::new(),
                outputs: Vec::new(),
                sources: None,
                policy: Policy::default(),
            },
            sources: Vec::new(),
        }
    }

    /// Sets the commit task (run once after every task succeeded). Returns it, so its policy
    /// can be changed: `g.commit("p", "f").policy.max_retries = 2`.
    pub fn commit(&mut self, package: &str, function: &str) -> &mut TerminationSpec {
        self.commit.insert(termination(package, function))
    }

    /// Sets the cleanup task (run once after the job is cancelled). Returns it, like
    /// [`GraphBuilder::commit`].
    pub fn cleanup(&mut self, package: &str, function: &str) -> &mut TerminationSpec {
        self.cleanup.insert(termination(package, function))
    }

    /// Tasks added so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task was added yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The graph, checked with [`TaskGraph::validate`].
    ///
    /// # Errors
    /// The first problem: a task mixing job inputs and wired inputs, or any rule of
    /// `docs/task-graph.md` (unknown source, mismatched types, no tasks, bad policy, ...).
    pub fn build(&self) -> Result<TaskGraph, GraphError> {
        if let Some(problem) = &self.problem {
            return Err(problem.clone());
        }
        let graph = TaskGraph {
            schema_version: SCHEMA_VERSION.to_owned(),
            tasks: self.tasks.clone(),
            commit: self.commit.clone(),
            cleanup: self.cleanup.clone(),
        };
        graph.validate()?;
        Ok(graph)
    }
}

fn termination(package: &str, function: &str) -> TerminationSpec {
    TerminationSpec {
        package: package.to_owned(),
        function: function.to_owned(),
        policy: Policy::default(),
    }
}

impl TaskBuilder<'_> {
    /// Adds an input fed by the job (this makes the task an input task).
    pub fn input(mut self, ty: TypeDesc) -> Self {
        self.spec.inputs.push(ty);
        self.sources.push(None);
        self
    }

    /// Adds an input fed by `source` (an earlier task's output, see [`TaskHandle::output`]).
    /// `ty` must equal the type of that output.
    pub fn input_from(mut self, source: Source, ty: TypeDesc) -> Self {
        self.spec.inputs.push(ty);
        self.sources.push(Some(source));
        self
    }

    /// Adds an output.
    pub fn output(mut self, ty: TypeDesc) -> Self {
        self.spec.outputs.push(ty);
        self
    }

    /// Sets the retry, instance and timeout policy (default: [`Policy::default`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.spec.policy = policy;
        self
    }

    /// Puts the task in the graph and returns its handle (which a task whose outputs nobody
    /// reads can ignore).
    pub fn add(self) -> TaskHandle {
        let Self {
            graph,
            mut spec,
            sources,
        } = self;
        let index = graph.tasks.len();
        let wired: Vec<Source> = sources.iter().flatten().copied().collect();
        if wired.len() == sources.len() && !wired.is_empty() {
            spec.sources = Some(wired);
        } else if !wired.is_empty() && graph.problem.is_none() {
            let input = sources.iter().position(Option::is_none).unwrap_or(0);
            graph.problem = Some(GraphError {
                location: Location::Input { task: index, input },
                reason: "a task cannot mix job inputs and inputs from other tasks".into(),
            });
        }
        graph.tasks.push(spec);
        TaskHandle { index }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixing_job_inputs_and_wired_inputs_is_rejected() {
        let mut g = GraphBuilder::new();
        let a = g
            .task("p", "a")
            .input(TypeDesc::Int64)
            .output(TypeDesc::Int64)
            .add();
        let b = g
            .task("p", "b")
            .input_from(a.output(0), TypeDesc::Int64)
            .input(TypeDesc::Int64)
            .add();
        assert_eq!(b.index(), 1);
        let e = g.build().unwrap_err();
        assert_eq!(e.location, Location::Input { task: 1, input: 1 });
        assert!(e.reason.contains("cannot mix"), "{e}");
    }

    #[test]
    fn empty_graph_and_bad_policy_are_rejected() {
        let g = GraphBuilder::new();
        assert!(g.is_empty());
        assert_eq!(g.build().unwrap_err().location, Location::Graph);

        let mut g = GraphBuilder::new();
        let policy = Policy {
            max_instances: 0,
            ..Policy::default()
        };
        g.task("p", "a").policy(policy).add();
        assert_eq!(g.len(), 1);
        assert_eq!(g.build().unwrap_err().location, Location::Task(0));
    }

    #[test]
    fn termination_tasks_and_sources() {
        let mut g = GraphBuilder::new();
        let a = g.task("p", "a").output(TypeDesc::Bytes).add();
        g.task("p", "b")
            .input_from(a.output(0), TypeDesc::Bytes)
            .add();
        g.commit("p", "commit").policy.max_retries = 3;
        g.cleanup("p", "cleanup");
        let graph = g.build().unwrap();
        assert_eq!(
            graph.tasks[0].sources, None,
            "a task without inputs reads no sources"
        );
        assert_eq!(
            graph.tasks[1].sources,
            Some(vec![Source { task: 0, output: 0 }])
        );
        assert_eq!(graph.commit.as_ref().map(|c| c.policy.max_retries), Some(3));
        assert_eq!(
            graph.cleanup.map(|c| c.function),
            Some("cleanup".to_owned())
        );
    }
}
