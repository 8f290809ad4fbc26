//! The storage gRPC server: every `silk.storage.v1` service over one [`Storage`], on a TCP
//! listener with `TCP_NODELAY` (upstream's missing `TCP_NODELAY` cost it ~10× in throughput).
//! Bad requests get a status, never a crash; messages above [`MAX_MESSAGE_BYTES`] are refused
//! by tonic with `OUT_OF_RANGE`/`RESOURCE_EXHAUSTED`.

pub mod convert;
mod services;
mod tenant;

use std::future::Future;
use std::sync::Arc;

use silk_proto::storage::execution_manager_liveness_server::ExecutionManagerLivenessServer;
use silk_proto::storage::inbound_queues_server::InboundQueuesServer;
use silk_proto::storage::job_orchestration_server::JobOrchestrationServer;
use silk_proto::storage::resource_groups_server::ResourceGroupsServer;
use silk_proto::storage::scheduler_registration_server::SchedulerRegistrationServer;
use silk_proto::storage::session_server::SessionServer;
use silk_proto::storage::task_instances_server::TaskInstancesServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

pub use services::StorageServices;

use crate::auth::ServerSecurity;
use crate::run_to_end::RunToEnd;

use super::db::Db;
use super::service::Storage;

pub use silk_core::wire::connect;
use silk_core::wire::{CONNECTION_WINDOW_BYTES, MAX_MESSAGE_BYTES, STREAM_WINDOW_BYTES};

/// Serves every storage service on `listener` until `shutdown` completes, without TLS and
/// without checking credentials (for servers inside one process: tests, benches); see
/// [`serve_secured`].
///
/// # Errors
/// The transport error that stopped the server.
pub async fn serve<D: Db + Clone>(
    storage: Storage<D>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_secured(storage, listener, &ServerSecurity::default(), shutdown).await
}

/// Serves every storage service on `listener` until `shutdown` completes, with `security`'s
/// credential checks and TLS; in-flight calls are drained before it returns. Every call but a
/// long-poll runs to its end even when its caller goes away ([`crate::run_to_end`]).
///
/// # Errors
/// The transport error that stopped the server, or an unusable TLS certificate.
pub async fn serve_secured<D: Db + Clone>(
    storage: Storage<D>,
    listener: TcpListener,
    security: &ServerSecurity,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let tokens = security
        .authority
        .as_ref()
        .and_then(|a| a.groups.clone())
        .map(Arc::new);
    let s = StorageServices { storage, tokens };
    let max = MAX_MESSAGE_BYTES;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    security
        .apply_tls(tonic::transport::Server::builder())?
        .layer(security.layer())
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .add_service(RunToEnd::new(
            JobOrchestrationServer::new(s.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        ))
        .add_service(RunToEnd::new(
            ResourceGroupsServer::new(s.clone()).max_decoding_message_size(max),
        ))
        .add_service(RunToEnd::new(
            TaskInstancesServer::new(s.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        ))
        // Long-polls: cancellable (see `run_to_end`).
        .add_service(InboundQueuesServer::new(s.clone()).max_encoding_message_size(max))
        .add_service(RunToEnd::new(ExecutionManagerLivenessServer::new(
            s.clone(),
        )))
        .add_service(RunToEnd::new(SchedulerRegistrationServer::new(s.clone())))
        .add_service(SessionServer::new(s))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
