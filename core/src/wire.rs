//! What every silk gRPC peer agrees on besides the `.proto` files: message and flow-control
//! sizes, the client channel settings, and the metadata key naming an error's exact kind.

/// HTTP/2 flow-control windows of storage's server and clients: a multi-megabyte graph or a
/// batch of outputs moves in a few round trips, not one per 64 KiB (h2's default window).
pub const STREAM_WINDOW_BYTES: u32 = 4 << 20;
/// See [`STREAM_WINDOW_BYTES`].
pub const CONNECTION_WINDOW_BYTES: u32 = 8 << 20;

/// Largest request or response message accepted (64 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Metadata key naming the exact error kind of a refused call (e.g. `stale-session`).
pub const ERROR_KIND_KEY: &str = "x-silk-error";

/// The error kind of a state transition the job's state does not allow (e.g. cancelling a job
/// that has ended).
pub const INVALID_TRANSITION: &str = "invalid-transition";

/// The exact error kind a refused call carries under [`ERROR_KIND_KEY`], if any.
#[must_use]
pub fn error_kind(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(ERROR_KIND_KEY)
        .and_then(|v| v.to_str().ok())
}

/// The settings every silk gRPC client uses: `TCP_NODELAY`, the flow-control windows above and
/// a 5 s connect timeout.
#[must_use]
pub fn tune(endpoint: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
    endpoint
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .connect_timeout(std::time::Duration::from_secs(5))
}

/// A client channel to `url` (`http://host:port`), [`tune`]d.
///
/// # Errors
/// An invalid URL or a connection error.
pub async fn connect(url: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tune(tonic::transport::Endpoint::from_shared(url.to_owned())?)
        .connect()
        .await
}
