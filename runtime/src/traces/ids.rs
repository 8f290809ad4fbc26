//! Trace and span ids every service derives on its own, so spans of one job join up across
//! storage, the scheduler and the EMs without any id on the wire (the control plane is batched:
//! one call carries many tasks, so per-call context propagation does not map to tasks).
//!
//! * trace id = SHA-256("silk.trace", cluster, job id)[..16] — one trace per job;
//! * the job span's id = SHA-256("silk.job", trace id)[..8];
//! * a task instance's span id = SHA-256("silk.instance", trace id, task, instance id)[..8]:
//!   storage hands the instance id out when it registers the instance, and the EM gets it in the
//!   registration answer, so both parent their stage spans to the same instance span.
//!
//! Whether a job is sampled is a function of its trace id too, so every service decides alike.

use opentelemetry::trace::{SpanId, TraceId};
use sha2::{Digest, Sha256};
use silk_tdl::{JobId, TaskId, TaskInstanceId};

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so no two part lists hash alike.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

fn first<const N: usize>(d: &[u8; 32]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&d[..N]);
    // An all-zero id is invalid in OpenTelemetry; 2^-64 odds, but never emit one.
    if out.iter().all(|&b| b == 0) {
        out[N - 1] = 1;
    }
    out
}

/// The trace of `job` in cluster `cluster`.
#[must_use]
pub fn trace_id(cluster: &str, job: JobId) -> TraceId {
    let d = digest(&[b"silk.trace", cluster.as_bytes(), &job.0.to_le_bytes()]);
    TraceId::from_bytes(first(&d))
}

/// The id of the job's span (the root of its trace).
#[must_use]
pub fn job_span_id(trace: TraceId) -> SpanId {
    let d = digest(&[b"silk.job", &trace.to_bytes()]);
    SpanId::from_bytes(first(&d))
}

fn task_bytes(task: TaskId) -> [u8; 9] {
    let (tag, index) = match task {
        TaskId::Index(i) => (0, i),
        TaskId::Commit => (1, 0),
        TaskId::Cleanup => (2, 0),
    };
    let mut out = [tag; 9];
    out[1..].copy_from_slice(&index.to_le_bytes());
    out
}

/// The id of one task instance's span.
#[must_use]
pub fn instance_span_id(trace: TraceId, task: TaskId, instance: TaskInstanceId) -> SpanId {
    let d = digest(&[
        b"silk.instance",
        &trace.to_bytes(),
        &task_bytes(task),
        &instance.0.to_le_bytes(),
    ]);
    SpanId::from_bytes(first(&d))
}

/// Whether a trace is kept at sampling ratio `ratio` (a function of the id alone).
#[must_use]
pub fn sampled(trace: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bytes = trace.to_bytes();
    let mut low = [0; 8];
    low.copy_from_slice(&bytes[8..]);
    // The id's low 64 bits are uniform: keep it when they fall under ratio · 2^64.
    #[expect(
        clippy::cast_precision_loss,
        reason = "a ratio compare needs no more than f64 precision"
    )]
    let share = u64::from_le_bytes(low) as f64 / 18_446_744_073_709_551_616.0;
    share < ratio
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let t = trace_id("silk", JobId(7));
        assert_eq!(t, trace_id("silk", JobId(7)));
        assert_ne!(t, trace_id("silk", JobId(8)));
        assert_ne!(t, trace_id("other", JobId(7)));
        let i = |task, n| instance_span_id(t, task, TaskInstanceId(n));
        assert_eq!(i(TaskId::Index(1), 5), i(TaskId::Index(1), 5));
        assert_ne!(i(TaskId::Index(1), 5), i(TaskId::Index(1), 6));
        assert_ne!(i(TaskId::Index(0), 5), i(TaskId::Commit, 5));
        assert_ne!(i(TaskId::Commit, 5), i(TaskId::Cleanup, 5));
        assert_ne!(job_span_id(t), i(TaskId::Index(0), 0));
        assert_ne!(t, TraceId::INVALID);
    }

    #[test]
    fn sampling_follows_the_ratio() {
        let kept = (0..4000)
            .filter(|&j| sampled(trace_id("silk", JobId(j)), 0.25))
            .count();
        assert!((800..1200).contains(&kept), "{kept} of 4000 at 0.25");
        assert!((0..100).all(|j| sampled(trace_id("s", JobId(j)), 1.0)));
        assert!((0..100).all(|j| !sampled(trace_id("s", JobId(j)), 0.0)));
    }
}
