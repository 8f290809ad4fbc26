//! The outcome reporter: collects finished tasks' outcomes and sends them to storage in batches
//! (`ReportTaskOutcomes`), fenced by session (an outcome registered under a session older than
//! the tracker's is dropped: storage has moved on), retried with backoff on transport errors
//! until it is delivered or the EM is killed. A report storage rejects is logged, never fatal.
//! Each outcome carries its task's credit among the EM's unreported tasks (`max_unreported_tasks`),
//! given back once storage answered, so execution never runs further ahead of persistence.

use std::time::Duration;

use silk_proto::storage as pb;
use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::Code;

use super::clients::{CALL_TIMEOUT, Clients, is_transient, request};
use super::liveness::Refresh;
use super::session::SessionTracker;
use crate::storage::ids::{ExecutionManagerId, SessionId};

/// Most outcomes in one report.
const MAX_BATCH: usize = 256;

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
}

/// Reports until `outcomes` is closed and drained, or `kill`.
pub async fn run_reporter(
    clients: Clients,
    em: ExecutionManagerId,
    session: SessionTracker,
    refresh: Refresh,
    mut outcomes: mpsc::UnboundedReceiver<Report>,
    acknowledged: Arc<Notify>,
    kill: CancellationToken,
) {
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
        sessions.dedup();
        for s in sessions {
            let group: Vec<_> = fresh
                .iter()
                .filter(|r| r.session == s)
                .map(|r| r.outcome.clone())
                .collect();
            if !send(&clients, em, s, group, &refresh, &kill).await {
                return;
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
    kill: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_millis(50);
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
            Err(s) if is_transient(s.code()) => {
                tracing::warn!(em_id = %em, code = ?s.code(), error = s.message(), retry_in_ms = delay.as_millis(), "report failed; retrying");
                tokio::select! {
                    () = kill.cancelled() => return false,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
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
