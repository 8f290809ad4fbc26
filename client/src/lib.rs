//! The Rust client of silk: build a typed task graph ([`GraphBuilder`]), submit it to the
//! storage service, follow its progress, and fetch its outputs or error ([`Client`]). It
//! compiles no sandbox, database driver or service: an application that only submits jobs
//! depends on this crate alone.
//!
//! The client talks gRPC to storage only (the scheduler and execution managers pick the job up
//! from there). For local use, `silk dev` runs storage, a scheduler and an execution manager in
//! one process and prints the storage address (`http://127.0.0.1:50051` by default).
//!
//! Every unary call retries while storage is unavailable, with capped exponential backoff up to
//! [`RetryPolicy::max_elapsed`] (30 s by default); registering a job is retried only when the
//! request was never sent, so a retry cannot create a duplicate job (see `retry.rs`). A
//! [`Client::watch`] stream reconnects by itself and resumes: storage sends the current progress
//! first.
//!
//! A whole round trip against a running cluster (`silk dev` prints its address and writes the
//! credentials `Client::from_env` reads): a two-task graph of the wasm package `wat_echo`,
//! submitted and waited for. `client/examples/readme_client.rs` is the same shape, run by the
//! README's test against a fresh `silk dev`.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rmpv::Value;
//! use silk_client::graph::TypeDesc;
//! use silk_client::{Client, GraphBuilder, JobOutcome};
//!
//! // The second task reads the first one's output.
//! let mut g = GraphBuilder::new();
//! let first = g.task("wat_echo", "echo").input(TypeDesc::Bytes).output(TypeDesc::Bytes).add();
//! g.task("wat_echo", "echo")
//!     .input_from(first.output(0), TypeDesc::Bytes)
//!     .output(TypeDesc::Bytes)
//!     .add();
//! let graph = g.build()?;
//!
//! // The admin token lets this client create the group; `open_group` then switches the client
//! // to the group's own token.
//! let client = Client::from_env()?;
//! let group = client.open_group("examples", b"secret").await?;
//! let job = client.submit(group, &graph, &[Value::Binary(b"hello".to_vec())]).await?;
//! match client.wait(job).await? {
//!     JobOutcome::Succeeded(outputs) => assert_eq!(outputs, [Value::Binary(b"hello".to_vec())]),
//!     JobOutcome::Failed(error) => panic!("job failed: {} ({})", error, error.kind),
//!     JobOutcome::Cancelled => panic!("job cancelled"),
//! }
//! # Ok(()) }
//! ```

mod builder;
pub mod credentials;
mod error;
mod jobs;
mod retry;
mod values;
mod watch;

use std::sync::{Arc, RwLock};

use silk_proto::storage::job_orchestration_client::JobOrchestrationClient;
use silk_proto::storage::resource_groups_client::ResourceGroupsClient;
use silk_tdl::JobId;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use silk_core::auth::{AuthChannel, Bearer, ClientSecurity, Token};

pub use builder::{GraphBuilder, TaskBuilder, TaskHandle};
pub use credentials::Credentials;
pub use error::ClientError;
pub use jobs::{JobError, JobSummary, ListFilter};
pub use retry::RetryPolicy;
pub use values::{decode_values, encode_values, list, map, structure};
pub use watch::{JobOutcome, Progress, WatchStream};

pub use silk_core::{JobState, graph};
pub use silk_ipc::FailureKind;
pub use silk_tdl::ResourceGroupId;

use silk_core::wire::MAX_MESSAGE_BYTES;

/// Where `silk dev` serves storage by default.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:50051";

/// A connection to the storage service. Cheap to clone: clones share one channel and one
/// credential.
///
/// **Credentials.** Every call carries a bearer token. A client starts with the token of
/// [`ClientSecurity`] (a group token, or the admin token, which may create groups) and sends it
/// on resource-group calls; [`Client::open_group`] switches its job calls (and its clones') to
/// the opened group's token, so a client acts for one resource group at a time.
#[derive(Debug, Clone)]
pub struct Client {
    address: Arc<str>,
    channel: Channel,
    retry: RetryPolicy,
    /// Sent on resource-group calls.
    base: Bearer,
    /// Sent on job calls: the last opened group's token, else `base`.
    bearer: Arc<RwLock<Bearer>>,
}

impl Client {
    /// A client of storage at `address` (`host:port` or `http://host:port`) without a
    /// credential or TLS; see [`Client::connect_with`].
    ///
    /// # Errors
    /// As [`Client::connect_with`].
    pub fn connect(address: &str) -> Result<Self, ClientError> {
        Self::connect_with(address, &ClientSecurity::default())
    }

    /// A client of storage at `address` (`host:port`, `http://host:port` or
    /// `https://host:port`; a bare `host:port` is `https` when `security` has TLS settings)
    /// sending `security`'s token. The connection is made lazily by the first call (with
    /// `TCP_NODELAY`), so this never waits for storage.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] for an address that is not a valid URI or does not fit
    /// the TLS settings, or when called outside a tokio runtime.
    pub fn connect_with(address: &str, security: &ClientSecurity) -> Result<Self, ClientError> {
        let address = address.trim();
        let url = if address.contains("://") {
            address.to_owned()
        } else if security.tls.is_some() {
            format!("https://{address}")
        } else {
            format!("http://{address}")
        };
        let endpoint = security.endpoint(&url).map_err(|e| {
            ClientError::InvalidArgument(format!("invalid storage address {address:?}: {e}"))
        })?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ClientError::InvalidArgument(
                "the silk client needs a tokio runtime".into(),
            ));
        }
        let channel = endpoint.connect_lazy();
        Ok(Self {
            address: url.into(),
            channel,
            retry: RetryPolicy::default(),
            base: security.bearer(),
            bearer: Arc::new(RwLock::new(security.bearer())),
        })
    }

    /// A client configured from the environment, as the job CLI is: the address from
    /// `SILK_ADDRESS`, else the credentials file, else [`DEFAULT_ADDRESS`]; the token from
    /// `SILK_TOKEN`, else the credentials file (which `silk dev` writes; see
    /// [`credentials`]); TLS with the file's `ca_file`.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] for an unreadable credentials file or a bad address.
    pub fn from_env() -> Result<Self, ClientError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let file = match Credentials::default_path(env) {
            Some(path) => Credentials::read(&path)
                .map_err(|e| ClientError::InvalidArgument(e.to_string()))?
                .unwrap_or_default(),
            None => Credentials::default(),
        };
        let security = file
            .security(env(credentials::TOKEN_ENV).as_deref())
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        let address = env("SILK_ADDRESS")
            .or(file.address)
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
        Self::connect_with(&address, &security)
    }

    /// The same client sending `token` on every call: a group token, or the admin token.
    /// Clones made before share the job-call token, not the resource-group one.
    #[must_use]
    pub fn with_token(mut self, token: &Token) -> Self {
        self.base = Bearer::new(Some(token));
        self.set_token(token);
        self
    }

    fn set_token(&self, token: &Token) {
        *self
            .bearer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Bearer::new(Some(token));
    }

    fn bearer(&self) -> Bearer {
        self.bearer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The same client with another retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The storage URL (`http://host:port`).
    #[must_use]
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The retry policy.
    #[must_use]
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    fn jobs_rpc(&self) -> JobOrchestrationClient<AuthChannel> {
        JobOrchestrationClient::new(with_bearer(self.channel.clone(), self.bearer()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn groups_rpc(&self) -> ResourceGroupsClient<AuthChannel> {
        ResourceGroupsClient::new(with_bearer(self.channel.clone(), self.base.clone()))
    }

    fn status_error(&self, status: &tonic::Status, job: Option<JobId>) -> ClientError {
        ClientError::from_status(status, job, &self.address)
    }
}

fn with_bearer(channel: Channel, bearer: Bearer) -> AuthChannel {
    InterceptedService::new(channel, bearer)
}
