//! The execution manager's metrics: tasks started, succeeded and failed (by failure kind) per
//! package and backend, task durations, wasm fuel, bytes in and out, slots, executor restarts and
//! outcome-report retries.
//! Slot threads resolve a package's handles once ([`PoolMetrics::package`], through their own
//! cache) and then only add to atomics.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use silk_ipc::{FailureKind, TaskFailure};

use super::histogram::DurationHistogram;
use super::labels::{Bounded, LocalCache, MAX_PACKAGES, OTHER};

/// Labels of a task series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    package: String,
    backend: &'static str,
}

/// Labels of a failed-task series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    package: String,
    backend: &'static str,
    kind: &'static str,
}

/// Labels of a wasm package series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PackageLabels {
    package: String,
}

#[derive(Debug, Default, Clone)]
struct Families {
    started: Family<TaskLabels, Counter>,
    succeeded: Family<TaskLabels, Counter>,
    failed: Family<FailureLabels, Counter>,
    duration: Family<TaskLabels, DurationHistogram>,
    fuel: Family<PackageLabels, Counter>,
    input_bytes: Family<TaskLabels, Counter>,
    output_bytes: Family<TaskLabels, Counter>,
}

/// One package's handles, resolved when the package is first seen.
#[derive(Debug)]
pub struct PackageHandles {
    started: Counter,
    succeeded: Counter,
    /// By [`FailureKind::ALL`] order.
    failed: Vec<Counter>,
    duration: DurationHistogram,
    fuel: Counter,
    input_bytes: Counter,
    output_bytes: Counter,
}

impl PackageHandles {
    fn new(families: &Families, package: &str, backend: &'static str) -> Self {
        let task = TaskLabels {
            package: package.to_owned(),
            backend,
        };
        let failed = FailureKind::ALL
            .iter()
            .map(|kind| {
                families.failed.get_or_create_owned(&FailureLabels {
                    package: package.to_owned(),
                    backend,
                    kind: kind.as_str(),
                })
            })
            .collect();
        Self {
            started: families.started.get_or_create_owned(&task),
            succeeded: families.succeeded.get_or_create_owned(&task),
            failed,
            duration: families.duration.get_or_create_owned(&task),
            fuel: families.fuel.get_or_create_owned(&PackageLabels {
                package: package.to_owned(),
            }),
            input_bytes: families.input_bytes.get_or_create_owned(&task),
            output_bytes: families.output_bytes.get_or_create_owned(&task),
        }
    }

    /// A task of this package starts with `input_bytes` of inputs.
    pub fn started(&self, input_bytes: usize) {
        self.started.inc();
        self.input_bytes.inc_by(input_bytes as u64);
    }

    /// A task of this package ended after `elapsed` in its slot, having burnt `fuel` (wasm with
    /// fuel metering); `outputs` is the length of its outputs on success.
    pub fn finished(
        &self,
        outcome: Result<usize, &TaskFailure>,
        elapsed: Duration,
        fuel: Option<u64>,
    ) {
        match outcome {
            Ok(outputs) => {
                self.succeeded.inc();
                self.output_bytes.inc_by(outputs as u64);
            }
            Err(failure) => {
                let kind = failure.kind();
                if let Some(i) = FailureKind::ALL.iter().position(|k| *k == kind) {
                    self.failed[i].inc();
                }
            }
        }
        self.duration.observe(elapsed);
        if let Some(fuel) = fuel {
            self.fuel.inc_by(fuel);
        }
    }
}

type BackendOf = dyn Fn(&str) -> Option<&'static str> + Send + Sync;

/// The metrics of one slot pool (one EM). Cheap to clone; clones share the counts.
#[derive(Debug, Clone)]
pub struct PoolMetrics {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    families: Families,
    packages: Bounded<PackageHandles>,
    slots: Gauge,
    busy: Gauge,
    restarts: Counter,
    report_retries: Counter,
}

impl PoolMetrics {
    /// Metrics of a pool whose packages run on the backend `backend_of` names (`"native"` or
    /// `"wasm"`), or `None` for a package the pool does not have (labelled [`OTHER`]).
    pub fn new(backend_of: impl Fn(&str) -> Option<&'static str> + Send + Sync + 'static) -> Self {
        let families = Families::default();
        let backend_of: Arc<BackendOf> = Arc::new(backend_of);
        let admit = {
            let backend_of = backend_of.clone();
            move |package: &str| backend_of(package).is_some()
        };
        let make = {
            let families = families.clone();
            move |package: &str| {
                let backend = backend_of(package).unwrap_or(OTHER);
                PackageHandles::new(&families, package, backend)
            }
        };
        Self {
            inner: Arc::new(PoolInner {
                families,
                packages: Bounded::new(MAX_PACKAGES, admit, make),
                slots: Gauge::default(),
                busy: Gauge::default(),
                restarts: Counter::default(),
                report_retries: Counter::default(),
            }),
        }
    }

    /// Registers the pool's metrics (names prefixed `silk_em_`).
    pub fn register(&self, registry: &mut Registry) {
        let i = &self.inner;
        let f = &i.families;
        let r = registry.sub_registry_with_prefix("silk_em");
        r.register(
            "tasks_started",
            "Tasks started on an executor slot",
            f.started.clone(),
        );
        r.register(
            "tasks_succeeded",
            "Tasks that succeeded",
            f.succeeded.clone(),
        );
        r.register(
            "tasks_failed",
            "Tasks that failed, by failure kind",
            f.failed.clone(),
        );
        r.register_with_unit(
            "task_duration",
            "Time a task spent in its executor slot",
            Unit::Seconds,
            f.duration.clone(),
        );
        r.register(
            "wasm_fuel_consumed",
            "Wasm fuel burnt by tasks (with fuel metering on)",
            f.fuel.clone(),
        );
        r.register_with_unit(
            "task_input",
            "Bytes of task inputs handed to executors",
            Unit::Bytes,
            f.input_bytes.clone(),
        );
        r.register_with_unit(
            "task_output",
            "Bytes of task outputs returned by executors",
            Unit::Bytes,
            f.output_bytes.clone(),
        );
        r.register("slots", "Executor slots alive", i.slots.clone());
        r.register(
            "slots_busy",
            "Executor slots running a task",
            i.busy.clone(),
        );
        r.register(
            "executor_restarts",
            "Native executor processes restarted after a crash, timeout or broken protocol",
            i.restarts.clone(),
        );
        r.register(
            "report_retries",
            "Outcome reports sent again after a transient failure (storage unreachable or busy)",
            i.report_retries.clone(),
        );
    }

    /// The handles of `package`, through the calling thread's `cache`.
    pub fn package(
        &self,
        cache: &mut LocalCache<PackageHandles>,
        package: &str,
    ) -> Arc<PackageHandles> {
        cache.get(&self.inner.packages, package)
    }

    /// A slot thread started (`+1`) or ended (`-1`).
    pub fn slot_alive(&self, delta: i64) {
        self.inner.slots.inc_by(delta);
    }

    /// A slot began (`+1`) or finished (`-1`) a task.
    pub fn slot_busy(&self, delta: i64) {
        self.inner.busy.inc_by(delta);
    }

    /// The counter of outcome reports sent again (`silk_em_report_retries_total`).
    #[must_use]
    pub fn report_retries(&self) -> Counter {
        self.inner.report_retries.clone()
    }

    /// `n` native executors were restarted.
    pub fn executor_restarts(&self, n: u64) {
        if n > 0 {
            self.inner.restarts.inc_by(n);
        }
    }
}

impl Default for PoolMetrics {
    /// Metrics that label every package `wasm` (pools of tests without a package policy).
    fn default() -> Self {
        Self::new(|_| Some("wasm"))
    }
}
