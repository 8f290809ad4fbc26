//! An all-in-one local cluster for development, tests and benches: the storage service on an
//! embedded SQLite file, a scheduler and one execution manager, in this process, on loopback.
//! `silk dev` is a thin wrapper around [`DevCluster`]. Not for production: one process holds
//! every part, and the default database is a temporary file deleted on stop. Credentials are
//! on, as in production: each start generates a cluster token, an admin token and a group-token
//! key ([`DevCluster::admin_token`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use silk_runtime::dev::{DevCluster, DevOptions};
//!
//! let cluster = DevCluster::start(DevOptions {
//!     port_base: 0, // any free ports
//!     trust: vec!["fixtures".into()],
//!     ..DevOptions::new("target/packages".into())
//! })
//! .await?;
//! println!("storage at {}", cluster.storage_url());
//! cluster.stop().await?;
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::config::{ClientTls, PeerAuth, ServerTls};
use crate::auth::{
    Authority, ClientSecurity, GroupTokens, ServerSecurity, Token, write_secret_file,
};
use crate::em::{EmConfig, run_em_with};
use crate::metrics::{Metrics, spawn_endpoint};
use crate::scheduler::{SchedulerConfig, run_scheduler_with};
use crate::storage::{StorageConfig, StorageServer};
use crate::traces::TracesConfig;

/// The storage port `silk dev` uses by default; the scheduler takes the next one.
pub const DEFAULT_PORT_BASE: u16 = 50051;

/// How to start a [`DevCluster`].
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// SQLite file to keep the data in; `None` for a temporary file deleted on stop.
    pub db: Option<PathBuf>,
    /// Storage listens on this port and the scheduler on the next; 0 picks any free ports.
    pub port_base: u16,
    /// Directory of packages (`lib<name>.so`, `<name>.wasm`).
    pub packages: PathBuf,
    /// Packages trusted to run natively; every other package runs as wasm.
    pub trust: Vec<String>,
    /// Executor slots (default: the CPU count).
    pub slots: Option<usize>,
    /// The `silk-executor-native` binary (default: next to the running program, or
    /// `SILK_EXECUTOR_NATIVE`).
    pub executor_bin: Option<PathBuf>,
    /// The execution manager's long-poll wait and heartbeat period.
    pub em_poll_ms: u64,
    /// Address of the one Prometheus endpoint serving all three services' metrics; `None`:
    /// no endpoint (`silk dev` serves it on `127.0.0.1:9150` unless told otherwise).
    pub metrics_listen: Option<String>,
    /// OpenTelemetry span export of all three services; `None`: off.
    pub traces: Option<TracesConfig>,
    /// TLS on storage's and the scheduler's endpoints (URLs become `https://localhost:PORT`);
    /// `None`: plaintext on loopback, as `silk dev` runs.
    pub tls: Option<DevTls>,
}

/// TLS of a dev cluster: the servers' certificate (it must name `localhost`) and how the
/// cluster's own clients — scheduler, EM and [`DevCluster::client_security`] — check it.
#[derive(Debug, Clone)]
pub struct DevTls {
    /// Certificate and key of storage and the scheduler.
    pub server: ServerTls,
    /// The CA (and client certificate, for mutual TLS) of the cluster's clients.
    pub client: ClientTls,
}

impl DevOptions {
    /// Defaults: temporary database, ports 50051/50052, no trusted packages.
    #[must_use]
    pub fn new(packages: PathBuf) -> Self {
        Self {
            db: None,
            port_base: DEFAULT_PORT_BASE,
            packages,
            trust: Vec::new(),
            slots: None,
            executor_bin: None,
            em_poll_ms: 1000,
            metrics_listen: None,
            traces: None,
            tls: None,
        }
    }
}

/// Why the cluster could not start, or failed.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The packages directory is missing.
    #[error(
        "packages directory {0} does not exist (stage the examples with scripts/build-packages, or pass --packages DIR)"
    )]
    NoPackages(PathBuf),
    /// A trusted package has no native library in the packages directory.
    #[error("--trust {name}: no native library {path} (trust only packages built natively)")]
    NoNativeLibrary {
        /// The package.
        name: String,
        /// The file that is missing.
        path: PathBuf,
    },
    /// A port is taken.
    #[error("cannot listen on {addr}: {source} (is another `silk dev` running? try --port-base)")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The temporary directory could not be made.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(std::io::Error),
    /// The cluster's tokens could not be made or written.
    #[error("credentials: {0}")]
    Credentials(String),
    /// Storage could not open its database.
    #[error("storage: {0}")]
    Storage(String),
    /// The scheduler failed.
    #[error("scheduler: {0}")]
    Scheduler(String),
    /// The execution manager failed.
    #[error("execution manager: {0}")]
    Em(String),
    /// A part of the cluster stopped on its own.
    #[error("{0} stopped unexpectedly")]
    Stopped(&'static str),
}

type Part = JoinHandle<Result<(), DevError>>;

/// A running local cluster. Stop it with [`DevCluster::stop`]; dropping it stops the services
/// without draining.
#[derive(Debug)]
pub struct DevCluster {
    metrics: Metrics,
    metrics_addr: Option<SocketAddr>,
    storage_url: String,
    scheduler_url: String,
    client_tls: Option<tonic::transport::ClientTlsConfig>,
    db_path: PathBuf,
    temp: Option<tempfile::TempDir>,
    /// Holds the token files (mode 0600 in a 0700 directory) the scheduler and EM read.
    secrets: tempfile::TempDir,
    admin_token: Token,
    slots: usize,
    em_stop: CancellationToken,
    em_kill: CancellationToken,
    scheduler_stop: CancellationToken,
    storage_stop: CancellationToken,
    em: Option<Part>,
    scheduler: Option<Part>,
    storage: Option<Part>,
}

async fn bind(port: u16) -> Result<TcpListener, DevError> {
    let addr = format!("127.0.0.1:{port}");
    TcpListener::bind(&addr)
        .await
        .map_err(|source| DevError::Bind { addr, source })
}

impl DevCluster {
    /// Opens the database and starts storage, the scheduler and the execution manager. Returns
    /// once storage serves; the scheduler and EM register in the background.
    ///
    /// # Errors
    /// A [`DevError`]: missing packages, a trusted package without the native executor, a taken
    /// port, a database that cannot be opened.
    pub async fn start(options: DevOptions) -> Result<Self, DevError> {
        if !options.packages.is_dir() {
            return Err(DevError::NoPackages(options.packages));
        }
        for name in &options.trust {
            let path = options.packages.join(format!("lib{name}.so"));
            if !path.is_file() {
                return Err(DevError::NoNativeLibrary {
                    name: name.clone(),
                    path,
                });
            }
        }
        // The EM's own rules for its slots (a trusted package needs the native executor), checked
        // before anything starts: an EM failing them would leave a cluster that runs nothing.
        crate::em::slot_config(&EmConfig {
            package_dir: options.packages.clone(),
            native_packages: options.trust.clone(),
            executor_bin: options.executor_bin.clone(),
            ..EmConfig::default()
        })
        .map_err(|e| DevError::Em(e.to_string()))?;
        let (temp, db_path) = match &options.db {
            Some(path) => (None, path.clone()),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("silk-dev-")
                    .tempdir()
                    .map_err(DevError::TempDir)?;
                let path = dir.path().join("storage.db");
                (Some(dir), path)
            }
        };
        let (secrets, authority, peer_auth, admin_token) = credentials()?;
        let storage_listener = bind(options.port_base).await?;
        let scheduler_port = match options.port_base {
            0 => 0,
            base => base.checked_add(1).ok_or_else(|| DevError::Bind {
                addr: format!("127.0.0.1:{base}+1"),
                source: std::io::Error::other("port out of range"),
            })?,
        };
        let scheduler_listener = bind(scheduler_port).await?;
        let storage_addr = local_addr(&storage_listener)?;
        let scheduler_addr = local_addr(&scheduler_listener)?;
        let (scheme, host) = match &options.tls {
            Some(_) => ("https", "localhost"),
            None => ("http", "127.0.0.1"),
        };
        let storage_url = format!("{scheme}://{host}:{}", storage_addr.port());
        let scheduler_url = format!("{scheme}://{host}:{}", scheduler_addr.port());
        let (server_tls, client_tls) = match &options.tls {
            Some(tls) => {
                let loaded = tls
                    .server
                    .load()
                    .and_then(|s| tls.client.load().map(|c| (s, c)))
                    .map_err(|e| DevError::Credentials(e.to_string()))?;
                (Some(loaded.0), Some(loaded.1))
            }
            None => (None, None),
        };

        let metrics = Metrics::new();
        let service = StorageServer::start(
            &format!("sqlite:{}", db_path.display()),
            StorageConfig::default(),
            options.traces.as_ref(),
            &metrics,
        )
        .await
        .map_err(|e| DevError::Storage(e.to_string()))?;
        let storage_stop = CancellationToken::new();
        let metrics_addr = match &options.metrics_listen {
            Some(addr) => spawn_endpoint(addr, metrics.clone(), storage_stop.clone()).await,
            None => None,
        };
        let storage = tokio::spawn({
            let stop = storage_stop.clone();
            let security = ServerSecurity {
                authority: Some(authority),
                tls: server_tls,
            };
            async move {
                service
                    .serve(storage_listener, &security, stop)
                    .await
                    .map_err(|e| DevError::Storage(e.to_string()))
            }
        });

        let scheduler_stop = CancellationToken::new();
        let scheduler_config = SchedulerConfig {
            listen: scheduler_addr.to_string(),
            storage_url: storage_url.clone(),
            auth: Some(peer_auth.clone()),
            traces: options.traces.clone(),
            tls: options.tls.as_ref().map(|t| t.server.clone()),
            client_tls: options.tls.as_ref().map(|t| t.client.clone()),
            ..SchedulerConfig::default()
        };
        let scheduler = tokio::spawn({
            let stop = scheduler_stop.clone();
            let metrics = metrics.clone();
            async move {
                run_scheduler_with(scheduler_config, scheduler_listener, stop, &metrics)
                    .await
                    .map_err(|e| DevError::Scheduler(e.to_string()))
            }
        });

        let em_config = EmConfig {
            storage_url: storage_url.clone(),
            scheduler_url: scheduler_url.clone(),
            slots: options.slots,
            package_dir: options.packages.clone(),
            native_packages: options.trust.clone(),
            executor_bin: options.executor_bin.clone(),
            poll_wait_ms: options.em_poll_ms,
            heartbeat_interval_ms: options.em_poll_ms,
            auth: Some(peer_auth),
            traces: options.traces.clone(),
            client_tls: options.tls.as_ref().map(|t| t.client.clone()),
            ..EmConfig::default()
        };
        let slots = em_config.slot_count();
        let (em_stop, em_kill) = (CancellationToken::new(), CancellationToken::new());
        let em = tokio::spawn({
            let (stop, kill) = (em_stop.clone(), em_kill.clone());
            let metrics = metrics.clone();
            async move {
                run_em_with(em_config, stop, kill, &metrics)
                    .await
                    .map_err(|e| DevError::Em(e.to_string()))
            }
        });
        Ok(Self {
            metrics,
            metrics_addr,
            storage_url,
            scheduler_url,
            client_tls,
            db_path,
            temp,
            secrets,
            admin_token,
            slots,
            em_stop,
            em_kill,
            scheduler_stop,
            storage_stop,
            em: Some(em),
            scheduler: Some(scheduler),
            storage: Some(storage),
        })
    }

    /// Where the metrics endpoint listens, if it does.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The metrics of all three services (what the endpoint serves).
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The storage endpoint clients connect to (`http://127.0.0.1:PORT`).
    #[must_use]
    pub fn storage_url(&self) -> String {
        self.storage_url.clone()
    }

    /// The scheduler endpoint.
    #[must_use]
    pub fn scheduler_url(&self) -> String {
        self.scheduler_url.clone()
    }

    /// The admin token of this cluster (generated at start): it creates resource groups, so
    /// a client holding it can open any new group (see [`DevCluster::client_security`]).
    #[must_use]
    pub fn admin_token(&self) -> &Token {
        &self.admin_token
    }

    /// Client settings holding the admin token, for [`silk_client::Client::connect_with`].
    #[must_use]
    pub fn client_security(&self) -> ClientSecurity {
        ClientSecurity {
            token: Some(self.admin_token.clone()),
            tls: self.client_tls.clone(),
        }
    }

    /// The directory of the cluster's token files (deleted on stop).
    #[must_use]
    pub fn secrets_dir(&self) -> &std::path::Path {
        self.secrets.path()
    }

    /// The SQLite database file.
    #[must_use]
    pub fn db_path(&self) -> &std::path::Path {
        &self.db_path
    }

    /// Whether the database is a temporary file deleted on stop.
    #[must_use]
    pub fn db_is_temporary(&self) -> bool {
        self.temp.is_some()
    }

    /// The execution manager's slot count.
    #[must_use]
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Completes when a part of the cluster stops on its own (it should not), with its error.
    pub async fn failed(&mut self) -> DevError {
        let (Some(em), Some(scheduler), Some(storage)) =
            (&mut self.em, &mut self.scheduler, &mut self.storage)
        else {
            return DevError::Stopped("cluster");
        };
        let (name, result, slot) = tokio::select! {
            r = em => ("execution manager", r, 0),
            r = scheduler => ("scheduler", r, 1),
            r = storage => ("storage", r, 2),
        };
        match slot {
            0 => self.em = None,
            1 => self.scheduler = None,
            _ => self.storage = None,
        }
        match result {
            Ok(Err(e)) => e,
            Ok(Ok(())) | Err(_) => DevError::Stopped(name),
        }
    }

    /// A token that, cancelled while [`DevCluster::stop`] drains, stops at once: running tasks
    /// are abandoned.
    #[must_use]
    pub fn kill_token(&self) -> CancellationToken {
        self.em_kill.clone()
    }

    /// Drains the execution manager (running tasks finish), then stops the scheduler and
    /// storage (which flushes completions). Returns the first error of any part.
    ///
    /// # Errors
    /// The first part's error.
    pub async fn stop(mut self) -> Result<(), DevError> {
        let mut first = None;
        self.em_stop.cancel();
        if let Some(em) = self.em.take() {
            keep_first(&mut first, em.await);
        }
        self.scheduler_stop.cancel();
        if let Some(scheduler) = self.scheduler.take() {
            keep_first(&mut first, scheduler.await);
        }
        self.storage_stop.cancel();
        if let Some(storage) = self.storage.take() {
            keep_first(&mut first, storage.await);
        }
        first.map_or(Ok(()), Err)
    }
}

fn keep_first(
    first: &mut Option<DevError>,
    r: Result<Result<(), DevError>, tokio::task::JoinError>,
) {
    let error = match r {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => DevError::Stopped("a cluster task"),
    };
    first.get_or_insert(error);
}

/// Fresh tokens for a cluster: a private directory holding the token files, what storage
/// accepts, the scheduler's and EM's `[auth]`, and the admin token.
fn credentials() -> Result<(tempfile::TempDir, Authority, PeerAuth, Token), DevError> {
    let fail = |e: &dyn std::fmt::Display| DevError::Credentials(e.to_string());
    let dir = tempfile::Builder::new()
        .prefix("silk-dev-secrets-")
        .tempdir()
        .map_err(DevError::TempDir)?;
    let generate = || Token::generate().map_err(|e| fail(&e));
    let (cluster, admin, key) = (generate()?, generate()?, generate()?);
    let cluster_token_file = dir.path().join("cluster-token");
    write_secret_file(&cluster_token_file, cluster.expose()).map_err(|e| fail(&e))?;
    let authority = Authority {
        cluster: Some(cluster),
        admin: Some(admin.clone()),
        groups: Some(GroupTokens::new(key)),
    };
    Ok((dir, authority, PeerAuth { cluster_token_file }, admin))
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, DevError> {
    listener.local_addr().map_err(|source| DevError::Bind {
        addr: "127.0.0.1".into(),
        source,
    })
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        self.em_kill.cancel();
        self.em_stop.cancel();
        self.scheduler_stop.cancel();
        self.storage_stop.cancel();
    }
}
