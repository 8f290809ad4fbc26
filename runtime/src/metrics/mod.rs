//! Prometheus metrics of the services (see `docs/config.md`, key `metrics_listen`, and the list
//! of metrics in `docs/deploy.md`).
//!
//! Each service keeps its own metric handles and counts whether or not anyone scrapes them
//! (relaxed atomic adds, label sets resolved once, never per task). A [`Metrics`] is one
//! exposition: services register their metrics into it when they start, and
//! [`serve`] answers `GET /metrics` with it in the Prometheus text format. `silk dev` registers
//! all three services into one [`Metrics`]; tests give each service its own, so services in one
//! process never mix their numbers.
//!
//! * [`histogram`] — a lock-free duration histogram for per-task observations;
//! * [`labels`] — bounded label values (package names) with per-thread handle caches;
//! * [`storage`], [`scheduler`], [`em`] — each service's metric set;
//! * `serve.rs` — the HTTP endpoint.
//!
//! ```
//! use silk_runtime::metrics::Metrics;
//! use prometheus_client::metrics::counter::Counter;
//! let metrics = Metrics::new();
//! let c: Counter = Counter::default();
//! metrics.register(|r| r.register("silk_example", "an example", c.clone()));
//! c.inc();
//! assert!(metrics.encode().contains("silk_example_total 1"));
//! ```

pub mod em;
pub mod histogram;
pub mod labels;
pub mod scheduler;
mod serve;
pub mod storage;

use std::sync::{Arc, RwLock};

use prometheus_client::registry::Registry;

pub use histogram::DurationHistogram;
pub use serve::{CONTENT_TYPE, serve, spawn_endpoint};

/// One metrics exposition: what one `/metrics` endpoint serves. Cheap to clone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    registry: Arc<RwLock<Registry>>,
}

impl Metrics {
    /// An empty exposition.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers metrics (done once per service, when it starts).
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut registry);
    }

    /// The exposition in the Prometheus text format (version 0.0.4).
    #[must_use]
    pub fn encode(&self) -> String {
        let registry = self
            .registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut text = String::with_capacity(16 << 10);
        // Writing to a String cannot fail; a collector that fails ends the text early.
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
            tracing::warn!(error = %e, "metrics encoding stopped early");
        }
        text
    }
}
