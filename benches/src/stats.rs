//! Percentiles over samples and the markdown table of `target/silk-bench/ipc-overhead.md`, in
//! upstream spider's format (count, avg, p50, p95, p99 per metric).
//!
//! Metrics, per path and task (all per sample, then summarised):
//! * **E2E**: the call as the EM sees it (`NativeExecutor::execute`: clone and encode the request,
//!   transport, executor, decode the response).
//! * **executor**: the executor's own measurement (`Response::elapsed_ns`: package lookup, the
//!   FFI call including the task's input decoding, body and output encoding).
//! * **executor-internal**: executor time minus the *median* in-process direct call of the same
//!   task on the same payload (measured by the direct path in the same run). The direct call is
//!   the task's own work, including its real sleep, so this is the executor's machinery around it
//!   (context decoding, dispatch, copying outputs across the C ABI). An estimate: samples faster
//!   than the median direct call come out negative. The nominal 50 µs sleep is never subtracted.
//! * **IPC overhead**: E2E − executor, per sample.

use std::fmt::Write as _;

use crate::paths::Sample;

/// Count, mean and percentiles of one metric, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Mean.
    pub avg: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Summary {
    /// Summarises `values` (nearest-rank percentiles).
    ///
    /// # Panics
    /// If `values` is empty.
    #[must_use]
    pub fn of(mut values: Vec<f64>) -> Self {
        assert!(!values.is_empty(), "no samples");
        values.sort_by(f64::total_cmp);
        let pick = |p: f64| {
            let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
            values[rank.clamp(1, values.len()) - 1]
        };
        Self {
            count: values.len(),
            avg: values.iter().sum::<f64>() / values.len() as f64,
            p50: pick(50.0),
            p95: pick(95.0),
            p99: pick(99.0),
        }
    }
}

/// The four metrics of one path running one task.
#[derive(Debug, Clone, PartialEq)]
pub struct PathResult {
    /// The path's label.
    pub path: String,
    /// E2E.
    pub e2e: Summary,
    /// Executor-measured time.
    pub executor: Summary,
    /// Executor-internal (see the module docs); `None` for the direct path.
    pub internal: Option<Summary>,
    /// IPC overhead.
    pub overhead: Summary,
}

impl PathResult {
    /// Summarises `samples`; `direct_median_ns` is the median direct call of the same task, or
    /// `None` for the direct path itself.
    #[must_use]
    pub fn new(path: &str, samples: &[Sample], direct_median_ns: Option<f64>) -> Self {
        let col = |f: &dyn Fn(&Sample) -> f64| Summary::of(samples.iter().map(f).collect());
        Self {
            path: path.to_owned(),
            e2e: col(&|s| s.e2e_ns as f64),
            executor: col(&|s| s.executor_ns as f64),
            internal: direct_median_ns.map(|m| col(&|s| s.executor_ns as f64 - m)),
            overhead: col(&|s| s.e2e_ns as f64 - s.executor_ns as f64),
        }
    }
}

fn row(out: &mut String, path: &str, metric: &str, s: &Summary) {
    let us = |ns: f64| ns / 1000.0;
    let _ = writeln!(
        out,
        "| {path} | {metric} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
        s.count,
        us(s.avg),
        us(s.p50),
        us(s.p95),
        us(s.p99)
    );
}

/// One markdown table for one task.
#[must_use]
pub fn task_table(task: &str, results: &[PathResult]) -> String {
    let mut out = format!(
        "### {task}\n\n| Path | Metric | Count | Avg µs | P50 µs | P95 µs | P99 µs |\n|---|---|---|---|---|---|---|\n"
    );
    for r in results {
        row(&mut out, &r.path, "E2E", &r.e2e);
        row(&mut out, &r.path, "executor", &r.executor);
        if let Some(i) = &r.internal {
            row(&mut out, &r.path, "executor-internal", i);
        }
        row(
            &mut out,
            &r.path,
            "IPC overhead (E2E − executor)",
            &r.overhead,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Summary::of((1..=100).map(f64::from).collect());
        assert_eq!((s.count, s.p50, s.p95, s.p99), (100, 50.0, 95.0, 99.0));
        assert!((s.avg - 50.5).abs() < 1e-9);
        let r = PathResult::new(
            "x",
            &[Sample {
                e2e_ns: 3000,
                executor_ns: 1000,
            }],
            Some(400.0),
        );
        assert_eq!(r.overhead.p50, 2000.0);
        assert_eq!(r.internal.unwrap().p50, 600.0);
        assert!(
            task_table("noop", &[r]).contains("| x | IPC overhead (E2E − executor) | 1 | 2.00 |")
        );
    }
}
