//! The scheduler's metrics: the dispatch queue's length, assignments handed to execution
//! managers, how long they waited in the queue, assignments purged by a new storage session, and
//! assignments of dead or departed execution managers sent back for re-dispatch.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::histogram::DurationHistogram;

/// The dispatch queue's metrics. Cheap to clone; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct DispatchMetrics {
    /// Assignments queued now.
    pub queue_length: Gauge,
    /// Assignments taken by execution managers.
    pub dispatched: Counter,
    /// Time from queueing an assignment to an execution manager taking it.
    pub latency: DurationHistogram,
    /// Assignments dropped from the queue because storage began a new session.
    pub purged: Counter,
}

impl DispatchMetrics {
    /// Registers the metrics (names prefixed `silk_scheduler_`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("silk_scheduler");
        r.register(
            "dispatch_queue_length",
            "Assignments waiting in the dispatch queue for an execution manager",
            self.queue_length.clone(),
        );
        r.register(
            "assignments_dispatched",
            "Assignments handed to execution managers",
            self.dispatched.clone(),
        );
        r.register_with_unit(
            "assignment_latency",
            "Time an assignment waited in the dispatch queue until an execution manager took it",
            Unit::Seconds,
            self.latency.clone(),
        );
        r.register(
            "assignments_purged",
            "Queued assignments dropped because storage began a new session",
            self.purged.clone(),
        );
    }
}

/// Registers the EM registry's count of assignments sent back for re-dispatch.
pub fn register_redispatched(registry: &mut Registry, redispatched: &Counter) {
    registry.register(
        "silk_scheduler_assignments_redispatched",
        "Assignments of dead or departed execution managers sent back for re-dispatch",
        redispatched.clone(),
    );
}
