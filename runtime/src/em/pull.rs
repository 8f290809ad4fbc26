//! The EM's pull loop: asks the scheduler for as many assignments as there are free slots
//! (acknowledging what was consumed since the last pull), drops assignments of older sessions
//! (acknowledged), registers the rest with storage in one call per session (retrying transport
//! errors; stopping mid-registration leaves them unacknowledged so the scheduler re-dispatches
//! them), and starts the accepted ones on the slot pool; outcomes go to the reporter.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use silk_proto::scheduler as scheduler_pb;
use silk_proto::storage as storage_pb;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Code;

use super::clients::{CALL_TIMEOUT, Clients, request};
use super::liveness::Refresh;
use super::pool::SlotPool;
use super::reporter::Report;
use super::run::pause;
use super::session::SessionTracker;
use super::spans::executed_span;
use super::{request_outcome, window};
use crate::scheduler::Assignment;
use crate::scheduler::grpc::assignment as from_pb;
use crate::traces::Traces;
use silk_core::convert::pb_task_id;
use silk_core::ids::{ExecutionManagerId, SessionId};
use silk_core::retry::is_transient;
use silk_core::retry::{FIRST_DELAY, next_delay};

/// How soon acknowledgements that could not be sent are tried again while every slot is busy.
const ACK_RETRY: Duration = Duration::from_secs(1);

/// The pull loop's state.
pub(super) struct Loop {
    pub(super) clients: Clients,
    pub(super) em: ExecutionManagerId,
    pub(super) tracker: SessionTracker,
    pub(super) refresh: Refresh,
    pub(super) pool: Arc<SlotPool>,
    /// One permit per assignment the EM may hold (slots + `max_queued`).
    pub(super) free: Arc<Semaphore>,
    /// Most assignments queued beyond one per slot.
    pub(super) max_queued: usize,
    /// One permit per task accepted and not yet acknowledged by storage (`max_unreported_tasks`):
    /// taken when a task is registered, returned by the reporter once storage acknowledged (or
    /// refused) its outcome.
    pub(super) unreported: Arc<Semaphore>,
    /// Signalled whenever a task finishes or outcomes are acknowledged.
    pub(super) finished: Arc<Notify>,
    pub(super) tasks: TaskTracker,
    pub(super) outcomes: mpsc::UnboundedSender<Report>,
    /// Consumed assignments not yet acknowledged, of scheduler `scheduler_id`.
    pub(super) acks: Vec<u64>,
    pub(super) scheduler_id: u64,
    pub(super) poll_wait: Duration,
    /// Packages that run natively (the rest run as wasm), for span attributes.
    pub(super) native: Arc<[String]>,
    pub(super) traces: Traces,
}

impl Loop {
    pub(super) async fn pull(&mut self, stop: &CancellationToken) {
        let mut delay = Duration::ZERO;
        while !stop.is_cancelled() {
            // Wait until the window has room (a task finished, or the mean task time fell).
            let slots = self.pool.slots();
            let held = slots + self.max_queued - self.free.available_permits();
            let free = window::target(slots, self.max_queued, self.pool.mean_task_time())
                .saturating_sub(held)
                .min(self.unreported.available_permits());
            if free == 0 {
                // Acknowledge now, not at the next pull: the scheduler's lease on each
                // assignment runs until it hears of it.
                let unsent = !self.acks.is_empty() && !self.flush_acks(stop).await;
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.finished.notified() => {}
                    () = tokio::time::sleep(ACK_RETRY), if unsent => {}
                }
                continue;
            }
            let acks = std::mem::take(&mut self.acks);
            let mut call_client = self.clients.scheduler.clone();
            let call = call_client.next_tasks(request(
                scheduler_pb::NextTasksRequest {
                    execution_manager_id: self.em.0,
                    max_items: u32::try_from(free).unwrap_or(u32::MAX),
                    wait_ms: u64::try_from(self.poll_wait.as_millis()).unwrap_or(u64::MAX),
                    acks: Some(scheduler_pb::Acks {
                        scheduler_id: self.scheduler_id,
                        assignment_ids: acks.clone(),
                    }),
                },
                self.poll_wait + CALL_TIMEOUT,
            ));
            let result = tokio::select! {
                () = stop.cancelled() => {
                    self.acks = acks;
                    return;
                }
                r = call => r,
            };
            let response = match result {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    // Acknowledging twice is harmless: the scheduler ignores unknown ids.
                    self.acks = acks;
                    delay = next_delay(delay);
                    tracing::warn!(em_id = %self.em, code = ?s.code(), error = s.message(), retry_in_ms = delay.as_millis(), "scheduler poll failed");
                    if !pause(delay, stop).await {
                        return;
                    }
                    continue;
                }
            };
            delay = Duration::ZERO;
            if response.scheduler_id != self.scheduler_id {
                self.scheduler_id = response.scheduler_id;
            }
            let batch: Vec<Assignment> = response
                .assignments
                .iter()
                .filter_map(|a| from_pb(a).ok())
                .collect();
            if !batch.is_empty() {
                let received = self.traces.now();
                self.accept(batch, received, stop).await;
            }
        }
    }

    /// Sends the pending acknowledgements alone (`max_items` 0); false if the call failed
    /// (they stay pending).
    async fn flush_acks(&mut self, stop: &CancellationToken) -> bool {
        let acks = std::mem::take(&mut self.acks);
        let mut client = self.clients.scheduler.clone();
        let call = client.next_tasks(request(
            scheduler_pb::NextTasksRequest {
                execution_manager_id: self.em.0,
                max_items: 0,
                wait_ms: 0,
                acks: Some(scheduler_pb::Acks {
                    scheduler_id: self.scheduler_id,
                    assignment_ids: acks.clone(),
                }),
            },
            CALL_TIMEOUT,
        ));
        let result = tokio::select! {
            () = stop.cancelled() => Err(tonic::Status::cancelled("stopping")),
            r = call => r,
        };
        match result {
            Ok(_) => true,
            Err(s) => {
                tracing::warn!(em_id = %self.em, code = ?s.code(), error = s.message(), "acknowledgement failed; retrying");
                self.acks = acks;
                false
            }
        }
    }

    /// Session checks, registration and execution of one batch.
    async fn accept(
        &mut self,
        batch: Vec<Assignment>,
        received: Option<SystemTime>,
        stop: &CancellationToken,
    ) {
        let current = self.tracker.get();
        let mut live = Vec::new();
        for a in batch {
            if a.session < current {
                tracing::debug!(em_id = %self.em, job_id = %a.job, task = %a.task, "assignment of an older session dropped");
                self.acks.push(a.id.0);
            } else {
                live.push(a);
            }
        }
        if live.iter().any(|a| a.session > current) {
            self.refresh.request();
        }
        let mut sessions: Vec<SessionId> = live.iter().map(|a| a.session).collect();
        sessions.sort_unstable();
        sessions.dedup();
        for session in sessions {
            let group: Vec<_> = live
                .iter()
                .filter(|a| a.session == session)
                .copied()
                .collect();
            if !self.register(session, group, received, stop).await {
                return;
            }
        }
    }

    /// Registers one session's assignments; false if stopped before storage answered (those
    /// assignments stay unacknowledged).
    async fn register(
        &mut self,
        session: SessionId,
        group: Vec<Assignment>,
        received: Option<SystemTime>,
        stop: &CancellationToken,
    ) -> bool {
        let mut delay = FIRST_DELAY;
        let results = loop {
            let mut call_client = self.clients.instances.clone();
            let call = call_client.register_task_instances(request(
                storage_pb::RegisterTaskInstancesRequest {
                    session_id: session.0,
                    execution_manager_id: self.em.0,
                    tasks: group
                        .iter()
                        .map(|a| storage_pb::TaskRef {
                            job_id: a.job.0,
                            task_id: Some(pb_task_id(a.task)),
                        })
                        .collect(),
                    // The same ids on every retry: a retry after a lost answer gets the
                    // instances already registered.
                    scheduler_id: self.scheduler_id,
                    assignment_ids: group.iter().map(|a| a.id.0).collect(),
                },
                CALL_TIMEOUT,
            ));
            let result = tokio::select! {
                () = stop.cancelled() => return false,
                r = call => r,
            };
            match result {
                Ok(r) => break r.into_inner().results,
                Err(s) if is_transient(&s) => {
                    tracing::warn!(em_id = %self.em, code = ?s.code(), error = s.message(), "task registration failed; retrying");
                    if !pause(delay, stop).await {
                        return false;
                    }
                    delay = next_delay(delay);
                }
                Err(s) => {
                    tracing::warn!(em_id = %self.em, code = ?s.code(), error = s.message(), "task registration refused");
                    if s.code() == Code::Aborted {
                        self.refresh.request();
                    }
                    self.acks.extend(group.iter().map(|a| a.id.0));
                    return true;
                }
            }
        };
        for (a, r) in group.iter().zip(results) {
            self.acks.push(a.id.0);
            match r.result {
                Some(storage_pb::register_result::Result::Context(ctx)) => {
                    self.start(*a, session, ctx, received);
                }
                Some(storage_pb::register_result::Result::Error(e)) => {
                    tracing::debug!(em_id = %self.em, job_id = %a.job, task = %a.task, kind = e.kind, "task instance not registered");
                    if e.code == Code::Aborted as i32 {
                        self.refresh.request();
                    }
                }
                None => {}
            }
        }
        true
    }

    /// Runs an accepted task on the pool; its outcome goes to the reporter. The hard timeout
    /// runs from now — storage registered the instance just before — not from when a slot
    /// picks the task up: storage's lost-report expiry measures the same span, so a task that
    /// waited in this EM's queue is never still running when storage gives it to another EM.
    fn start(
        &self,
        a: Assignment,
        session: SessionId,
        ctx: storage_pb::ExecutionContext,
        received: Option<SystemTime>,
    ) {
        let prepared = request_outcome::request(&a, &ctx)
            .map(|(execute, hard)| (execute, hard, std::time::Instant::now() + hard));
        // Taken now, so the next pull sees the slot as busy; we never accept more than the free
        // count, but wait for a slot rather than fail if that ever happens.
        let permit = self.free.clone().try_acquire_owned().ok();
        // Never more accepted than permits are free (see `pull`); if ever, the task runs
        // uncounted rather than waiting on the reporter.
        let credit = self.unreported.clone().try_acquire_owned().ok();
        let (free, pool, outcomes, em, finished) = (
            self.free.clone(),
            self.pool.clone(),
            self.outcomes.clone(),
            self.em,
            self.finished.clone(),
        );
        // Tracing on: what the instance's spans need besides the times.
        let traced = received.map(|received| {
            let backend = if self.native.contains(&ctx.package) {
                "native"
            } else {
                "wasm"
            };
            (
                received,
                ctx.package.clone(),
                ctx.function.clone(),
                backend,
                self.traces.clone(),
            )
        });
        self.tasks.spawn(async move {
            let permit = match permit {
                Some(p) => p,
                None => match free.acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let instance = ctx.task_instance_id;
            let began = traced.as_ref().map(|_| SystemTime::now());
            let result = match prepared {
                Ok((execute, hard, deadline)) => {
                    tracing::debug!(em_id = %em, job_id = %a.job, task = %a.task, package = execute.package, function = execute.function, "task started");
                    pool.execute_instance(instance, execute, hard, deadline)
                        .await
                }
                Err(f) => Err(f),
            };
            drop(permit);
            finished.notify_one();
            let trace = traced.zip(began).map(|(t, began)| {
                let failure = result.as_ref().err().map(|f| f.kind().as_str());
                executed_span(em, &a, instance, t, began, failure)
            });
            let _ = outcomes.send(Report {
                session,
                outcome: request_outcome::outcome(&a, instance, result),
                credit,
                trace,
            });
        });
    }
}
