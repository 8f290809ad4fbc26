//! Storage's spans (see [`crate::traces`]): `job` when a job reaches a terminal state,
//! `task.queued` when a scheduler poll takes a lane entry, `task.registered` per registered
//! instance and `task.persisted` per reported outcome. All of it is one branch when tracing is
//! off.

use std::time::{Instant, SystemTime};

use opentelemetry::KeyValue;
use silk_ipc::FailureKind;
use silk_tdl::{JobId, TaskId, TaskInstanceId};

use super::db::{Db, JobError};
use super::lanes::{LaneKind, ReadyTask};
use super::service::{Job, Storage};
use crate::traces::{FAILURE_KIND, Parent, Traces, id_attr, since, task_attributes};
use silk_core::JobState;
use silk_core::ids::ExecutionManagerId;

/// The sink of a storage whose traces were never set.
static OFF: Traces = Traces::off();

impl<D: Db + Clone> Storage<D> {
    /// Emits this storage's spans to `traces` from now on (once; later calls are ignored).
    pub fn set_traces(&self, traces: Traces) {
        if traces.is_on() {
            self.shared.lanes.set_timed();
        }
        if self.shared.traces.set(traces).is_err() {
            tracing::warn!("storage traces already set; keeping the first");
        }
    }

    /// The span sink (off until [`Self::set_traces`]).
    pub(super) fn traces(&self) -> &Traces {
        self.shared.traces.get().unwrap_or(&OFF)
    }

    /// Long-polls one lane (as [`super::lanes::Lanes::poll`]), emitting `task.queued` for each entry
    /// taken.
    pub async fn poll_lane(
        &self,
        kind: LaneKind,
        max: usize,
        wait: std::time::Duration,
    ) -> Vec<ReadyTask> {
        let got = self.shared.lanes.poll_timed(kind, max, wait).await;
        let traces = self.traces();
        if let Some(now) = traces.now() {
            let mono = Instant::now();
            for (t, queued) in &got {
                // Entries queued before tracing was set carry no time: no span.
                let Some(queued) = queued else { continue };
                let start = since(mono.saturating_duration_since(*queued), now);
                traces.stage("task.queued", t.job, Parent::Job, start, now, |l| {
                    task_attributes(l, t.task);
                    l.push(KeyValue::new("silk.resource_group", id_attr(t.group.0)));
                });
            }
        }
        got.into_iter().map(|(t, _)| t).collect()
    }

    /// `job`'s span, once it reached terminal state `to`.
    pub(super) fn trace_job_end(&self, job: &Job, to: JobState, error: Option<&JobError>) {
        let traces = self.traces();
        let Some(now) = traces.now() else { return };
        traces.job(job.id, job.submitted, now, |l| {
            l.push(KeyValue::new("silk.resource_group", id_attr(job.group.0)));
            l.push(KeyValue::new("silk.job_state", to.as_str()));
            l.push(KeyValue::new(
                "silk.task_count",
                i64::try_from(job.with(|c| c.progress().total)).unwrap_or(i64::MAX),
            ));
            if let Some(e) = error {
                l.push(KeyValue::new(FAILURE_KIND, e.kind.as_str()));
            }
        });
    }

    /// `task.registered` of a new instance, from `start` (the call arrived) to now.
    #[expect(clippy::too_many_arguments, reason = "one span's fields")]
    pub(super) fn trace_registered(
        &self,
        start: Option<SystemTime>,
        job: JobId,
        task: TaskId,
        instance: TaskInstanceId,
        em: ExecutionManagerId,
        package: &str,
        function: &str,
    ) {
        let Some(start) = start else { return };
        let parent = Parent::Instance(task, instance);
        self.traces().stage(
            "task.registered",
            job,
            parent,
            start,
            SystemTime::now(),
            |l| {
                task_attributes(l, task);
                l.push(KeyValue::new("silk.instance_id", id_attr(instance.0)));
                l.push(KeyValue::new("silk.em_id", id_attr(em.0)));
                l.push(KeyValue::new("silk.package", package.to_owned()));
                l.push(KeyValue::new("silk.function", function.to_owned()));
            },
        );
    }

    /// `task.persisted` of a reported outcome, from `start` (the report arrived) to now (stored;
    /// for a success, after its group commit). `failure`: the reported failure's kind.
    pub(super) fn trace_persisted(
        &self,
        start: Option<SystemTime>,
        job: JobId,
        task: TaskId,
        instance: TaskInstanceId,
        failure: Option<FailureKind>,
    ) {
        let Some(start) = start else { return };
        let parent = Parent::Instance(task, instance);
        self.traces().stage(
            "task.persisted",
            job,
            parent,
            start,
            SystemTime::now(),
            |l| {
                task_attributes(l, task);
                l.push(KeyValue::new("silk.instance_id", id_attr(instance.0)));
                if let Some(kind) = failure {
                    l.push(KeyValue::new(FAILURE_KIND, kind.as_str()));
                }
            },
        );
    }
}
