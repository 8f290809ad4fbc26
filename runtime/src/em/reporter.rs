//! The outcome reporter: collects finished tasks' outcomes and sends them to storage in batches
//! (`ReportTaskOutcomes`), fenced by session (an outcome registered under a session older than
//! the tracker's is dropped: storage has moved on), retried with backoff on transport errors
//! until it is delivered or the EM is killed. A report storage rejects is logged, never fatal.
//! Each outcome carries its task's credit among the EM's unreported tasks (`max_unreported_tasks`),
//! given back once storage answered, so execution never runs further ahead of persistence.
//!
//! Batches are sized by bytes as well as by count: no report exceeds [`MAX_REPORT_BYTES`], under
//! storage's gRPC message cap. An outcome too large for a report of its own is replaced, before
//! it is ever sent, by its task's failure (`OutputTooLarge`, naming the limit): retrying it could
//! never succeed, and a batch that cannot be sent would stop this EM from reporting anything.

use prometheus_client::metrics::counter::Counter;
use silk_proto::storage as pb;
use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::Code;

use silk_ipc::TaskFailure;

use super::clients::{CALL_TIMEOUT, Clients, request};
use super::liveness::Refresh;
use super::session::SessionTracker;
use super::spans::InstanceTrace;
use crate::traces::Traces;
use silk_core::convert::pb_kind;
use silk_core::ids::{ExecutionManagerId, SessionId};
use silk_core::retry::is_transient;
use silk_core::wire::MAX_MESSAGE_BYTES;

/// Most outcomes in one report.
const MAX_BATCH: usize = 256;

/// Room left under storage's message cap for gRPC framing and the request's own fields.
const REPORT_HEADROOM_BYTES: usize = 64 << 10;

/// Largest encoded `ReportTaskOutcomes` request the reporter sends.
pub const MAX_REPORT_BYTES: usize = MAX_MESSAGE_BYTES - REPORT_HEADROOM_BYTES;

/// Field number of `ReportTaskOutcomesRequest.outcomes`.
const OUTCOMES_FIELD: u32 = 3;

/// Bytes `outcome` adds to a `ReportTaskOutcomesRequest` (field key, length and message).
fn report_bytes(outcome: &pb::TaskOutcome) -> usize {
    prost::encoding::message::encoded_len(OUTCOMES_FIELD, outcome)
}

/// `outcome`, or — when it cannot fit in a report of its own — its task's `OutputTooLarge`
/// failure naming the limit.
fn fit(em: ExecutionManagerId, outcome: pb::TaskOutcome) -> pb::TaskOutcome {
    let size = report_bytes(&outcome);
    if size <= MAX_REPORT_BYTES {
        return outcome;
    }
    let failure = TaskFailure::OutputTooLarge {
        what: "task outcome report".into(),
        size_bytes: size as u64,
        limit_bytes: MAX_REPORT_BYTES as u64,
        limit: "ReportTaskOutcomes message cap".into(),
    };
    let job = outcome.task.as_ref().map_or(0, |t| t.job_id);
    tracing::warn!(em_id = %em, job_id = job, size_bytes = size, limit_bytes = MAX_REPORT_BYTES, "outcome too large to report; task failed");
    pb::TaskOutcome {
        outcome: Some(pb::task_outcome::Outcome::Failure(pb::Failure {
            kind: pb_kind(failure.kind()).into(),
            message: failure.to_string(),
        })),
        ..outcome
    }
}

/// Splits `outcomes` (each already [`fit`]) into reports of at most `max_bytes` each, in order.
fn split(outcomes: Vec<pb::TaskOutcome>, max_bytes: usize) -> Vec<Vec<pb::TaskOutcome>> {
    let mut reports: Vec<Vec<pb::TaskOutcome>> = Vec::new();
    let mut bytes = 0;
    for o in outcomes {
        let size = report_bytes(&o);
        match reports.last_mut() {
            Some(last) if bytes + size <= max_bytes => {
                last.push(o);
                bytes += size;
            }
            _ => {
                reports.push(vec![o]);
                bytes = size;
            }
        }
    }
    reports
}

/// One outcome to report, with the session its instance was registered in.
#[derive(Debug)]
pub struct Report {
    /// Registration session.
    pub session: SessionId,
    /// The outcome.
    pub outcome: pb::TaskOutcome,
    /// The task's place among the EM's unreported tasks, given back (dropped) once storage
    /// answered.
    #[expect(dead_code, reason = "held for its drop, which returns the permit")]
    pub credit: Option<OwnedSemaphorePermit>,
    /// What the instance's spans need (tracing on only).
    pub trace: Option<Box<InstanceTrace>>,
}

/// The reporter's fixed parts.
#[derive(Debug, Clone)]
pub struct ReporterParts {
    /// gRPC clients.
    pub clients: Clients,
    /// This EM.
    pub em: ExecutionManagerId,
    /// Storage's session.
    pub session: SessionTracker,
    /// Asks for a session refresh.
    pub refresh: Refresh,
    /// `silk_em_report_retries_total`.
    pub retries: Counter,
    /// The EM's span sink.
    pub traces: Traces,
}

/// Reports until `outcomes` is closed and drained, or `kill`.
pub async fn run_reporter(
    parts: ReporterParts,
    mut outcomes: mpsc::UnboundedReceiver<Report>,
    acknowledged: Arc<Notify>,
    kill: CancellationToken,
) {
    let ReporterParts {
        clients,
        em,
        session,
        refresh,
        retries,
        traces,
    } = parts;
    loop {
        let first = tokio::select! {
            () = kill.cancelled() => return,
            r = outcomes.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match outcomes.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let current = session.get();
        let (fresh, stale): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|r| r.session >= current);
        if !stale.is_empty() {
            tracing::info!(em_id = %em, dropped = stale.len(), "outcomes of an older storage session dropped");
        }
        let mut sessions: Vec<SessionId> = fresh.iter().map(|r| r.session).collect();
        sessions.sort_unstable();
        sessions.dedup();
        for s in sessions {
            let group: Vec<_> = fresh
                .iter()
                .filter(|r| r.session == s)
                .map(|r| fit(em, r.outcome.clone()))
                .collect();
            for report in split(group, MAX_REPORT_BYTES) {
                if !send(&clients, em, s, report, &refresh, &retries, &kill).await {
                    return;
                }
            }
        }
        if traces.is_on() {
            for trace in fresh.iter().filter_map(|r| r.trace.as_deref()) {
                trace.emit(&traces, em);
            }
        }
        // Storage answered for every outcome of the batch (or they were of an older session):
        // their places among the unreported tasks free up, and the pull loop may accept more.
        drop((fresh, stale));
        acknowledged.notify_one();
    }
}

/// Sends one report, retrying transport errors; false if killed meanwhile.
async fn send(
    clients: &Clients,
    em: ExecutionManagerId,
    session: SessionId,
    outcomes: Vec<pb::TaskOutcome>,
    refresh: &Refresh,
    retries: &Counter,
    kill: &CancellationToken,
) -> bool {
    let mut delay = silk_core::retry::FIRST_DELAY;
    loop {
        let mut call_client = clients.instances.clone();
        let call = call_client.report_task_outcomes(request(
            pb::ReportTaskOutcomesRequest {
                session_id: session.0,
                execution_manager_id: em.0,
                outcomes: outcomes.clone(),
            },
            CALL_TIMEOUT,
        ));
        let result = tokio::select! {
            () = kill.cancelled() => return false,
            r = call => r,
        };
        match result {
            Ok(r) => {
                for (o, res) in outcomes.iter().zip(r.into_inner().results) {
                    if let Some(e) = res.error {
                        let job = o.task.as_ref().map_or(0, |t| t.job_id);
                        tracing::info!(em_id = %em, job_id = job, kind = e.kind, error = e.message, "report rejected");
                        if e.code == Code::Aborted as i32 {
                            refresh.request();
                        }
                    }
                }
                return true;
            }
            Err(s) if is_transient(&s) => {
                retries.inc();
                tracing::warn!(em_id = %em, code = ?s.code(), error = s.message(), retry_in_ms = delay.as_millis(), "report failed; retrying");
                tokio::select! {
                    () = kill.cancelled() => return false,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = silk_core::retry::next_delay(delay);
            }
            Err(s) => {
                tracing::warn!(em_id = %em, code = ?s.code(), error = s.message(), dropped = outcomes.len(), "report refused");
                if s.code() == Code::Aborted {
                    refresh.request();
                }
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn success(job: u64, bytes: usize) -> pb::TaskOutcome {
        pb::TaskOutcome {
            task: Some(pb::TaskRef {
                job_id: job,
                task_id: None,
            }),
            task_instance_id: job,
            outcome: Some(pb::task_outcome::Outcome::Outputs(vec![7; bytes])),
        }
    }

    fn request_bytes(outcomes: &[pb::TaskOutcome]) -> usize {
        pb::ReportTaskOutcomesRequest {
            session_id: u64::MAX,
            execution_manager_id: u64::MAX,
            outcomes: outcomes.to_vec(),
        }
        .encoded_len()
    }

    #[test]
    fn reports_stay_under_the_cap_and_keep_order() {
        let mib = 1 << 20;
        let outcomes: Vec<_> = [40, 40, 1, 30, 30, 3, 63, 0]
            .iter()
            .enumerate()
            .map(|(i, m)| success(i as u64, m * mib))
            .collect();
        let reports = split(outcomes.clone(), MAX_REPORT_BYTES);
        for r in &reports {
            assert!(request_bytes(r) + REPORT_HEADROOM_BYTES / 2 <= MAX_MESSAGE_BYTES);
        }
        let sizes: Vec<usize> = reports.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 2, 3, 2]);
        assert_eq!(reports.concat(), outcomes, "every outcome once, in order");
    }

    #[test]
    fn an_outcome_too_large_for_any_report_becomes_its_failure() {
        let em = ExecutionManagerId(1);
        let small = success(1, 10);
        assert_eq!(fit(em, small.clone()), small);
        let huge = success(2, MAX_REPORT_BYTES);
        let fitted = fit(em, huge);
        assert!(report_bytes(&fitted) < 1024);
        assert_eq!(fitted.task_instance_id, 2);
        let Some(pb::task_outcome::Outcome::Failure(f)) = fitted.outcome else {
            panic!("not a failure: {fitted:?}");
        };
        assert_eq!(
            f.kind,
            i32::from(pb_kind(silk_ipc::FailureKind::OutputTooLarge))
        );
        assert!(
            f.message.contains(&MAX_REPORT_BYTES.to_string()),
            "{}",
            f.message
        );
        assert!(f.message.contains("ReportTaskOutcomes"), "{}", f.message);
    }
}
