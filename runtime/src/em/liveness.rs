//! The liveness actor: heartbeats storage and the scheduler every interval (and at once on a
//! refresh request, e.g. when an assignment or a rejection shows a newer storage session) over
//! connections of their own, so heartbeats never queue behind registrations and reports,
//! advancing the session tracker from storage's answers. Storage answering that this EM is dead
//! or unknown stops the EM (`dead` is cancelled); transport errors are logged and retried on the
//! next tick.

use std::sync::Arc;
use std::time::Duration;

use silk_proto::scheduler as scheduler_pb;
use silk_proto::storage as storage_pb;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use super::clients::{CALL_TIMEOUT, Clients, request};
use super::pool::SlotPool;
use super::session::SessionTracker;
use silk_core::ids::{ExecutionManagerId, SessionId};

/// Asks the liveness actor for an immediate heartbeat.
#[derive(Debug, Clone)]
pub struct Refresh(mpsc::Sender<()>);

impl Refresh {
    /// Requests a heartbeat now (coalesced with pending requests).
    pub fn request(&self) {
        let _ = self.0.try_send(());
    }
}

/// The actor's state.
#[derive(Debug)]
pub struct Liveness {
    clients: Clients,
    em: ExecutionManagerId,
    session: SessionTracker,
    interval: Duration,
    refresh: mpsc::Receiver<()>,
    dead: CancellationToken,
    /// Where the tasks storage names in its heartbeat answers are stopped.
    pool: Arc<SlotPool>,
}

impl Liveness {
    /// An actor for `em`; `dead` is cancelled when storage declares the EM dead; tasks that
    /// storage no longer wants are stopped on `pool`.
    #[must_use]
    pub fn new(
        clients: Clients,
        em: ExecutionManagerId,
        session: SessionTracker,
        interval: Duration,
        dead: CancellationToken,
        pool: Arc<SlotPool>,
    ) -> (Self, Refresh) {
        let (tx, rx) = mpsc::channel(1);
        let actor = Self {
            clients,
            em,
            session,
            interval,
            refresh: rx,
            dead,
            pool,
        };
        (actor, Refresh(tx))
    }

    /// Heartbeats until `stop` (the first heartbeat at once).
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
                Some(()) = self.refresh.recv() => tick.reset(),
            }
            if !self.beat().await {
                return;
            }
        }
    }

    /// One heartbeat to each service; false once the EM is dead. A slow call is not cut
    /// short: under load it is still the heartbeat most likely to arrive.
    async fn beat(&mut self) -> bool {
        let em = self.em;
        let timeout = CALL_TIMEOUT;
        let mut storage_client = self.clients.liveness.clone();
        let storage = storage_client.heartbeat(request(
            storage_pb::ExecutionManagerIdRequest {
                execution_manager_id: em.0,
            },
            timeout,
        ));
        let mut scheduler_client = self.clients.scheduler_liveness.clone();
        let scheduler = scheduler_client.heartbeat(request(
            scheduler_pb::HeartbeatRequest {
                execution_manager_id: em.0,
            },
            timeout,
        ));
        let (storage, scheduler) = tokio::join!(storage, scheduler);
        if let Err(s) = scheduler {
            tracing::warn!(em_id = %em, code = ?s.code(), error = s.message(), "scheduler heartbeat failed");
        }
        match storage {
            Ok(r) => {
                let r = r.into_inner();
                let session = SessionId(r.session_id);
                if self.session.advance(session) {
                    tracing::info!(em_id = %em, session = %session, "storage session advanced");
                }
                if !r.stop_instances.is_empty() {
                    let stopped = self.pool.stop(&r.stop_instances);
                    tracing::info!(em_id = %em, asked = r.stop_instances.len(), stopped, "stopping tasks whose jobs ended");
                }
                true
            }
            Err(s) if matches!(s.code(), Code::PermissionDenied | Code::NotFound) => {
                tracing::error!(em_id = %em, error = s.message(), "storage declared this execution manager dead; stopping");
                self.dead.cancel();
                false
            }
            Err(s) => {
                tracing::warn!(em_id = %em, code = ?s.code(), error = s.message(), "storage heartbeat failed");
                true
            }
        }
    }
}
