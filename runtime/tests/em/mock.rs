//! In-process mock storage (task instances + EM liveness) and mock scheduler gRPC servers for the
//! EM runtime tests: scripted answers, every call recorded.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use silk_proto::scheduler as spb;
use silk_proto::scheduler::scheduler_server::{Scheduler, SchedulerServer};
use silk_proto::storage as pb;
use silk_proto::storage::execution_manager_liveness_server::{
    ExecutionManagerLiveness, ExecutionManagerLivenessServer,
};
use silk_proto::storage::task_instances_server::{TaskInstances, TaskInstancesServer};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

pub const EM_ID: u64 = 7;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap()
}

/// One scripted answer to one registration item.
#[derive(Debug, Clone)]
pub enum Register {
    Context(pb::ExecutionContext),
    Error(tonic::Code),
    /// Never answers.
    Park,
}

#[derive(Debug, Default)]
pub struct Storage {
    pub session: AtomicU64,
    pub registrations: AtomicUsize,
    pub heartbeats: AtomicUsize,
    pub dead: AtomicBool,
    pub register_script: Mutex<VecDeque<Register>>,
    /// `(session, job, task index)` of every registration item.
    pub registered: Mutex<Vec<(u64, u64, u64)>>,
    /// Report calls to fail (with UNAVAILABLE) before answering.
    pub failing_reports: AtomicUsize,
    /// `(session, em, outcome)` of every outcome received (also of failed calls).
    pub reports: Mutex<Vec<(u64, u64, pb::TaskOutcome)>>,
}

#[derive(Debug, Clone)]
pub struct StorageSvc(pub Arc<Storage>);

#[tonic::async_trait]
impl ExecutionManagerLiveness for StorageSvc {
    async fn register_execution_manager(
        &self,
        _: Request<pb::RegisterExecutionManagerRequest>,
    ) -> Result<Response<pb::Registration>, Status> {
        self.0.registrations.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(pb::Registration {
            id: EM_ID,
            session_id: self.0.session.load(Ordering::SeqCst),
        }))
    }

    async fn heartbeat(
        &self,
        _: Request<pb::ExecutionManagerIdRequest>,
    ) -> Result<Response<pb::SessionResponse>, Status> {
        self.0.heartbeats.fetch_add(1, Ordering::SeqCst);
        if self.0.dead.load(Ordering::SeqCst) {
            return Err(Status::permission_denied("execution manager is dead"));
        }
        Ok(Response::new(pb::SessionResponse {
            session_id: self.0.session.load(Ordering::SeqCst),
            stop_instances: Vec::new(),
        }))
    }
}

#[tonic::async_trait]
impl TaskInstances for StorageSvc {
    async fn register_task_instance(
        &self,
        _: Request<pb::RegisterTaskInstanceRequest>,
    ) -> Result<Response<pb::ExecutionContext>, Status> {
        Err(Status::unimplemented("unary form not used"))
    }

    async fn report_task_success(
        &self,
        _: Request<pb::TaskSuccess>,
    ) -> Result<Response<pb::Void>, Status> {
        Err(Status::unimplemented("unary form not used"))
    }

    async fn report_task_failure(
        &self,
        _: Request<pb::TaskFailure>,
    ) -> Result<Response<pb::Void>, Status> {
        Err(Status::unimplemented("unary form not used"))
    }

    async fn register_task_instances(
        &self,
        r: Request<pb::RegisterTaskInstancesRequest>,
    ) -> Result<Response<pb::RegisterTaskInstancesResponse>, Status> {
        let r = r.into_inner();
        let mut results = Vec::new();
        for t in &r.tasks {
            let index = match t.task_id.as_ref().and_then(|k| k.kind.as_ref()) {
                Some(pb::task_id::Kind::Index(i)) => *i,
                _ => u64::MAX,
            };
            lock(&self.0.registered).push((r.session_id, t.job_id, index));
            let next = lock(&self.0.register_script)
                .pop_front()
                .unwrap_or(Register::Error(tonic::Code::FailedPrecondition));
            let result = match next {
                Register::Context(c) => pb::register_result::Result::Context(c),
                Register::Error(code) => pb::register_result::Result::Error(pb::ItemError {
                    code: code as i32,
                    message: "scripted".into(),
                    kind: "scripted".into(),
                }),
                Register::Park => std::future::pending::<pb::register_result::Result>().await,
            };
            results.push(pb::RegisterResult {
                result: Some(result),
            });
        }
        Ok(Response::new(pb::RegisterTaskInstancesResponse { results }))
    }

    async fn report_task_outcomes(
        &self,
        r: Request<pb::ReportTaskOutcomesRequest>,
    ) -> Result<Response<pb::ReportTaskOutcomesResponse>, Status> {
        let r = r.into_inner();
        let failing = self
            .0
            .failing_reports
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Status::unavailable("scripted report failure"));
        }
        let n = r.outcomes.len();
        for o in r.outcomes {
            lock(&self.0.reports).push((r.session_id, r.execution_manager_id, o));
        }
        Ok(Response::new(pb::ReportTaskOutcomesResponse {
            results: vec![pb::OutcomeResult { error: None }; n],
        }))
    }
}

#[derive(Debug, Default)]
pub struct Sched {
    pub script: Mutex<VecDeque<Result<Vec<spb::Assignment>, tonic::Code>>>,
    pub polls: AtomicUsize,
    pub heartbeats: AtomicUsize,
    /// Handed out and not acknowledged.
    pub outstanding: Mutex<HashSet<u64>>,
    /// Acknowledgements that took effect, in order. Like the real scheduler, an id is
    /// acknowledged at most once: repeats (an EM resends acks whose call may have been lost) are
    /// no-ops.
    pub acked: Mutex<Vec<u64>>,
    pub shutdowns: AtomicUsize,
}

impl Sched {
    fn ack(&self, acks: Option<spb::Acks>) {
        for id in acks.map(|a| a.assignment_ids).unwrap_or_default() {
            if lock(&self.outstanding).remove(&id) {
                lock(&self.acked).push(id);
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct SchedSvc(pub Arc<Sched>);

#[tonic::async_trait]
impl Scheduler for SchedSvc {
    async fn next_tasks(
        &self,
        r: Request<spb::NextTasksRequest>,
    ) -> Result<Response<spb::NextTasksResponse>, Status> {
        let r = r.into_inner();
        self.0.polls.fetch_add(1, Ordering::SeqCst);
        self.0.ack(r.acks);
        let next = lock(&self.0.script).pop_front();
        match next {
            Some(Ok(batch)) => {
                lock(&self.0.outstanding).extend(batch.iter().map(|a| a.assignment_id));
                Ok(Response::new(spb::NextTasksResponse {
                    scheduler_id: 1,
                    assignments: batch,
                }))
            }
            Some(Err(code)) => Err(Status::new(code, "scripted scheduler error")),
            None => {
                tokio::time::sleep(Duration::from_millis(r.wait_ms.min(200))).await;
                Ok(Response::new(spb::NextTasksResponse {
                    scheduler_id: 1,
                    assignments: Vec::new(),
                }))
            }
        }
    }

    async fn heartbeat(
        &self,
        _: Request<spb::HeartbeatRequest>,
    ) -> Result<Response<spb::HeartbeatResponse>, Status> {
        self.0.heartbeats.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(spb::HeartbeatResponse { scheduler_id: 1 }))
    }

    async fn shutdown(
        &self,
        r: Request<spb::ShutdownRequest>,
    ) -> Result<Response<spb::ShutdownResponse>, Status> {
        self.0.shutdowns.fetch_add(1, Ordering::SeqCst);
        self.0.ack(r.into_inner().acks);
        Ok(Response::new(spb::ShutdownResponse { rescheduled: 0 }))
    }
}

/// Serves both mocks on random loopback ports; returns (storage url, scheduler url).
pub async fn serve(
    storage: Arc<Storage>,
    sched: Arc<Sched>,
    stop: CancellationToken,
) -> (String, String) {
    let sl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let urls = (
        format!("http://{}", sl.local_addr().unwrap()),
        format!("http://{}", cl.local_addr().unwrap()),
    );
    let svc = StorageSvc(storage);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TaskInstancesServer::new(svc.clone()))
            .add_service(ExecutionManagerLivenessServer::new(svc))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(sl),
                stop.clone().cancelled_owned(),
            ),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SchedulerServer::new(SchedSvc(sched)))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(cl),
                stop.cancelled_owned(),
            ),
    );
    urls
}
