//! A raw-gRPC job client for end-to-end tests (`silk_proto` clients only), over TLS with the
//! cluster's credentials: groups are added with the admin token, and each job's calls carry its
//! group's token (the one `AddResourceGroup` answered with). Unary calls are retried while
//! storage is unreachable, and waits follow `WatchJob`, re-opening it (with a `GetJobState` look
//! in between) when the stream breaks because storage restarted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmpv::Value;
use silk_proto::storage as pb;
use silk_proto::storage::job_orchestration_client::JobOrchestrationClient;
use silk_proto::storage::resource_groups_client::ResourceGroupsClient;
use silk_runtime::auth::{AuthChannel, ClientSecurity, Token, with_token};
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::values;

pub use pb::{FailureKind, JobProgress, JobState};

/// A channel to storage at `url` with `security`'s TLS, retried until storage answers (no
/// deadline of its own: scenarios run under a watchdog).
pub async fn connect(url: &str, security: &ClientSecurity) -> Channel {
    let endpoint = security.endpoint(url).unwrap();
    loop {
        if let Ok(c) = endpoint.connect().await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Errors that mean "storage is not reachable right now".
fn retryable(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    )
}

/// Whether `state` is terminal.
pub fn is_terminal(state: JobState) -> bool {
    matches!(
        state,
        JobState::Succeeded | JobState::Failed | JobState::Cancelled
    )
}

/// Job client.
#[derive(Debug, Clone)]
pub struct Jobs {
    channel: Channel,
    /// `security`'s token: the cluster's admin token.
    admin: Token,
    /// The token of each group added.
    group_tokens: Arc<Mutex<HashMap<u64, Token>>>,
    /// The group of each job submitted.
    owners: Arc<Mutex<HashMap<u64, u64>>>,
}

impl Jobs {
    /// Connects to storage at `url` with `security` (TLS and the admin token).
    pub async fn connect(url: &str, security: &ClientSecurity) -> Self {
        Self {
            channel: connect(url, security).await,
            admin: security.token.clone().expect("the admin token"),
            group_tokens: Arc::default(),
            owners: Arc::default(),
        }
    }

    fn group_client(&self, group: u64) -> JobOrchestrationClient<AuthChannel> {
        let token = self.group_tokens.lock().unwrap().get(&group).cloned();
        JobOrchestrationClient::new(with_token(self.channel.clone(), token.as_ref()))
    }

    /// A client sending the token of `job`'s group (no token for a job this client did not
    /// submit).
    fn client(&self, job: u64) -> JobOrchestrationClient<AuthChannel> {
        let group = self.owners.lock().unwrap().get(&job).copied();
        self.group_client(group.unwrap_or(u64::MAX))
    }

    /// Calls `job_id`-taking `rpc`, retrying while storage is unreachable.
    async fn call<T, F, Fut>(&self, job_id: u64, rpc: F) -> Result<T, Status>
    where
        F: Fn(JobOrchestrationClient<AuthChannel>, pb::JobIdRequest) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        loop {
            match rpc(self.client(job_id), pb::JobIdRequest { job_id }).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if retryable(&s) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(s) => return Err(s),
            }
        }
    }

    /// Adds a resource group (with the admin token) and keeps its token.
    pub async fn add_group(&self, name: &str) -> u64 {
        let reply = ResourceGroupsClient::new(with_token(self.channel.clone(), Some(&self.admin)))
            .add_resource_group(pb::AddResourceGroupRequest {
                external_id: name.into(),
                secret: b"e2e-secret".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        let token = Token::new(&reply.token, "group token").unwrap();
        self.group_tokens
            .lock()
            .unwrap()
            .insert(reply.resource_group_id, token);
        reply.resource_group_id
    }

    /// Registers and starts a job of `graph` with `inputs`.
    pub async fn submit(&self, group: u64, graph: &serde_json::Value, inputs: &[Value]) -> u64 {
        let job_id = self
            .group_client(group)
            .register_job(pb::RegisterJobRequest {
                task_graph: None,
                resource_group_id: group,
                task_graph_json: graph.to_string(),
                inputs: values::frame(inputs),
            })
            .await
            .unwrap_or_else(|s| panic!("register_job: {s}\ngraph: {graph}"))
            .into_inner()
            .job_id;
        self.owners.lock().unwrap().insert(job_id, group);
        self.client(job_id)
            .start_job(pb::JobIdRequest { job_id })
            .await
            .unwrap_or_else(|s| panic!("start_job {job_id}: {s}"));
        job_id
    }

    /// The job's state.
    pub async fn state(&self, job: u64) -> JobState {
        self.call(job, |mut c, r| async move { c.get_job_state(r).await })
            .await
            .unwrap()
            .state()
    }

    /// Cancels the job; returns the state it moved to.
    pub async fn cancel(&self, job: u64) -> JobState {
        self.call(job, |mut c, r| async move { c.cancel_job(r).await })
            .await
            .unwrap()
            .state()
    }

    /// The outputs frame, read page by page, or the error storage gives.
    pub async fn try_outputs(&self, job: u64) -> Result<Vec<Value>, Status> {
        Ok(values::unframe(&self.outputs_frame(job).await?))
    }

    /// The outputs frame as stored (not decoded), read page by page.
    pub async fn outputs_frame(&self, job: u64) -> Result<Vec<u8>, Status> {
        let mut frame = Vec::new();
        loop {
            let offset = frame.len() as u64;
            let r = self
                .call(job, |mut c, r| async move {
                    c.get_job_outputs(pb::GetJobOutputsRequest {
                        job_id: r.job_id,
                        offset,
                    })
                    .await
                })
                .await?;
            frame.extend_from_slice(&r.outputs);
            if frame.len() as u64 >= r.total_bytes {
                return Ok(frame);
            }
        }
    }

    /// The job's error message and failure kind (only once it failed).
    pub async fn error(&self, job: u64) -> (String, FailureKind) {
        let r = self
            .call(job, |mut c, r| async move { c.get_job_error(r).await })
            .await
            .unwrap_or_else(|s| panic!("get_job_error {job}: {s}"));
        let kind = r.kind();
        (r.message, kind)
    }

    /// Follows the job's progress until `until` holds, and returns that progress. Panics if
    /// the job ends without it. Survives storage restarts: a broken watch is re-opened.
    pub async fn watch_until(&self, job: u64, until: impl Fn(&JobProgress) -> bool) -> JobProgress {
        let check = |p: JobProgress| {
            if until(&p) {
                Some(p)
            } else if is_terminal(p.state()) {
                panic!("job {job} ended before the awaited progress: {p:?}")
            } else {
                None
            }
        };
        loop {
            match self
                .client(job)
                .watch_job(pb::JobIdRequest { job_id: job })
                .await
            {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    while let Ok(Some(p)) = stream.message().await {
                        if let Some(p) = check(p) {
                            return p;
                        }
                    }
                }
                Err(s) if retryable(&s) => {}
                Err(s) => panic!("watch_job {job}: {s}"),
            }
            // The stream broke (storage restarting?): look at the state, then watch again.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let state = self.state(job).await;
            if is_terminal(state) {
                let progress = JobProgress {
                    state: state.into(),
                    ..JobProgress::default()
                };
                if let Some(p) = check(progress) {
                    return p;
                }
            }
        }
    }

    /// Waits for a terminal state.
    pub async fn wait_terminal(&self, job: u64) -> JobState {
        self.watch_until(job, |p| is_terminal(p.state()))
            .await
            .state()
    }

    /// Waits for the job to succeed (panics with its error otherwise) and returns its outputs.
    pub async fn wait_succeeded(&self, job: u64) -> Vec<Value> {
        let state = self.wait_terminal(job).await;
        if state == JobState::Failed {
            let (message, kind) = self.error(job).await;
            panic!("job {job} failed ({kind:?}): {message}");
        }
        assert_eq!(state, JobState::Succeeded, "job {job}");
        self.try_outputs(job).await.unwrap()
    }

    /// Waits for the job to fail and returns its error message and kind.
    pub async fn wait_failed(&self, job: u64) -> (String, FailureKind) {
        let state = self.wait_terminal(job).await;
        assert_eq!(state, JobState::Failed, "job {job} should have failed");
        self.error(job).await
    }
}
