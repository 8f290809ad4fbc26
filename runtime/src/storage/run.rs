//! A whole storage process: connects the database, starts the span sink, opens the service,
//! registers its metrics, serves `silk.storage.v1` until cancelled, then drains (background work
//! and pending completions, then spans). `silk storage` and `silk dev` both run storage through
//! this; the Prometheus endpoint is the caller's.
//!
//! It is two steps, [`StorageServer::start`] then [`StorageServer::serve`]: `silk storage` opens
//! the database before binding its listener (a taken port is reported after a bad database),
//! and `silk dev` reports a database that cannot be opened before serving in the background.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::db::{AnyDb, DbError, redact_url};
use super::{Storage, StorageConfig, grpc};
use crate::auth::ServerSecurity;
use crate::metrics::Metrics;
use crate::traces::{Service, Traces, TracesConfig};

/// Why storage could not start or stopped serving. Each variant shows its cause's message.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database could not be connected to (or migrated).
    #[error("database {url}: {source}")]
    Db {
        /// The database URL, its password hidden.
        url: String,
        /// Why.
        source: DbError,
    },
    /// The span exporter could not start.
    #[error(transparent)]
    Traces(#[from] crate::traces::Error),
    /// The service could not open its session or recover the jobs.
    #[error(transparent)]
    Open(#[from] super::Error),
    /// The listener's address could not be read.
    #[error(transparent)]
    Listener(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] tonic::transport::Error),
}

/// Storage opened over its database, with its span sink and metrics, not yet serving.
#[derive(Debug)]
pub struct StorageServer {
    storage: Storage<AnyDb>,
    traces: Traces,
}

impl StorageServer {
    /// Connects to `db_url` (with `config`'s database options), starts the span export
    /// (`traces`; `None`: off), opens the service and registers its metrics in `metrics`.
    ///
    /// # Errors
    /// [`RunError::Db`], [`RunError::Traces`] or [`RunError::Open`].
    pub async fn start(
        db_url: &str,
        config: StorageConfig,
        traces: Option<&TracesConfig>,
        metrics: &Metrics,
    ) -> Result<Self, RunError> {
        let db = AnyDb::connect_with(db_url, config.db_options())
            .await
            .map_err(|source| RunError::Db {
                url: redact_url(db_url).into_owned(),
                source,
            })?;
        let traces = Traces::start(traces, Service::Storage)?;
        let storage = Storage::open(db, config).await?;
        storage.set_traces(traces.clone());
        storage.register_metrics(metrics);
        Ok(Self { storage, traces })
    }

    /// The service.
    #[must_use]
    pub fn storage(&self) -> &Storage<AnyDb> {
        &self.storage
    }

    /// Serves on `listener` with `security` until `stop` is cancelled, then drains: in-flight
    /// calls, the service's background work (pending completions reach the database) and the
    /// span export. Drains on a server error too.
    ///
    /// # Errors
    /// [`RunError::Listener`] or [`RunError::Serve`].
    pub async fn serve(
        self,
        listener: TcpListener,
        security: &ServerSecurity,
        stop: CancellationToken,
    ) -> Result<(), RunError> {
        let Self { storage, traces } = self;
        let served = match listener.local_addr() {
            Ok(address) => {
                tracing::info!(address = %address, session = storage.session().0, "storage listening");
                grpc::serve_secured(storage.clone(), listener, security, stop.cancelled_owned())
                    .await
                    .map_err(RunError::from)
            }
            Err(e) => Err(e.into()),
        };
        tracing::info!("storage draining");
        storage.shutdown().await;
        traces.shutdown().await;
        served?;
        tracing::info!("storage stopped");
        Ok(())
    }
}
