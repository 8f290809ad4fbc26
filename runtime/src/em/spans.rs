//! The EM's spans (see [`crate::traces`]): `task.executed` when a task leaves its slot, and
//! `task.reported` and `task.instance` once storage acknowledged its outcome. Built only when
//! tracing is on: the pull loop then carries a [`Traced`] with each task and the reporter an
//! [`InstanceTrace`] with each outcome.

use std::time::SystemTime;

use opentelemetry::KeyValue;
use silk_tdl::{JobId, TaskId, TaskInstanceId};

use crate::scheduler::Assignment;
use crate::traces::{FAILURE_KIND, Parent, Traces, id_attr, task_attributes};
use silk_core::ids::ExecutionManagerId;

/// One task instance as its EM spans see it.
#[derive(Debug)]
pub struct InstanceTrace {
    /// The job.
    pub job: JobId,
    /// The task.
    pub task: TaskId,
    /// The instance storage registered.
    pub instance: TaskInstanceId,
    /// When the EM received the assignment.
    pub received: SystemTime,
    /// When the task left its slot (the outcome was ready to report).
    pub finished: SystemTime,
    /// The package.
    pub package: String,
    /// The function.
    pub function: String,
    /// `native` or `wasm`.
    pub backend: &'static str,
    /// The failure kind, for a failed task.
    pub failure: Option<&'static str>,
}

impl InstanceTrace {
    /// `task.reported` and `task.instance`, both ending now (storage acknowledged the outcome).
    pub(super) fn emit(&self, traces: &Traces, em: ExecutionManagerId) {
        let now = SystemTime::now();
        let parent = Parent::Instance(self.task, self.instance);
        traces.stage("task.reported", self.job, parent, self.finished, now, |l| {
            task_attributes(l, self.task);
            l.push(KeyValue::new("silk.instance_id", id_attr(self.instance.0)));
            l.push(KeyValue::new("silk.em_id", id_attr(em.0)));
        });
        traces.instance(
            self.job,
            self.task,
            self.instance,
            self.received,
            now,
            |l| {
                task_attributes(l, self.task);
                l.push(KeyValue::new("silk.instance_id", id_attr(self.instance.0)));
                l.push(KeyValue::new("silk.em_id", id_attr(em.0)));
                l.push(KeyValue::new("silk.package", self.package.clone()));
                l.push(KeyValue::new("silk.function", self.function.clone()));
                l.push(KeyValue::new("silk.backend", self.backend));
                if let Some(kind) = self.failure {
                    l.push(KeyValue::new(FAILURE_KIND, kind));
                }
            },
        );
    }
}

/// What a traced instance carries from its start: when it was received, its package, function
/// and backend, and the EM's span sink.
pub(super) type Traced = (SystemTime, String, String, &'static str, Traces);

/// Emits `task.executed` (from `began` to now) and returns the rest of the instance's trace.
pub(super) fn executed_span(
    em: ExecutionManagerId,
    a: &Assignment,
    instance: u64,
    (received, package, function, backend, traces): Traced,
    began: SystemTime,
    failure: Option<&'static str>,
) -> Box<InstanceTrace> {
    let instance = TaskInstanceId(instance);
    let now = SystemTime::now();
    let parent = Parent::Instance(a.task, instance);
    traces.stage("task.executed", a.job, parent, began, now, |l| {
        task_attributes(l, a.task);
        l.push(KeyValue::new("silk.instance_id", id_attr(instance.0)));
        l.push(KeyValue::new("silk.em_id", id_attr(em.0)));
        l.push(KeyValue::new("silk.package", package.clone()));
        l.push(KeyValue::new("silk.function", function.clone()));
        l.push(KeyValue::new("silk.backend", backend));
        if let Some(kind) = failure {
            l.push(KeyValue::new(FAILURE_KIND, kind));
        }
    });
    Box::new(InstanceTrace {
        job: a.job,
        task: a.task,
        instance,
        received,
        finished: now,
        package,
        function,
        backend,
        failure,
    })
}
