//! The tonic service implementations: thin adapters from `silk.storage.v1` requests to
//! [`Storage`] calls. Every error goes through [`convert::status`].

use std::sync::Arc;
use std::time::Duration;

use silk_proto::storage as pb;
use silk_proto::storage::execution_manager_liveness_server::ExecutionManagerLiveness;
use silk_proto::storage::inbound_queues_server::InboundQueues;
use silk_proto::storage::job_orchestration_server::JobOrchestration;
use silk_proto::storage::resource_groups_server::ResourceGroups;
use silk_proto::storage::scheduler_registration_server::SchedulerRegistration;
use silk_proto::storage::session_server::Session;
use silk_proto::storage::task_instances_server::TaskInstances;
use silk_tdl::{JobId, ResourceGroupId, TaskInstanceId};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::{self, status};
use super::tenant;
use crate::auth::GroupTokens;
use crate::storage::Error as StorageError;
use crate::storage::db::{Db, DbError, Secret};
use crate::storage::instances::RegistrationKey;
use crate::storage::lanes::LaneKind;
use crate::storage::service::Storage;
use silk_core::ids::{ExecutionManagerId, SessionId};
use silk_core::wire::MAX_MESSAGE_BYTES;

/// Longest long-poll a scheduler may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Most entries one poll returns.
const MAX_ITEMS: u64 = 65_536;

/// Every storage gRPC service over one [`Storage`].
#[derive(Debug)]
pub struct StorageServices<D> {
    pub(super) storage: Storage<D>,
    /// Issues group tokens (`None` when the server checks no credentials).
    pub(super) tokens: Option<Arc<GroupTokens>>,
}

impl<D> Clone for StorageServices<D> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            tokens: self.tokens.clone(),
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Reply<T> {
    Ok(Response::new(v))
}

#[tonic::async_trait]
impl<D: Db + Clone> JobOrchestration for StorageServices<D> {
    async fn register_job(&self, r: Request<pb::RegisterJobRequest>) -> Reply<pb::JobIdResponse> {
        let group = ResourceGroupId(r.get_ref().resource_group_id);
        Self::own_group(&r, group)?;
        let r = r.into_inner();
        let job = match r.task_graph {
            Some(graph) => {
                self.storage
                    .register_compact_job(group, graph, &r.inputs)
                    .await
            }
            None => {
                self.storage
                    .register_job(group, &r.task_graph_json, &r.inputs)
                    .await
            }
        }
        .map_err(|e| status(&e))?;
        ok(pb::JobIdResponse { job_id: job.0 })
    }

    async fn register_job_stream(
        &self,
        mut r: Request<tonic::Streaming<pb::RegisterJobPart>>,
    ) -> Reply<pb::JobIdResponse> {
        let Some(first) = r.get_mut().message().await? else {
            return Err(Status::invalid_argument("a job registration with no parts"));
        };
        let group = ResourceGroupId(first.resource_group_id);
        Self::own_group(&r, group)?;
        let mut parts = r.into_inner();
        let mut upload = self.storage.upload();
        let mut next = Some(first);
        while let Some(part) = next {
            if part.resource_group_id != 0 && part.resource_group_id != group.0 {
                return Err(Status::invalid_argument(
                    "every part of a job registration must name the same resource group",
                ));
            }
            upload.add_inputs(&part.inputs).map_err(|e| status(&e))?;
            if !part.graph.is_empty() {
                // Checking a chunk's tasks takes milliseconds: not on a tokio worker.
                let chunk = part.graph;
                upload = tokio::task::spawn_blocking(move || {
                    upload.add_encoded_graph(chunk).map(|()| upload)
                })
                .await
                .map_err(|e| Status::internal(format!("checking a graph chunk panicked: {e}")))?
                .map_err(|e| status(&e))?;
            }
            next = parts.message().await?;
        }
        let job = self
            .storage
            .register_upload(group, upload)
            .await
            .map_err(|e| status(&e))?;
        ok(pb::JobIdResponse { job_id: job.0 })
    }

    async fn start_job(&self, r: Request<pb::JobIdRequest>) -> Reply<pb::JobStateResponse> {
        let job = JobId(r.get_ref().job_id);
        self.own_job(&r, job).await?;
        let state = self.storage.start_job(job).await.map_err(|e| status(&e))?;
        ok(pb::JobStateResponse {
            state: state.to_pb() as i32,
        })
    }

    async fn cancel_job(&self, r: Request<pb::JobIdRequest>) -> Reply<pb::JobStateResponse> {
        let job = JobId(r.get_ref().job_id);
        self.own_job(&r, job).await?;
        let state = self.storage.cancel_job(job).await.map_err(|e| status(&e))?;
        ok(pb::JobStateResponse {
            state: state.to_pb() as i32,
        })
    }

    async fn get_job_state(&self, r: Request<pb::JobIdRequest>) -> Reply<pb::JobStateResponse> {
        let job = JobId(r.get_ref().job_id);
        self.own_job(&r, job).await?;
        let state = self.storage.job_state(job).await.map_err(|e| status(&e))?;
        ok(pb::JobStateResponse {
            state: state.to_pb() as i32,
        })
    }

    async fn get_job_outputs(
        &self,
        r: Request<pb::GetJobOutputsRequest>,
    ) -> Reply<pb::JobOutputsResponse> {
        self.own_job(&r, JobId(r.get_ref().job_id)).await?;
        let r = r.into_inner();
        let (total_bytes, outputs) = self
            .storage
            .job_outputs_page(JobId(r.job_id), r.offset)
            .await
            .map_err(|e| status(&e))?;
        ok(pb::JobOutputsResponse {
            outputs,
            total_bytes,
        })
    }

    async fn get_job_error(&self, r: Request<pb::JobIdRequest>) -> Reply<pb::JobErrorResponse> {
        let job = JobId(r.get_ref().job_id);
        self.own_job(&r, job).await?;
        let error = self.storage.job_error(job).await.map_err(|e| status(&e))?;
        ok(pb::JobErrorResponse {
            message: error.message,
            kind: convert::pb_kind(error.kind) as i32,
        })
    }

    type WatchJobStream = ReceiverStream<Result<pb::JobProgress, Status>>;

    async fn watch_job(&self, r: Request<pb::JobIdRequest>) -> Reply<Self::WatchJobStream> {
        let job = JobId(r.get_ref().job_id);
        self.own_job(&r, job).await?;
        let mut watch = self.storage.watch_job(job).await.map_err(|e| status(&e))?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let progress = *watch.borrow_and_update();
                if tx.send(Ok(convert::pb_progress(progress))).await.is_err()
                    || progress.is_terminal()
                {
                    break;
                }
                if watch.changed().await.is_err() {
                    break;
                }
            }
        });
        ok(ReceiverStream::new(rx))
    }

    async fn list_jobs(&self, r: Request<pb::ListJobsRequest>) -> Reply<pb::ListJobsResponse> {
        let group = Self::listed_group(&r, r.get_ref().resource_group_id.map(ResourceGroupId))?;
        let r = r.into_inner();
        let state = r.state.map(convert::requested_state).transpose()?;
        let jobs = self
            .storage
            .list_jobs(r.limit, state, group)
            .await
            .map_err(|e| status(&e))?;
        ok(pb::ListJobsResponse {
            jobs: jobs.into_iter().map(convert::pb_summary).collect(),
        })
    }
}

#[tonic::async_trait]
impl<D: Db + Clone> ResourceGroups for StorageServices<D> {
    async fn open_resource_group(
        &self,
        r: Request<pb::OpenResourceGroupRequest>,
    ) -> Reply<pb::ResourceGroupIdResponse> {
        let create = Self::may_create_groups(&r);
        let r = r.into_inner();
        let secret = Secret::new(r.secret);
        let id = if create {
            self.storage
                .open_resource_group(&r.external_id, &secret)
                .await
                .map_err(|e| status(&e))?
        } else {
            // An unknown name answers like a wrong secret: names are not disclosed.
            match self
                .storage
                .find_resource_group(&r.external_id, &secret)
                .await
            {
                Ok(Some(id)) => id,
                Ok(None) | Err(StorageError::Db(DbError::InvalidSecret(_))) => {
                    return Err(tenant::no_such_group());
                }
                Err(e) => return Err(status(&e)),
            }
        };
        ok(pb::ResourceGroupIdResponse {
            resource_group_id: id.0,
            token: self.token_of(id),
        })
    }

    async fn add_resource_group(
        &self,
        r: Request<pb::AddResourceGroupRequest>,
    ) -> Reply<pb::ResourceGroupIdResponse> {
        let r = r.into_inner();
        let id = self
            .storage
            .add_resource_group(&r.external_id, &Secret::new(r.secret))
            .await
            .map_err(|e| status(&e))?;
        ok(pb::ResourceGroupIdResponse {
            resource_group_id: id.0,
            token: self.token_of(id),
        })
    }

    async fn verify_resource_group(
        &self,
        r: Request<pb::VerifyResourceGroupRequest>,
    ) -> Reply<pb::Void> {
        let r = r.into_inner();
        let group = ResourceGroupId(r.resource_group_id);
        match self
            .storage
            .verify_resource_group(group, &Secret::new(r.secret))
            .await
        {
            Ok(()) => ok(pb::Void {}),
            // One answer for both: group ids are not disclosed.
            Err(StorageError::Db(
                DbError::InvalidSecret(_) | DbError::ResourceGroupNotFound(_),
            )) => Err(tenant::no_such_group()),
            Err(e) => Err(status(&e)),
        }
    }
}

impl<D: Db + Clone> StorageServices<D> {
    async fn register_one(
        &self,
        session: SessionId,
        em: ExecutionManagerId,
        task: Option<&pb::TaskRef>,
        key: Option<RegistrationKey>,
    ) -> Result<pb::ExecutionContext, Status> {
        let (job, task) = convert::task_ref(task)?;
        let ctx = self
            .storage
            .register_assigned(session, job, task, em, key)
            .await
            .map_err(|e| status(&e))?;
        Ok(convert::pb_context(ctx))
    }

    /// A registered instance whose context does not fit in the registration response: failed
    /// `OutputTooLarge` if it cannot fit even alone, else taken back and queued again. Returns
    /// the item's answer.
    async fn overflowing(
        &self,
        session: SessionId,
        task: &pb::TaskRef,
        ctx: &pb::ExecutionContext,
        size: usize,
    ) -> Status {
        let Ok((job, task)) = convert::task_ref(Some(task)) else {
            return convert::invalid("task_id is missing");
        };
        let instance = TaskInstanceId(ctx.task_instance_id);
        if size > MAX_REGISTER_RESPONSE_BYTES {
            let failure = silk_ipc::TaskFailure::OutputTooLarge {
                what: "task inputs".into(),
                size_bytes: size as u64,
                limit_bytes: MAX_REGISTER_RESPONSE_BYTES as u64,
                limit: "RegisterTaskInstances message cap".into(),
            };
            tracing::warn!(job_id = job.0, %task, size_bytes = size, limit_bytes = MAX_REGISTER_RESPONSE_BYTES, "task inputs too large to hand out; task failed");
            let message = failure.to_string();
            if let Err(e) = self
                .storage
                .report_failure(session, job, task, instance, failure.kind(), &message)
                .await
            {
                return status(&e);
            }
            return Status::resource_exhausted(message);
        }
        self.storage.release_instance(job, task, instance);
        Status::resource_exhausted("registration response full; task queued again")
    }

    async fn outcome(&self, session: SessionId, o: pb::TaskOutcome) -> Result<(), Status> {
        let (job, task) = convert::task_ref(o.task.as_ref())?;
        let instance = TaskInstanceId(o.task_instance_id);
        let result = match o.outcome {
            Some(pb::task_outcome::Outcome::Outputs(outputs)) => {
                self.storage
                    .report_success(session, job, task, instance, outputs)
                    .await
            }
            Some(pb::task_outcome::Outcome::Failure(f)) => {
                let kind = convert::failure_kind(f.kind)?;
                self.storage
                    .report_failure(session, job, task, instance, kind, &f.message)
                    .await
            }
            None => return Err(convert::invalid("outcome is missing")),
        };
        result.map_err(|e| status(&e))
    }
}

/// Room left under the gRPC message cap for framing in a registration response.
const REGISTER_HEADROOM_BYTES: usize = 64 << 10;

/// Largest encoded `RegisterTaskInstances` response storage sends.
const MAX_REGISTER_RESPONSE_BYTES: usize = MAX_MESSAGE_BYTES - REGISTER_HEADROOM_BYTES;

/// Field number of `RegisterTaskInstancesResponse.results`.
const RESULTS_FIELD: u32 = 1;

fn item_error(s: &Status) -> pb::ItemError {
    pb::ItemError {
        code: s.code() as i32,
        message: s.message().to_owned(),
        kind: silk_core::wire::error_kind(s)
            .unwrap_or("invalid-argument")
            .to_owned(),
    }
}

#[tonic::async_trait]
impl<D: Db + Clone> TaskInstances for StorageServices<D> {
    async fn register_task_instance(
        &self,
        r: Request<pb::RegisterTaskInstanceRequest>,
    ) -> Reply<pb::ExecutionContext> {
        let r = r.into_inner();
        let ctx = self
            .register_one(
                SessionId(r.session_id),
                ExecutionManagerId(r.execution_manager_id),
                r.task.as_ref(),
                None,
            )
            .await?;
        ok(ctx)
    }

    async fn report_task_success(&self, r: Request<pb::TaskSuccess>) -> Reply<pb::Void> {
        let r = r.into_inner();
        let outcome = pb::TaskOutcome {
            task: r.task,
            task_instance_id: r.task_instance_id,
            outcome: Some(pb::task_outcome::Outcome::Outputs(r.outputs)),
        };
        self.outcome(SessionId(r.session_id), outcome).await?;
        ok(pb::Void {})
    }

    async fn report_task_failure(&self, r: Request<pb::TaskFailure>) -> Reply<pb::Void> {
        let r = r.into_inner();
        let failure = pb::Failure {
            kind: r.kind,
            message: r.message,
        };
        let outcome = pb::TaskOutcome {
            task: r.task,
            task_instance_id: r.task_instance_id,
            outcome: Some(pb::task_outcome::Outcome::Failure(failure)),
        };
        self.outcome(SessionId(r.session_id), outcome).await?;
        ok(pb::Void {})
    }

    async fn register_task_instances(
        &self,
        r: Request<pb::RegisterTaskInstancesRequest>,
    ) -> Reply<pb::RegisterTaskInstancesResponse> {
        let r = r.into_inner();
        let (session, em) = (
            SessionId(r.session_id),
            ExecutionManagerId(r.execution_manager_id),
        );
        if r.assignment_ids.len() > r.tasks.len() {
            return Err(convert::invalid("more assignment ids than tasks"));
        }
        let key = |i: usize| {
            r.assignment_ids.get(i).map(|&assignment| RegistrationKey {
                em,
                scheduler: r.scheduler_id,
                assignment,
            })
        };
        let calls = r
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| self.register_one(session, em, Some(t), key(i)));
        let registered = futures_join_all(calls).await;
        // The response carries every task's inputs: hand out as many as fit under the message
        // cap; the others are taken back and queued again (the EM gets them in a later
        // assignment), and a task whose inputs cannot fit even alone fails `OutputTooLarge`.
        let mut used = 0;
        let mut results = Vec::with_capacity(registered.len());
        for (t, res) in r.tasks.iter().zip(registered) {
            let result = match res {
                Ok(ctx) => {
                    let item = pb::RegisterResult {
                        result: Some(pb::register_result::Result::Context(ctx)),
                    };
                    let size = prost::encoding::message::encoded_len(RESULTS_FIELD, &item);
                    if used + size <= MAX_REGISTER_RESPONSE_BYTES {
                        used += size;
                        results.push(item);
                        continue;
                    }
                    let Some(pb::register_result::Result::Context(ctx)) = item.result else {
                        unreachable!("built above");
                    };
                    self.overflowing(session, t, &ctx, size).await
                }
                Err(s) => s,
            };
            results.push(pb::RegisterResult {
                result: Some(pb::register_result::Result::Error(item_error(&result))),
            });
        }
        ok(pb::RegisterTaskInstancesResponse { results })
    }

    async fn report_task_outcomes(
        &self,
        r: Request<pb::ReportTaskOutcomesRequest>,
    ) -> Reply<pb::ReportTaskOutcomesResponse> {
        let r = r.into_inner();
        let session = SessionId(r.session_id);
        let calls = r.outcomes.into_iter().map(|o| self.outcome(session, o));
        let results = futures_join_all(calls)
            .await
            .into_iter()
            .map(|res| pb::OutcomeResult {
                error: res.err().map(|s| item_error(&s)),
            })
            .collect();
        ok(pb::ReportTaskOutcomesResponse { results })
    }
}

/// Runs futures concurrently on this task and returns their results in order (so a batch of
/// successes shares one group commit).
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(set.iter_mut()) {
            if let Some(f) = fut {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *slot = Some(v);
                        *fut = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future completed"))
        .collect()
}

impl<D: Db + Clone> StorageServices<D> {
    async fn poll(&self, kind: LaneKind, r: pb::PollRequest) -> Reply<pb::PollResponse> {
        let max = usize::try_from(r.max_items.min(MAX_ITEMS)).unwrap_or(usize::MAX);
        let wait = Duration::from_millis(r.wait_ms).min(MAX_WAIT);
        let tasks = self.storage.poll_lane(kind, max, wait).await;
        ok(pb::PollResponse {
            session_id: self.storage.session().0,
            tasks: tasks.into_iter().map(convert::pb_ready).collect(),
        })
    }
}

#[tonic::async_trait]
impl<D: Db + Clone> InboundQueues for StorageServices<D> {
    async fn poll_ready_tasks(&self, r: Request<pb::PollRequest>) -> Reply<pb::PollResponse> {
        self.poll(LaneKind::Ready, r.into_inner()).await
    }

    async fn poll_commit_tasks(&self, r: Request<pb::PollRequest>) -> Reply<pb::PollResponse> {
        self.poll(LaneKind::Commit, r.into_inner()).await
    }

    async fn poll_cleanup_tasks(&self, r: Request<pb::PollRequest>) -> Reply<pb::PollResponse> {
        self.poll(LaneKind::Cleanup, r.into_inner()).await
    }
}

#[tonic::async_trait]
impl<D: Db + Clone> ExecutionManagerLiveness for StorageServices<D> {
    async fn register_execution_manager(
        &self,
        r: Request<pb::RegisterExecutionManagerRequest>,
    ) -> Reply<pb::Registration> {
        let address = r.into_inner().address;
        let (id, session) = self
            .storage
            .register_execution_manager(&address)
            .await
            .map_err(|e| status(&e))?;
        ok(pb::Registration {
            id: id.0,
            session_id: session.0,
        })
    }

    async fn heartbeat(
        &self,
        r: Request<pb::ExecutionManagerIdRequest>,
    ) -> Reply<pb::SessionResponse> {
        let em = ExecutionManagerId(r.into_inner().execution_manager_id);
        let (session, stops) = self
            .storage
            .heartbeat_and_stops(em)
            .await
            .map_err(|e| status(&e))?;
        ok(pb::SessionResponse {
            session_id: session.0,
            stop_instances: stops.into_iter().map(|i| i.0).collect(),
        })
    }
}

#[tonic::async_trait]
impl<D: Db + Clone> SchedulerRegistration for StorageServices<D> {
    async fn register_scheduler(
        &self,
        r: Request<pb::RegisterSchedulerRequest>,
    ) -> Reply<pb::Registration> {
        let r = r.into_inner();
        let port = u16::try_from(r.port).map_err(|_| convert::invalid("port out of range"))?;
        let (id, session) = self
            .storage
            .register_scheduler(&r.host, port)
            .await
            .map_err(|e| status(&e))?;
        ok(pb::Registration {
            id: id.0,
            session_id: session.0,
        })
    }

    async fn get_schedulers(&self, _: Request<pb::Void>) -> Reply<pb::SchedulersResponse> {
        let rows = self
            .storage
            .db()
            .schedulers()
            .await
            .map_err(|e| status(&e.into()))?;
        let schedulers = rows
            .into_iter()
            .map(|s| pb::Scheduler {
                scheduler_id: s.id.0,
                host: s.host,
                port: u32::from(s.port),
            })
            .collect();
        ok(pb::SchedulersResponse { schedulers })
    }
}

#[tonic::async_trait]
impl<D: Db + Clone> Session for StorageServices<D> {
    async fn get_session(&self, _: Request<pb::Void>) -> Reply<pb::SessionResponse> {
        ok(pb::SessionResponse {
            session_id: self.storage.session().0,
            stop_instances: Vec::new(),
        })
    }
}
