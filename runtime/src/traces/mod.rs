//! OpenTelemetry traces of jobs and task instances, exported over OTLP/gRPC (see `docs/config.md`,
//! table `[traces]`, and `docs/deploy.md`). Off unless a service's config has a `[traces]`
//! table: then [`Traces`] is empty, every call on it is one branch, and no span is built.
//!
//! One trace per job. Each service emits the spans of the stages it sees, once they are over,
//! with explicit ids derived from the job ([`ids`]), so the spans of one task join up across
//! processes without extra calls or ids on the wire:
//!
//! | span | service | parent | covers |
//! | --- | --- | --- | --- |
//! | `job` | storage | — | registered → terminal state |
//! | `task.queued` | storage | job | ready in a lane → taken by a scheduler poll |
//! | `task.dispatched` | scheduler | job | decided → handed to an EM |
//! | `task.instance` | EM | job | assignment received → outcome acknowledged |
//! | `task.registered` | storage | instance | the instance's registration |
//! | `task.executed` | EM | instance | time in an executor slot |
//! | `task.reported` | EM | instance | outcome finished → storage acknowledged it |
//! | `task.persisted` | storage | instance | outcome received → stored (group commit) |
//!
//! Spans go straight to the SDK's batch span processor (a bounded queue and its own thread): a
//! full queue drops spans, it never blocks the caller. [`Traces::shutdown`] flushes.
//!
//! * [`config`] — the `[traces]` table;
//! * [`ids`] — trace and span ids from (cluster, job, task, instance);
//! * `export.rs` — the OTLP exporter and the processor.

pub mod config;
mod export;
pub mod ids;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, IdGenerator as _, RandomIdGenerator, SpanData, SpanEvents, SpanLinks,
    SpanProcessor as _,
};
use silk_tdl::{JobId, TaskId, TaskInstanceId};

pub use config::{Endpoint, TracesConfig};
pub use export::Error;

/// Attribute holding a failure kind; a span with it has status `Error`.
pub const FAILURE_KIND: &str = "silk.failure_kind";

/// Which service emits the spans (the `service.name` of the OTLP resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `silk-storage`.
    Storage,
    /// `silk-scheduler`.
    Scheduler,
    /// `silk-em`.
    Em,
}

impl Service {
    /// The `service.name`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Storage => "silk-storage",
            Self::Scheduler => "silk-scheduler",
            Self::Em => "silk-em",
        }
    }
}

/// Where a stage span hangs in its job's trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// Under the job span.
    Job,
    /// Under a task instance's span.
    Instance(TaskId, TaskInstanceId),
}

/// A service's span sink: empty (off) or an exporter. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Traces {
    inner: Option<Arc<Sink>>,
}

struct Sink {
    processor: BatchSpanProcessor,
    cluster: String,
    ratio: f64,
    scope: InstrumentationScope,
    ids: RandomIdGenerator,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("cluster", &self.cluster)
            .field("ratio", &self.ratio)
            .finish_non_exhaustive()
    }
}

impl Traces {
    /// No tracing.
    #[must_use]
    pub const fn off() -> Self {
        Self { inner: None }
    }

    /// Starts exporting `service`'s spans as `config` says, or stays off for `None`. Must run
    /// inside a tokio runtime (the gRPC channel lives on it).
    ///
    /// # Errors
    /// An unreadable `ca_file` or an exporter the SDK refuses to build.
    pub fn start(config: Option<&TracesConfig>, service: Service) -> Result<Self, Error> {
        let Some(config) = config else {
            tracing::info!(service = service.name(), "traces off (no [traces] table)");
            return Ok(Self::off());
        };
        let processor = export::processor(config, service)?;
        tracing::info!(
            service = service.name(),
            endpoint = config.otlp_endpoint.as_str(),
            sample_ratio = config.sample_ratio.get(),
            "exporting traces"
        );
        Ok(Self {
            inner: Some(Arc::new(Sink {
                processor,
                cluster: config.cluster.clone(),
                ratio: config.sample_ratio.get(),
                scope: InstrumentationScope::builder("silk")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
                ids: RandomIdGenerator::default(),
            })),
        })
    }

    /// Whether spans are exported.
    #[inline]
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// The wall clock when on (a span's start), `None` when off.
    #[inline]
    #[must_use]
    pub fn now(&self) -> Option<SystemTime> {
        self.inner.as_ref().map(|_| SystemTime::now())
    }

    /// Emits `job`'s span (the root of its trace).
    pub fn job(
        &self,
        job: JobId,
        start: SystemTime,
        end: SystemTime,
        attributes: impl FnOnce(&mut Vec<KeyValue>),
    ) {
        self.emit("job", job, None, None, start, end, attributes);
    }

    /// Emits a task instance's span (parent: the job).
    pub fn instance(
        &self,
        job: JobId,
        task: TaskId,
        instance: TaskInstanceId,
        start: SystemTime,
        end: SystemTime,
        attributes: impl FnOnce(&mut Vec<KeyValue>),
    ) {
        let own = Some((task, instance));
        self.emit(
            "task.instance",
            job,
            own,
            Some(Parent::Job),
            start,
            end,
            attributes,
        );
    }

    /// Emits a stage span `name` of `job` under `parent`. `attributes` runs only when the span
    /// is built (tracing on, job sampled); an attribute [`FAILURE_KIND`] marks it failed.
    pub fn stage(
        &self,
        name: &'static str,
        job: JobId,
        parent: Parent,
        start: SystemTime,
        end: SystemTime,
        attributes: impl FnOnce(&mut Vec<KeyValue>),
    ) {
        self.emit(name, job, None, Some(parent), start, end, attributes);
    }

    #[expect(clippy::too_many_arguments, reason = "one span's fields")]
    fn emit(
        &self,
        name: &'static str,
        job: JobId,
        own: Option<(TaskId, TaskInstanceId)>,
        parent: Option<Parent>,
        start: SystemTime,
        end: SystemTime,
        attributes: impl FnOnce(&mut Vec<KeyValue>),
    ) {
        let Some(sink) = &self.inner else { return };
        let trace = ids::trace_id(&sink.cluster, job);
        if !ids::sampled(trace, sink.ratio) {
            return;
        }
        let id = match (own, parent) {
            (Some((task, instance)), _) => ids::instance_span_id(trace, task, instance),
            (None, None) => ids::job_span_id(trace),
            (None, Some(_)) => sink.ids.new_span_id(),
        };
        let parent_span_id = match parent {
            None => SpanId::INVALID,
            Some(Parent::Job) => ids::job_span_id(trace),
            Some(Parent::Instance(task, instance)) => ids::instance_span_id(trace, task, instance),
        };
        let mut list = Vec::with_capacity(8);
        list.push(KeyValue::new("silk.job_id", job_attr(job)));
        attributes(&mut list);
        let status = list
            .iter()
            .find(|kv| kv.key.as_str() == FAILURE_KIND)
            .map_or(Status::Unset, |kv| Status::error(kv.value.to_string()));
        sink.processor.on_end(SpanData {
            span_context: SpanContext::new(
                trace,
                id,
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: start,
            end_time: end.max(start),
            attributes: list,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: sink.scope.clone(),
        });
    }

    /// Exports what is queued and stops the exporter (waits at most its export timeout). Call
    /// once the service stopped emitting; a no-op when off.
    pub async fn shutdown(&self) {
        let Some(sink) = self.inner.clone() else {
            return;
        };
        let done = tokio::task::spawn_blocking(move || sink.processor.shutdown()).await;
        match done {
            Ok(Ok(())) => tracing::info!("traces flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing traces failed"),
            Err(e) => tracing::warn!(error = %e, "flushing traces panicked"),
        }
    }
}

/// A job id as a span attribute (OTLP integers are signed).
fn job_attr(job: JobId) -> i64 {
    i64::try_from(job.0).unwrap_or(i64::MAX)
}

/// Common attributes of a task's spans: its id (`"3"`, `"commit"`, `"cleanup"`) and, for a
/// regular task, its index.
pub fn task_attributes(list: &mut Vec<KeyValue>, task: TaskId) {
    list.push(KeyValue::new("silk.task", task.to_string()));
    if let TaskId::Index(i) = task {
        list.push(KeyValue::new(
            "silk.task_index",
            i64::try_from(i).unwrap_or(i64::MAX),
        ));
    }
}

/// A `u64` id as an attribute value.
#[must_use]
pub fn id_attr(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// `SystemTime::now() - elapsed` for a span that began `elapsed` ago (by a monotonic clock).
#[must_use]
pub fn since(elapsed: std::time::Duration, now: SystemTime) -> SystemTime {
    now.checked_sub(elapsed).unwrap_or(now)
}
