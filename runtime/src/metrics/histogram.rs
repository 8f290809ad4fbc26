//! A duration histogram for hot paths: fixed buckets, one relaxed atomic add per bucket hit and
//! one for the sum, no lock (the crate's own `Histogram` takes a mutex per observation, which is
//! fine once per batch but not once per task at tens of thousands of tasks a second). Encoded by
//! `prometheus-client` like any other histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds (seconds) of task and latency histograms: 100 µs to ~100 s, about ×3 apart.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 100.0,
];

#[derive(Debug)]
struct Inner {
    /// Upper bounds in nanoseconds, ascending.
    bounds_ns: Box<[u64]>,
    /// Upper bounds in seconds, as exposed.
    bounds_s: &'static [f64],
    /// One count per bound plus the overflow (`+Inf`) bucket; not cumulative.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

/// A histogram of durations with fixed buckets. Cheap to clone (clones share the counts).
#[derive(Debug, Clone)]
pub struct DurationHistogram {
    inner: Arc<Inner>,
}

impl Default for DurationHistogram {
    fn default() -> Self {
        Self::new(LATENCY_BUCKETS)
    }
}

impl DurationHistogram {
    /// A histogram with `bounds` (seconds, ascending) as bucket upper bounds.
    #[must_use]
    pub fn new(bounds: &'static [f64]) -> Self {
        // Bounds are compile-time constants of this module's callers: finite, ≥ 0.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "bounds are small positive constants"
        )]
        let bounds_ns = bounds.iter().map(|s| (s * 1e9) as u64).collect();
        Self {
            inner: Arc::new(Inner {
                bounds_ns,
                bounds_s: bounds,
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum_ns: AtomicU64::new(0),
            }),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self.inner.bounds_ns.partition_point(|&b| b < ns);
        self.inner.counts[i].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.inner
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts: Vec<u64> = self
            .inner
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let buckets: Vec<(f64, u64)> = self
            .inner
            .bounds_s
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(counts.iter().copied())
            .collect();
        #[expect(
            clippy::cast_precision_loss,
            reason = "a sum of nanoseconds as seconds"
        )]
        let sum = self.inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, counts.iter().sum(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::{Registry, Unit};

    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = DurationHistogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(2));
        let mut registry = Registry::default();
        registry.register_with_unit("t", "test", Unit::Seconds, h.clone());
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("t_seconds_bucket{le=\"0.001\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_bucket{le=\"0.01\"} 3\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("t_seconds_sum 2.0065\n"), "{text}");
        assert!(text.contains("t_seconds_count 4\n"), "{text}");
        assert_eq!(h.count(), 4);
    }
}
