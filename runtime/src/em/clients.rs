//! The EM's gRPC clients (storage's task-instance and liveness services, the scheduler), all on
//! lazily connected, reconnecting channels with `TCP_NODELAY` that carry the cluster token, and
//! the deadline each call carries (which failures to retry is `silk_core::retry`).

use std::time::Duration;

use silk_proto::scheduler::scheduler_client::SchedulerClient;
use silk_proto::storage::execution_manager_liveness_client::ExecutionManagerLivenessClient;
use silk_proto::storage::task_instances_client::TaskInstancesClient;

use super::error::{Error, Result};
use crate::auth::{AuthChannel as Channel, ClientSecurity};
use silk_core::wire::MAX_MESSAGE_BYTES;

/// Slack on top of a call's own wait before it counts as lost.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Every client the EM uses.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Storage: task instances.
    pub instances: TaskInstancesClient<Channel>,
    /// Storage: EM liveness, on a connection of its own (heartbeats never wait behind
    /// registrations or reports).
    pub liveness: ExecutionManagerLivenessClient<Channel>,
    /// The scheduler.
    pub scheduler: SchedulerClient<Channel>,
    /// The scheduler, on a connection of its own for heartbeats.
    pub scheduler_liveness: SchedulerClient<Channel>,
    /// Storage's URL, for error messages.
    pub storage_url: String,
}

impl Clients {
    /// Clients of storage at `storage_url` and the scheduler at `scheduler_url`, sending
    /// `security`'s cluster token (with TLS for `https://` URLs).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid URL or TLS settings that do not fit it.
    pub fn new(storage_url: &str, scheduler_url: &str, security: &ClientSecurity) -> Result<Self> {
        let channel = |url: &str| {
            security.lazy_channel(url).map_err(|e| Error::Config {
                message: e.to_string(),
            })
        };
        let storage = channel(storage_url)?;
        Ok(Self {
            instances: TaskInstancesClient::new(storage.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            liveness: ExecutionManagerLivenessClient::new(channel(storage_url)?),
            scheduler: SchedulerClient::new(channel(scheduler_url)?),
            scheduler_liveness: SchedulerClient::new(channel(scheduler_url)?),
            storage_url: storage_url.to_owned(),
        })
    }
}

/// A request with a deadline.
pub(super) fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    r
}
