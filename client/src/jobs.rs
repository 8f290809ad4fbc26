//! The job calls of [`Client`]: resource groups, submitting, state, outputs, errors,
//! cancelling and listing. Each is one unary RPC under the retry rules of `retry.rs`.

use std::fmt;

use silk_ipc::FailureKind;
use silk_proto::storage as pb;
use silk_tdl::{JobId, ResourceGroupId};
use tonic::Code;

use super::retry::{Repeat, with_retry};
use super::values::{decode_values, encode_values};
use super::{Client, ClientError, JobState};
use silk_core::graph::TaskGraph;

/// Why a job failed: storage's readable text (naming the task, its attempts and the failure
/// kind) and the failure kind of the task at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// What failed: task error, panic, crash, timeout, ...
    pub kind: FailureKind,
    /// Readable text naming the task.
    pub message: String,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Which jobs [`Client::list`] returns. The default lists the 100 newest jobs of every group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// At most this many (0: storage's default of 100; at most 1000).
    pub limit: u32,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this resource group.
    pub group: Option<ResourceGroupId>,
}

/// One job of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    /// The job.
    pub job: JobId,
    /// Its resource group.
    pub group: ResourceGroupId,
    /// Its state.
    pub state: JobState,
    /// When it was registered (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// When it reached a terminal state.
    pub ended_at_ms: Option<i64>,
    /// Regular tasks in its graph (commit and cleanup not counted).
    pub task_count: u64,
}

/// One call of a tonic client method, as an owned future (the client is moved into it).
macro_rules! rpc {
    ($client:expr, $method:ident, $request:expr) => {{
        let mut client = $client;
        let request = $request;
        async move { client.$method(request).await }
    }};
}

/// Graph and inputs bytes per part of a streamed registration.
const PART_BYTES: usize = 1 << 20;

/// The parts of a streamed registration: the graph's chunks, then the inputs frame in pieces;
/// the first part names the group.
fn register_parts(
    group: ResourceGroupId,
    graph: &TaskGraph,
    inputs: &[u8],
) -> Vec<pb::RegisterJobPart> {
    let graphs = graph
        .to_compact_chunks(PART_BYTES)
        .into_iter()
        .map(|chunk| pb::RegisterJobPart {
            graph: prost::Message::encode_to_vec(&chunk),
            ..pb::RegisterJobPart::default()
        });
    let pieces = inputs.chunks(PART_BYTES).map(|piece| pb::RegisterJobPart {
        inputs: piece.to_vec(),
        ..pb::RegisterJobPart::default()
    });
    let mut parts: Vec<_> = graphs.chain(pieces).collect();
    parts[0].resource_group_id = group.0;
    parts
}

fn state_of(raw: i32) -> Result<JobState, ClientError> {
    pb::JobState::try_from(raw)
        .ok()
        .and_then(JobState::from_pb)
        .ok_or_else(|| ClientError::decode("job state", format!("unknown job state {raw}")))
}

impl Client {
    /// The resource group named `name`, checked against its secret (or created with `secret` if
    /// the name is new and this client holds the admin token). From then on this client (and
    /// its clones) sends the group's token, which storage issued in the answer.
    ///
    /// # Errors
    /// [`ClientError::Unauthenticated`] for a wrong secret or an unknown name (without the admin
    /// token); [`ClientError::Unavailable`].
    pub async fn open_group(
        &self,
        name: &str,
        secret: impl AsRef<[u8]>,
    ) -> Result<ResourceGroupId, ClientError> {
        let request = pb::OpenResourceGroupRequest {
            external_id: name.to_owned(),
            secret: secret.as_ref().to_vec(),
        };
        let reply = with_retry(self.retry, Repeat::Idempotent, || {
            rpc!(self.groups_rpc(), open_resource_group, request.clone())
        })
        .await
        .map_err(|s| self.status_error(&s, None))?
        .into_inner();
        if !reply.token.is_empty() {
            let token = silk_core::auth::Token::new(&reply.token, "group token")
                .map_err(|e| ClientError::decode("group token", e.to_string()))?;
            self.set_token(&token);
        }
        Ok(ResourceGroupId(reply.resource_group_id))
    }

    /// Submits `graph` with one value per job input (in `graph.job_inputs()` order) and starts
    /// it.
    ///
    /// # Errors
    /// [`ClientError::InvalidGraph`] for a graph that fails [`TaskGraph::validate`],
    /// [`ClientError::InvalidArgument`] for a wrong number of inputs, else as
    /// [`Client::submit_json`].
    pub async fn submit(
        &self,
        group: ResourceGroupId,
        graph: &TaskGraph,
        inputs: &[rmpv::Value],
    ) -> Result<JobId, ClientError> {
        graph.validate()?;
        let expected = graph.job_inputs().len();
        if inputs.len() != expected {
            return Err(ClientError::InvalidArgument(format!(
                "the graph takes {expected} job input(s), got {}",
                inputs.len()
            )));
        }
        self.submit_graph(group, graph, encode_values(inputs)?)
            .await
    }

    /// Submits a task graph given as JSON (`docs/task-graph.md`) with its inputs frame, and
    /// starts it: the graph is parsed and validated here and sent as [`Client::submit_graph`]
    /// sends it.
    ///
    /// # Errors
    /// [`ClientError::InvalidGraph`] for JSON that is not a valid graph, else as
    /// [`Client::submit_graph`].
    pub async fn submit_json(
        &self,
        group: ResourceGroupId,
        graph_json: &str,
        inputs_frame: Vec<u8>,
    ) -> Result<JobId, ClientError> {
        let graph = TaskGraph::from_json(graph_json)?;
        self.submit_graph(group, &graph, inputs_frame).await
    }

    /// Submits `graph` with its inputs frame, and starts it. The graph travels in its compact
    /// form (about an eighth of its JSON size; storage validates it again), streamed in chunks
    /// of about a MiB with the inputs, so no message limit caps a job (storage's
    /// `max_job_bytes` does, with an error naming it and the size). Registering is
    /// retried only while storage cannot be connected to (a retry after the request was sent
    /// could register the job twice); starting is retried like any idempotent call.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] when storage rejects the graph or inputs,
    /// [`ClientError::Unauthenticated`] for an unknown group, [`ClientError::Unavailable`].
    pub async fn submit_graph(
        &self,
        group: ResourceGroupId,
        graph: &TaskGraph,
        inputs_frame: Vec<u8>,
    ) -> Result<JobId, ClientError> {
        let parts = std::sync::Arc::new(register_parts(group, graph, &inputs_frame));
        let reply = with_retry(self.retry, Repeat::OnlyUnsent, || {
            let parts = std::sync::Arc::clone(&parts);
            let stream = tokio_stream::iter((0..parts.len()).map(move |i| parts[i].clone()));
            rpc!(self.jobs_rpc(), register_job_stream, stream)
        })
        .await
        .map_err(|s| self.status_error(&s, None))?;
        let job = JobId(reply.into_inner().job_id);
        let started = with_retry(self.retry, Repeat::Idempotent, || {
            rpc!(
                self.jobs_rpc(),
                start_job,
                pb::JobIdRequest { job_id: job.0 }
            )
        })
        .await;
        match started {
            Ok(_) => Ok(job),
            // A retried start whose first attempt got through: the job already left Ready.
            Err(s)
                if s.code() == Code::FailedPrecondition
                    && self.state(job).await? != JobState::Ready =>
            {
                Ok(job)
            }
            Err(s) => Err(self.status_error(&s, Some(job))),
        }
    }

    /// The job's current state (terminated jobs too, until their retention ends).
    ///
    /// # Errors
    /// [`ClientError::NotFound`], [`ClientError::Unavailable`].
    pub async fn state(&self, job: JobId) -> Result<JobState, ClientError> {
        let reply = with_retry(self.retry, Repeat::Idempotent, || {
            rpc!(
                self.jobs_rpc(),
                get_job_state,
                pb::JobIdRequest { job_id: job.0 }
            )
        })
        .await
        .map_err(|s| self.status_error(&s, Some(job)))?;
        state_of(reply.into_inner().state)
    }

    /// The outputs frame of a succeeded job (see [`super::decode_values`]).
    ///
    /// # Errors
    /// [`ClientError::NotFound`]; [`ClientError::Rpc`] (`FailedPrecondition`) if the job has
    /// not succeeded.
    pub async fn outputs_frame(&self, job: JobId) -> Result<Vec<u8>, ClientError> {
        let mut frame = Vec::new();
        loop {
            let offset = frame.len() as u64;
            let reply = with_retry(self.retry, Repeat::Idempotent, || {
                rpc!(
                    self.jobs_rpc(),
                    get_job_outputs,
                    pb::GetJobOutputsRequest {
                        job_id: job.0,
                        offset,
                    }
                )
            })
            .await
            .map_err(|s| self.status_error(&s, Some(job)))?
            .into_inner();
            frame.extend_from_slice(&reply.outputs);
            let total = reply.total_bytes;
            if frame.len() as u64 >= total {
                frame.truncate(usize::try_from(total).unwrap_or(usize::MAX));
                return Ok(frame);
            }
            if reply.outputs.is_empty() {
                return Err(ClientError::decode(
                    "job outputs",
                    format!("storage sent an empty page at byte {offset} of {total}"),
                ));
            }
        }
    }

    /// The outputs of a succeeded job, in `graph.job_outputs()` order.
    ///
    /// # Errors
    /// As [`Client::outputs_frame`], or [`ClientError::Decode`].
    pub async fn outputs(&self, job: JobId) -> Result<Vec<rmpv::Value>, ClientError> {
        decode_values(&self.outputs_frame(job).await?)
    }

    /// Why a failed job failed.
    ///
    /// # Errors
    /// [`ClientError::NotFound`]; [`ClientError::Rpc`] (`FailedPrecondition`) if the job has
    /// not failed.
    pub async fn error(&self, job: JobId) -> Result<JobError, ClientError> {
        let reply = with_retry(self.retry, Repeat::Idempotent, || {
            rpc!(
                self.jobs_rpc(),
                get_job_error,
                pb::JobIdRequest { job_id: job.0 }
            )
        })
        .await
        .map_err(|s| self.status_error(&s, Some(job)))?
        .into_inner();
        let kind = silk_core::convert::failure_kind(reply.kind)
            .map_err(|s| ClientError::decode("failure kind", s.message()))?;
        Ok(JobError {
            kind,
            message: reply.message,
        })
    }

    /// Cancels a job; returns `CleanupReady` (its cleanup task will run) or `Cancelled`.
    /// Cancelling a job that is already cancelled (or being cleaned up) returns its state, so a
    /// retried cancel is harmless.
    ///
    /// # Errors
    /// [`ClientError::NotFound`]; [`ClientError::Rpc`] (`FailedPrecondition`) for a job that
    /// already succeeded or failed.
    pub async fn cancel(&self, job: JobId) -> Result<JobState, ClientError> {
        let result = with_retry(self.retry, Repeat::Idempotent, || {
            rpc!(
                self.jobs_rpc(),
                cancel_job,
                pb::JobIdRequest { job_id: job.0 }
            )
        })
        .await;
        match result {
            Ok(reply) => state_of(reply.into_inner().state),
            Err(s) if s.code() == Code::FailedPrecondition => match self.state(job).await? {
                state @ (JobState::Cancelled | JobState::CleanupReady) => Ok(state),
                _ => Err(self.status_error(&s, Some(job))),
            },
            Err(s) => Err(self.status_error(&s, Some(job))),
        }
    }

    /// Jobs newest first (terminated ones too, until their retention ends).
    ///
    /// # Errors
    /// [`ClientError::Unavailable`].
    pub async fn list(&self, filter: ListFilter) -> Result<Vec<JobSummary>, ClientError> {
        let request = pb::ListJobsRequest {
            limit: filter.limit,
            state: filter.state.map(|s| s.to_pb() as i32),
            resource_group_id: filter.group.map(|g| g.0),
        };
        let reply = with_retry(self.retry, Repeat::Idempotent, || {
            rpc!(self.jobs_rpc(), list_jobs, request)
        })
        .await
        .map_err(|s| self.status_error(&s, None))?;
        reply
            .into_inner()
            .jobs
            .into_iter()
            .map(|j| {
                Ok(JobSummary {
                    job: JobId(j.job_id),
                    group: ResourceGroupId(j.resource_group_id),
                    state: state_of(j.state)?,
                    created_at_ms: j.created_at_ms,
                    ended_at_ms: j.ended_at_ms,
                    task_count: j.task_count,
                })
            })
            .collect()
    }
}
