//! Storage's metrics: counters bumped where storage does the work (registrations, reports,
//! group commits, database refusals) and gauges read from storage's own state at each scrape
//! (jobs by state, ready tasks per lane and per resource group), so keeping them costs nothing
//! between scrapes.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::labels::OTHER;

/// Most resource groups labelled one by one in `silk_storage_ready_tasks_by_group`; the rest are
/// summed under `group="other"`.
pub const MAX_GROUPS: usize = 64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Database refusals and errors, counted by the one retry loop every database call goes through.
#[derive(Debug, Clone, Default)]
pub struct DbStats {
    retries: Family<ReasonLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
}

impl DbStats {
    /// The database refused a call for `reason` and it is tried again.
    pub fn retried(&self, reason: &'static str) {
        self.retries.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A database call failed: `"refused"` (refused on every try) or `"permanent"`.
    pub fn failed(&self, reason: &'static str) {
        self.errors.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Refusals retried so far, over every reason.
    #[must_use]
    pub fn retries(&self) -> u64 {
        ["deadlock", "lock_wait_timeout", "busy", "pool_timed_out"]
            .iter()
            .filter_map(|reason| self.retries.get(&ReasonLabels { reason }).map(|c| c.get()))
            .sum()
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "db_retries",
            "Database calls refused (deadlock, lock wait, busy, no connection) and tried again",
            self.retries.clone(),
        );
        r.register(
            "db_errors",
            "Database calls that failed: refused on every try, or a permanent error",
            self.errors.clone(),
        );
    }
}

/// Storage's counters. Cheap to clone; clones share the counts.
#[derive(Debug, Clone)]
pub struct StorageCounters {
    /// Task instances registered (handed to an execution manager).
    pub instances_registered: Counter,
    /// Bytes of task inputs handed out with registrations.
    pub input_bytes: Counter,
    /// Success reports accepted.
    pub reports_succeeded: Counter,
    /// Failure reports accepted.
    pub reports_failed: Counter,
    /// Bytes of task outputs received with success reports.
    pub output_bytes: Counter,
    /// Completions per group-commit transaction.
    pub commit_batch: Histogram,
    /// Time to write one group-commit batch (retries included).
    pub commit_seconds: Histogram,
    /// Group-commit batches written again after a transient refusal.
    pub commit_retries: Counter,
}

impl Default for StorageCounters {
    fn default() -> Self {
        Self {
            instances_registered: Counter::default(),
            input_bytes: Counter::default(),
            reports_succeeded: Counter::default(),
            reports_failed: Counter::default(),
            output_bytes: Counter::default(),
            commit_batch: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            commit_seconds: Histogram::new(super::histogram::LATENCY_BUCKETS.iter().copied()),
            commit_retries: Counter::default(),
        }
    }
}

impl StorageCounters {
    fn register(&self, r: &mut Registry) {
        r.register(
            "instances_registered",
            "Task instances registered for execution managers",
            self.instances_registered.clone(),
        );
        r.register_with_unit(
            "task_input",
            "Bytes of task inputs handed to execution managers",
            Unit::Bytes,
            self.input_bytes.clone(),
        );
        r.register(
            "reports_succeeded",
            "Task success reports accepted",
            self.reports_succeeded.clone(),
        );
        r.register(
            "reports_failed",
            "Task failure reports accepted",
            self.reports_failed.clone(),
        );
        r.register_with_unit(
            "task_output",
            "Bytes of task outputs received from execution managers",
            Unit::Bytes,
            self.output_bytes.clone(),
        );
        r.register(
            "group_commit_batch_size",
            "Task completions written per group-commit transaction",
            self.commit_batch.clone(),
        );
        r.register_with_unit(
            "group_commit_duration",
            "Time to write one group-commit batch, retries included",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        r.register(
            "group_commit_retries",
            "Group-commit batches written again after the database refused them transiently",
            self.commit_retries.clone(),
        );
    }
}

/// What storage's state holds at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Jobs in memory (not yet removed after retention) by state name.
    pub jobs_by_state: Vec<(&'static str, u64)>,
    /// Entries waiting in each inbound lane (`ready`, `commit`, `cleanup`).
    pub lanes: Vec<(&'static str, u64)>,
    /// Ready tasks of running jobs by resource group id.
    pub ready_by_group: Vec<(u64, u64)>,
    /// Bytes held under each memory budget (`jobs`, `outputs`).
    pub memory: Vec<(&'static str, u64)>,
}

type Snap = dyn Fn() -> Snapshot + Send + Sync;

/// Reads a [`Snapshot`] at each scrape.
struct Gauges(Box<Snap>);

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gauges")
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabels {
    lane: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemoryLabels {
    budget: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

fn gauge(v: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = (self.0)();
        let family = ConstGauge::new(0_i64).metric_type();
        let mut jobs = encoder.encode_descriptor(
            "silk_storage_jobs",
            "Jobs storage holds, by state (terminal ones until their retention ends)",
            None,
            family,
        )?;
        for (state, n) in &snap.jobs_by_state {
            gauge(*n).encode(jobs.encode_family(&StateLabels { state })?)?;
        }
        let mut lanes = encoder.encode_descriptor(
            "silk_storage_lane_tasks",
            "Entries waiting in storage's inbound lanes for the scheduler",
            None,
            family,
        )?;
        for (lane, n) in &snap.lanes {
            gauge(*n).encode(lanes.encode_family(&LaneLabels { lane })?)?;
        }
        let mut memory = encoder.encode_descriptor(
            "silk_storage_memory_bytes",
            "Bytes storage holds under each memory budget: unfinished jobs' graphs and task \
             controls (jobs), task outputs kept for the tasks that read them (outputs)",
            None,
            family,
        )?;
        for (budget, n) in &snap.memory {
            gauge(*n).encode(memory.encode_family(&MemoryLabels { budget })?)?;
        }
        let mut groups = encoder.encode_descriptor(
            "silk_storage_ready_tasks_by_group",
            "Ready tasks of running jobs, by resource group id",
            None,
            family,
        )?;
        let mut by_group = snap.ready_by_group;
        by_group.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let rest: u64 = by_group.iter().skip(MAX_GROUPS).map(|g| g.1).sum();
        for (group, n) in by_group.iter().take(MAX_GROUPS) {
            let labels = GroupLabels {
                group: group.to_string(),
            };
            gauge(*n).encode(groups.encode_family(&labels)?)?;
        }
        if by_group.len() > MAX_GROUPS {
            let labels = GroupLabels {
                group: OTHER.to_owned(),
            };
            gauge(rest).encode(groups.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Registers storage's metrics (names prefixed `silk_storage_`): `counters`, `db`, and gauges
/// read through `snapshot` at each scrape.
pub fn register(
    registry: &mut Registry,
    counters: &StorageCounters,
    db: &DbStats,
    snapshot: impl Fn() -> Snapshot + Send + Sync + 'static,
) {
    let r = registry.sub_registry_with_prefix("silk_storage");
    counters.register(r);
    db.register(r);
    registry.register_collector(Box::new(Gauges(Box::new(snapshot))));
}
