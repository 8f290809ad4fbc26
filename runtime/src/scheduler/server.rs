//! A whole scheduler process: registers with storage (retrying until storage answers), runs the
//! round-robin core over storage's lanes through gRPC, the EM registry's sweeper, and serves
//! `silk.scheduler.v1` until cancelled. Storage being down or restarting never ends it: lane
//! polls back off and retry, and after an outage the scheduler registers again so storage
//! re-queues every ready task (lane entries popped by a lost poll would otherwise be gone).

use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::config::{ClientTls, PeerAuth, ServerTls};
use crate::auth::{AuthChannel as Channel, ClientSecurity};
use serde::{Deserialize, Serialize};
use silk_proto::storage as storage_pb;
use silk_proto::storage::inbound_queues_client::InboundQueuesClient;
use silk_proto::storage::scheduler_registration_client::SchedulerRegistrationClient;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::assignment::IdIssuer;
use super::config::CoreConfig;
use super::core::RoundRobinCore;
use super::dispatch::DispatchQueue;
use super::error::{Error, Result};
use super::grpc::{SchedulerService, serve};
use super::registry::{EmRegistry, RegistryConfig};
use super::runner::{LaneSource, Polled, run_core};
use crate::storage::{LaneKind, ReadyTask};
use crate::traces::{Service, Traces, TracesConfig};
use silk_core::ids::{SchedulerId, SessionId};

/// Slack on top of a long-poll's wait before a call counts as lost.
const CALL_SLACK: Duration = Duration::from_secs(5);

/// Settings of a scheduler process (the `silk scheduler` config file; see `docs/config.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Address to serve gRPC on.
    pub listen: String,
    /// Host storage records for this scheduler (default: the listen host).
    pub advertise_host: Option<String>,
    /// Storage endpoint URL.
    pub storage_url: String,
    /// Round-robin core tuning.
    pub core: CoreConfig,
    /// EM registry tuning.
    pub registry: RegistryConfig,
    /// Address of the Prometheus endpoint (`GET /metrics`) `silk scheduler` serves; empty
    /// turns it off.
    pub metrics_listen: String,
    /// The cluster token file (`[auth]`): sent to storage and required of execution managers.
    /// `silk scheduler` refuses to start without it; a scheduler run in-process without it
    /// checks no credentials.
    pub auth: Option<PeerAuth>,
    /// The server's certificate and key (`[tls]`); without it the scheduler serves plaintext.
    pub tls: Option<ServerTls>,
    /// TLS for an `https://` storage URL (`[client_tls]`).
    pub client_tls: Option<ClientTls>,
    /// OpenTelemetry span export (`[traces]`); `None`: off.
    pub traces: Option<TracesConfig>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50052".into(),
            advertise_host: None,
            storage_url: "http://127.0.0.1:50051".into(),
            core: CoreConfig::default(),
            registry: RegistryConfig::default(),
            metrics_listen: "127.0.0.1:9152".into(),
            auth: None,
            tls: None,
            client_tls: None,
            traces: None,
        }
    }
}

/// A lazily connected (and transparently reconnecting) channel with `TCP_NODELAY`, sending
/// `security`'s token.
///
/// # Errors
/// [`Error::Storage`] for an invalid URL or TLS settings that do not fit it.
pub fn lazy_channel(url: &str, security: &ClientSecurity) -> Result<Channel> {
    security.lazy_channel(url).map_err(|e| Error::Storage {
        message: e.to_string(),
    })
}

fn storage_error(s: &tonic::Status) -> Error {
    let hint = crate::auth::tls_failure(s)
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    Error::Storage {
        message: format!("{:?}: {}{hint}", s.code(), s.message()),
    }
}

/// Storage's lanes over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcLanes {
    lanes: InboundQueuesClient<Channel>,
    registration: SchedulerRegistrationClient<Channel>,
    host: String,
    port: u16,
}

impl GrpcLanes {
    /// Lanes of the storage behind `channel`; `host:port` is what registration records.
    #[must_use]
    pub fn new(channel: Channel, host: String, port: u16) -> Self {
        Self {
            lanes: InboundQueuesClient::new(channel.clone())
                .max_decoding_message_size(silk_core::wire::MAX_MESSAGE_BYTES),
            registration: SchedulerRegistrationClient::new(channel),
            host,
            port,
        }
    }

    /// Registers this scheduler once.
    ///
    /// # Errors
    /// [`Error::Storage`] when storage does not answer.
    pub async fn register(&self) -> Result<(SchedulerId, SessionId)> {
        let mut req = tonic::Request::new(storage_pb::RegisterSchedulerRequest {
            host: self.host.clone(),
            port: u32::from(self.port),
        });
        req.set_timeout(CALL_SLACK);
        let r = self
            .registration
            .clone()
            .register_scheduler(req)
            .await
            .map_err(|s| storage_error(&s))?
            .into_inner();
        Ok((SchedulerId(r.id), SessionId(r.session_id)))
    }

    /// Registers, retrying with backoff until storage answers or `cancel`; `None` if cancelled.
    /// `storage_url` is for the logs.
    pub async fn register_until_up(
        &self,
        storage_url: &str,
        cancel: &CancellationToken,
    ) -> Option<SchedulerId> {
        let mut delay = silk_core::retry::FIRST_DELAY;
        loop {
            match self.register().await {
                Ok((id, session)) => {
                    tracing::info!(scheduler_id = %id, session = %session, "registered with storage");
                    return Some(id);
                }
                Err(e) => {
                    tracing::warn!(storage_url, error = %e, retry_in_ms = delay.as_millis(), "storage registration failed");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = silk_core::retry::next_delay(delay);
        }
    }
}

fn ready_task(t: storage_pb::ReadyTask) -> Result<ReadyTask> {
    let task = silk_core::convert::task_id(t.task_id.as_ref()).map_err(|s| storage_error(&s))?;
    Ok(ReadyTask {
        group: silk_tdl::ResourceGroupId(t.resource_group_id),
        job: silk_tdl::JobId(t.job_id),
        task,
    })
}

impl LaneSource for GrpcLanes {
    async fn poll(&self, kind: LaneKind, max: usize, wait: Duration) -> Result<Polled> {
        let mut req = tonic::Request::new(storage_pb::PollRequest {
            max_items: u64::try_from(max).unwrap_or(u64::MAX),
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        });
        req.set_timeout(wait + CALL_SLACK);
        let mut client = self.lanes.clone();
        let answer = match kind {
            LaneKind::Ready => client.poll_ready_tasks(req).await,
            LaneKind::Commit => client.poll_commit_tasks(req).await,
            LaneKind::Cleanup => client.poll_cleanup_tasks(req).await,
        }
        .map_err(|s| storage_error(&s))?
        .into_inner();
        let tasks = answer
            .tasks
            .into_iter()
            .map(ready_task)
            .collect::<Result<Vec<_>>>()?;
        Ok(Polled {
            session: SessionId(answer.session_id),
            tasks,
        })
    }

    async fn resync(&self) -> Result<()> {
        self.register().await.map(|_| ())
    }
}

/// Runs a scheduler serving on `listener` until `cancel`.
///
/// # Errors
/// An invalid storage URL, or the transport error that stopped the gRPC server.
pub async fn run_scheduler(
    config: SchedulerConfig,
    listener: TcpListener,
    cancel: CancellationToken,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    run_scheduler_with(config, listener, cancel, &Metrics::new()).await
}

/// As [`run_scheduler`], exposing the scheduler's metrics in `metrics` (the endpoint is the
/// caller's).
///
/// # Errors
/// As [`run_scheduler`].
pub async fn run_scheduler_with(
    config: SchedulerConfig,
    listener: TcpListener,
    cancel: CancellationToken,
    metrics: &Metrics,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let local = listener.local_addr()?;
    let host = config
        .advertise_host
        .clone()
        .unwrap_or_else(|| local.ip().to_string());
    let authority = config.auth.as_ref().map(PeerAuth::authority).transpose()?;
    let server = crate::auth::config::server_security(authority, config.tls.as_ref())?;
    let client =
        crate::auth::config::client_security(config.auth.as_ref(), config.client_tls.as_ref())?;
    let lanes = Arc::new(GrpcLanes::new(
        lazy_channel(&config.storage_url, &client)?,
        host,
        local.port(),
    ));
    let traces = Traces::start(config.traces.as_ref(), Service::Scheduler)?;
    let Some(id) = lanes.register_until_up(&config.storage_url, &cancel).await else {
        traces.shutdown().await;
        return Ok(());
    };
    let dispatch = DispatchQueue::new(config.core.dispatch_queue_capacity);
    metrics.register(|r| dispatch.metrics().register(r));
    let (tx, rx) = mpsc::unbounded_channel();
    let registry = EmRegistry::new(config.registry.clone(), tx);
    metrics.register(|r| {
        crate::metrics::scheduler::register_redispatched(r, registry.redispatched());
    });
    let core = RoundRobinCore::with_issuer(config.core.clone(), IdIssuer::starting_at(1));
    let tracker = TaskTracker::new();
    tracker.spawn(run_core(
        core,
        lanes,
        dispatch.clone(),
        rx,
        cancel.child_token(),
    ));
    tracker.spawn(registry.clone().run_sweeper(cancel.child_token()));
    tracker.close();
    tracing::info!(address = %local, scheduler_id = %id, "scheduler listening");
    let served = serve(
        SchedulerService::new(id, dispatch, registry).with_traces(traces.clone()),
        listener,
        &server,
        cancel.clone().cancelled_owned(),
    )
    .await;
    cancel.cancel();
    tracker.wait().await;
    traces.shutdown().await;
    served?;
    tracing::info!("scheduler stopped");
    Ok(())
}
