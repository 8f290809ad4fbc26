//! The scheduler's gRPC face (`silk.scheduler.v1`): `NextTasks` long-polls the dispatch queue and
//! records what it hands out in the EM registry (after acknowledging the caller's consumed
//! assignments), `Heartbeat` keeps an EM alive, `Shutdown` hands its unacknowledged assignments
//! back for rescheduling. Served with `TCP_NODELAY`. Also the conversions between
//! [`Assignment`] and its wire form, used by the execution manager's client.

use std::future::Future;
use std::time::{Duration, Instant};

use silk_proto::scheduler as pb;
use silk_proto::scheduler::scheduler_server::{Scheduler, SchedulerServer};
use silk_tdl::{JobId, ResourceGroupId, TaskId};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::auth::ServerSecurity;

use super::assignment::{Assignment, AssignmentId};
use super::dispatch::DispatchQueue;
use super::error::Error;
use super::registry::EmRegistry;
use crate::traces::{Parent, Traces};
use opentelemetry::KeyValue;
use silk_core::ids::{ExecutionManagerId, SchedulerId, SessionId};

/// Longest long-poll an EM may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Most assignments one `NextTasks` returns.
pub const MAX_ITEMS: usize = 4096;

/// The one place scheduler errors become gRPC statuses.
#[must_use]
pub fn status(e: &Error) -> Status {
    match e {
        Error::MarkedDead { .. } => Status::failed_precondition(e.to_string()),
        Error::SessionNotNewer { .. } => Status::internal(e.to_string()),
        Error::Storage { .. } => Status::unavailable(e.to_string()),
    }
}

/// An assignment on the wire.
#[must_use]
pub fn pb_assignment(a: &Assignment) -> pb::Assignment {
    let (kind, task_index) = match a.task {
        TaskId::Index(i) => (pb::TaskKind::Regular, i),
        TaskId::Commit => (pb::TaskKind::Commit, 0),
        TaskId::Cleanup => (pb::TaskKind::Cleanup, 0),
    };
    pb::Assignment {
        assignment_id: a.id.0,
        session_id: a.session.0,
        resource_group_id: a.group.0,
        job_id: a.job.0,
        kind: kind.into(),
        task_index,
    }
}

/// An assignment from the wire.
///
/// # Errors
/// `INVALID_ARGUMENT` for an unknown task kind.
pub fn assignment(a: &pb::Assignment) -> Result<Assignment, Status> {
    let task = match pb::TaskKind::try_from(a.kind) {
        Ok(pb::TaskKind::Regular) => TaskId::Index(a.task_index),
        Ok(pb::TaskKind::Commit) => TaskId::Commit,
        Ok(pb::TaskKind::Cleanup) => TaskId::Cleanup,
        Err(_) => return Err(Status::invalid_argument("unknown task kind")),
    };
    Ok(Assignment {
        id: AssignmentId(a.assignment_id),
        session: SessionId(a.session_id),
        group: ResourceGroupId(a.resource_group_id),
        job: JobId(a.job_id),
        task,
    })
}

/// The `Scheduler` service over a dispatch queue and an EM registry.
#[derive(Debug, Clone)]
pub struct SchedulerService {
    id: SchedulerId,
    dispatch: DispatchQueue,
    registry: EmRegistry,
    traces: Traces,
}

impl SchedulerService {
    /// A service for scheduler `id`.
    #[must_use]
    pub fn new(id: SchedulerId, dispatch: DispatchQueue, registry: EmRegistry) -> Self {
        Self {
            id,
            dispatch,
            registry,
            traces: Traces::off(),
        }
    }

    /// Emits a `task.dispatched` span per assignment handed out (see [`crate::traces`]).
    #[must_use]
    pub fn with_traces(mut self, traces: Traces) -> Self {
        self.traces = traces;
        self
    }

    /// `task.dispatched` spans: from when the core queued each assignment to now.
    fn trace_dispatched(&self, em: ExecutionManagerId, got: &[(Assignment, Duration)]) {
        let Some(now) = self.traces.now() else { return };
        for (a, waited) in got {
            let start = crate::traces::since(*waited, now);
            self.traces
                .stage("task.dispatched", a.job, Parent::Job, start, now, |l| {
                    crate::traces::task_attributes(l, a.task);
                    l.push(KeyValue::new("silk.em_id", crate::traces::id_attr(em.0)));
                    l.push(KeyValue::new(
                        "silk.assignment_id",
                        crate::traces::id_attr(a.id.0),
                    ));
                    l.push(KeyValue::new(
                        "silk.scheduler_id",
                        crate::traces::id_attr(self.id.0),
                    ));
                });
        }
    }

    fn acknowledge(&self, em: ExecutionManagerId, acks: Option<&pb::Acks>) {
        let Some(acks) = acks else { return };
        if acks.scheduler_id != self.id.0 {
            if !acks.assignment_ids.is_empty() {
                tracing::debug!(em_id = %em, from = acks.scheduler_id, "acknowledgements for another scheduler ignored");
            }
            return;
        }
        let ids: Vec<_> = acks
            .assignment_ids
            .iter()
            .map(|&i| AssignmentId(i))
            .collect();
        self.registry.complete(em, &ids, Instant::now());
    }
}

#[tonic::async_trait]
impl Scheduler for SchedulerService {
    async fn next_tasks(
        &self,
        r: Request<pb::NextTasksRequest>,
    ) -> Result<Response<pb::NextTasksResponse>, Status> {
        let r = r.into_inner();
        let em = ExecutionManagerId(r.execution_manager_id);
        self.acknowledge(em, r.acks.as_ref());
        self.registry
            .heartbeat(em, Instant::now())
            .map_err(|e| status(&e))?;
        if r.max_items == 0 {
            // Acknowledgements only (an EM whose slots are all busy).
            return Ok(Response::new(pb::NextTasksResponse {
                scheduler_id: self.id.0,
                assignments: Vec::new(),
            }));
        }
        let max = usize::try_from(r.max_items)
            .unwrap_or(MAX_ITEMS)
            .min(MAX_ITEMS);
        let wait = Duration::from_millis(r.wait_ms).min(MAX_WAIT);
        let timed = self.dispatch.pop_timed(max, wait).await;
        self.trace_dispatched(em, &timed);
        let got: Vec<Assignment> = timed.into_iter().map(|(a, _)| a).collect();
        // Recorded before the reply is sent: if the reply is lost, the assignments' leases
        // expire and they are dispatched again.
        self.registry
            .assign(em, &got, Instant::now())
            .map_err(|e| status(&e))?;
        for a in &got {
            tracing::debug!(em_id = %em, job_id = %a.job, task = %a.task, assignment = %a.id, "assigned");
        }
        Ok(Response::new(pb::NextTasksResponse {
            scheduler_id: self.id.0,
            assignments: got.iter().map(pb_assignment).collect(),
        }))
    }

    async fn heartbeat(
        &self,
        r: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let em = ExecutionManagerId(r.into_inner().execution_manager_id);
        self.registry
            .heartbeat(em, Instant::now())
            .map_err(|e| status(&e))?;
        Ok(Response::new(pb::HeartbeatResponse {
            scheduler_id: self.id.0,
        }))
    }

    async fn shutdown(
        &self,
        r: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        let r = r.into_inner();
        let em = ExecutionManagerId(r.execution_manager_id);
        self.acknowledge(em, r.acks.as_ref());
        let rescheduled = self.registry.mark_dead(em);
        Ok(Response::new(pb::ShutdownResponse {
            rescheduled: u32::try_from(rescheduled).unwrap_or(u32::MAX),
        }))
    }
}

/// Serves `service` on `listener` until `shutdown` completes, with `security`'s credential
/// checks and TLS (the default: neither, for servers inside one process).
///
/// # Errors
/// The transport error that stopped the server, or an unusable TLS certificate.
pub async fn serve(
    service: SchedulerService,
    listener: TcpListener,
    security: &ServerSecurity,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    security
        .apply_tls(tonic::transport::Server::builder())?
        .layer(security.layer())
        .tcp_nodelay(true)
        .add_service(SchedulerServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_round_trip() {
        for task in [TaskId::Index(7), TaskId::Commit, TaskId::Cleanup] {
            let a = Assignment {
                id: AssignmentId(1),
                session: SessionId(2),
                group: ResourceGroupId(3),
                job: JobId(4),
                task,
            };
            assert_eq!(assignment(&pb_assignment(&a)).unwrap(), a);
        }
        let mut bad = pb_assignment(&Assignment {
            id: AssignmentId(1),
            session: SessionId(2),
            group: ResourceGroupId(3),
            job: JobId(4),
            task: TaskId::Commit,
        });
        bad.kind = 99;
        assert_eq!(
            assignment(&bad).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
