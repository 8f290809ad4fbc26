//! `silk storage`: runs the storage service. Configuration comes from a TOML file, then `SILK_*`
//! environment variables, then flags (later wins); see `docs/config.md`. SIGTERM or SIGINT
//! stops accepting calls, drains in-flight ones and pending completions, and exits 0.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

pub use super::config_file::ConfigError;
use super::config_file::{check_listen, read_toml, require_auth};
use super::exit_code;
use crate::auth::config::{ServerTls, StorageAuth, server_security};
use serde::Deserialize;

use crate::metrics::{Metrics, spawn_endpoint};
use crate::storage::db::redact_url;
use crate::storage::{StorageConfig, StorageServer};
use crate::traces::TracesConfig;
use tokio_util::sync::CancellationToken;

/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DB: &str = "sqlite:silk-storage.db";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default address of the Prometheus endpoint.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9151";

/// `silk storage` arguments. `Debug` hides the database password.
#[derive(Args)]
pub struct StorageArgs {
    /// TOML config file (keys: `listen`, `db`, `metrics_listen`, and the tables `[storage]`, `[auth]`,
    /// `[tls]`, `[traces]`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database: `sqlite:PATH` or `mysql://user:password@host:port/database`.
    #[arg(
        long,
        env = "SILK_STORAGE_DB",
        value_name = "URL",
        hide_env_values = true
    )]
    pub db: Option<String>,
    /// Address to serve gRPC on.
    #[arg(long, env = "SILK_STORAGE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address of the Prometheus endpoint (`GET /metrics`); empty turns it off.
    #[arg(long, env = "SILK_STORAGE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

/// The `silk storage` config file. `Debug` hides the database password.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// Address to serve gRPC on (default `127.0.0.1:50051`).
    pub listen: Option<String>,
    /// Database URL (default `sqlite:silk-storage.db`).
    pub db: Option<String>,
    /// Address of the Prometheus endpoint (default `127.0.0.1:9151`; empty: off).
    pub metrics_listen: Option<String>,
    /// Service tuning.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Token files (required).
    pub auth: Option<StorageAuth>,
    /// Certificate and key; without them storage serves plaintext.
    pub tls: Option<ServerTls>,
    /// OpenTelemetry span export; absent: off.
    pub traces: Option<TracesConfig>,
}

/// The resolved service configuration. `Debug` hides the database password.
pub struct Resolved {
    /// Listen address.
    pub listen: String,
    /// Database URL.
    pub db: String,
    /// Address of the Prometheus endpoint (empty: off).
    pub metrics_listen: String,
    /// Service tuning.
    pub storage: StorageConfig,
    /// Token files.
    pub auth: Option<StorageAuth>,
    /// Certificate and key.
    pub tls: Option<ServerTls>,
    /// OpenTelemetry span export; `None`: off.
    pub traces: Option<TracesConfig>,
}

impl std::fmt::Debug for StorageArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageArgs")
            .field("config", &self.config)
            .field("db", &self.db.as_deref().map(redact_url))
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .finish()
    }
}

impl std::fmt::Debug for StorageFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageFile")
            .field("listen", &self.listen)
            .field("db", &self.db.as_deref().map(redact_url))
            .field("metrics_listen", &self.metrics_listen)
            .field("storage", &self.storage)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("traces", &self.traces)
            .finish()
    }
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("listen", &self.listen)
            .field("db", &redact_url(&self.db))
            .field("metrics_listen", &self.metrics_listen)
            .field("storage", &self.storage)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("traces", &self.traces)
            .finish()
    }
}

/// Reads the file (if any), applies `SILK_STORAGE_*` overrides of the `[storage]` keys and then
/// the flags (which clap already merged with `SILK_STORAGE_DB` / `SILK_STORAGE_LISTEN`).
///
/// # Errors
/// A [`ConfigError`].
pub fn resolve(
    args: &StorageArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Resolved, ConfigError> {
    let file = match &args.config {
        Some(path) => read_toml(path)?,
        None => StorageFile::default(),
    };
    let mut storage = file.storage;
    let numeric: [(&'static str, &mut u64); 10] = [
        (
            "SILK_STORAGE_TERMINATED_JOB_RETENTION_MS",
            &mut storage.terminated_job_retention_ms,
        ),
        (
            "SILK_STORAGE_DEAD_EM_CUTOFF_MS",
            &mut storage.dead_em_cutoff_ms,
        ),
        (
            "SILK_STORAGE_SWEEP_INTERVAL_MS",
            &mut storage.sweep_interval_ms,
        ),
        (
            "SILK_STORAGE_LOST_REPORT_GRACE_MS",
            &mut storage.lost_report_grace_ms,
        ),
        (
            "SILK_STORAGE_OUTPUT_MEMORY_BUDGET_BYTES",
            &mut storage.output_memory_budget_bytes,
        ),
        (
            "SILK_STORAGE_DB_LOCK_WAIT_TIMEOUT_MS",
            &mut storage.db_lock_wait_timeout_ms,
        ),
        (
            "SILK_STORAGE_DB_RETRY_MAX_BACKOFF_MS",
            &mut storage.db_retry_max_backoff_ms,
        ),
        (
            "SILK_STORAGE_DB_MAX_WRITE_BYTES",
            &mut storage.db_max_write_bytes,
        ),
        ("SILK_STORAGE_MAX_JOB_BYTES", &mut storage.max_job_bytes),
        (
            "SILK_STORAGE_JOB_MEMORY_BUDGET_BYTES",
            &mut storage.job_memory_budget_bytes,
        ),
    ];
    for (var, slot) in numeric {
        if let Some(value) = env(var) {
            *slot = value
                .trim()
                .parse()
                .map_err(|_| ConfigError::Env { var, value })?;
        }
    }
    if let Some(value) = env("SILK_STORAGE_DB_RETRY_ATTEMPTS") {
        let var = "SILK_STORAGE_DB_RETRY_ATTEMPTS";
        storage.db_retry_attempts = value
            .trim()
            .parse()
            .map_err(|_| ConfigError::Env { var, value })?;
    }
    if let Some(value) = env("SILK_STORAGE_GROUP_COMMIT_MAX_BATCH") {
        let var = "SILK_STORAGE_GROUP_COMMIT_MAX_BATCH";
        storage.group_commit_max_batch = value
            .trim()
            .parse()
            .map_err(|_| ConfigError::Env { var, value })?;
    }
    if let Some(value) = env("SILK_STORAGE_FREE_INSTANCE_LOSSES") {
        let var = "SILK_STORAGE_FREE_INSTANCE_LOSSES";
        storage.free_instance_losses = value
            .trim()
            .parse()
            .map_err(|_| ConfigError::Env { var, value })?;
    }
    let resolved = Resolved {
        listen: args
            .listen
            .clone()
            .filter(|s| !s.is_empty())
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
        db: args
            .db
            .clone()
            .filter(|s| !s.is_empty())
            .or(file.db)
            .unwrap_or_else(|| DEFAULT_DB.to_owned()),
        metrics_listen: args
            .metrics_listen
            .clone()
            .or(file.metrics_listen)
            .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.to_owned()),
        storage,
        auth: file.auth,
        tls: file.tls,
        traces: file.traces,
    };
    check_listen("listen", &resolved.listen, false)?;
    check_listen("metrics_listen", &resolved.metrics_listen, true)?;
    Ok(resolved)
}

/// Runs `silk storage` until SIGTERM/SIGINT. Exit 0 after a clean drain, 1 on a startup or
/// server error, 2 on a configuration error.
#[must_use]
pub fn run(args: &StorageArgs, async_threads: Option<u16>) -> ExitCode {
    let (resolved, auth) = match resolve(args, |k| std::env::var(k).ok()).and_then(with_auth) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::from(exit_code::USAGE);
        }
    };
    let runtime = match crate::cli::tokio_runtime(async_threads) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(serve(resolved, auth)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "storage failed");
            ExitCode::FAILURE
        }
    }
}

/// Takes the `[auth]` table out of a resolved configuration: storage always checks credentials.
fn with_auth(mut config: Resolved) -> Result<(Resolved, StorageAuth), ConfigError> {
    let auth = require_auth(
        config.auth.take(),
        "silk storage",
        "cluster_token_file, admin_token_file and group_token_key_file",
    )?;
    Ok((config, auth))
}

async fn serve(config: Resolved, auth: StorageAuth) -> Result<(), Box<dyn std::error::Error>> {
    let security = server_security(Some(auth.load()?), config.tls.as_ref())?;
    let metrics = Metrics::new();
    let server =
        StorageServer::start(&config.db, config.storage, config.traces.as_ref(), &metrics).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let stop_metrics = CancellationToken::new();
    let _stop_metrics_on_exit = stop_metrics.clone().drop_guard();
    spawn_endpoint(&config.metrics_listen, metrics, stop_metrics).await;
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
        }
    });
    server.serve(listener, &security, stop).await?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>, db: Option<&str>) -> StorageArgs {
        StorageArgs {
            config,
            db: db.map(str::to_owned),
            listen: None,
            metrics_listen: None,
        }
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:7000\"\ndb = \"sqlite:/tmp/a.db\"\n[storage]\ndead_em_cutoff_ms = 5000\nsweep_interval_ms = 10\n",
        )
        .unwrap();
        let env = |k: &str| (k == "SILK_STORAGE_SWEEP_INTERVAL_MS").then(|| "250".to_owned());
        let r = resolve(&args(Some(path.clone()), None), env).unwrap();
        assert_eq!(
            (r.listen.as_str(), r.db.as_str()),
            ("0.0.0.0:7000", "sqlite:/tmp/a.db")
        );
        assert_eq!(
            (r.storage.dead_em_cutoff_ms, r.storage.sweep_interval_ms),
            (5000, 250)
        );
        assert_eq!(
            r.storage.terminated_job_retention_ms,
            StorageConfig::default().terminated_job_retention_ms
        );
        let r = resolve(&args(Some(path), Some("mysql://u:p@h/db")), |_| None).unwrap();
        assert_eq!(r.db, "mysql://u:p@h/db");
    }

    #[test]
    fn debug_and_errors_hide_the_database_password() {
        let url = "mysq://silk:hunter2@db:3306/silk";
        let a = args(None, Some(url));
        let mut r = resolve(&a, |_| None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let token = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, "t".repeat(40)).unwrap();
            path
        };
        r.auth = Some(StorageAuth {
            cluster_token_file: token("c"),
            admin_token_file: token("a"),
            group_token_key_file: token("k"),
        });
        let file = StorageFile {
            db: Some(url.to_owned()),
            ..StorageFile::default()
        };
        for shown in [format!("{a:?}"), format!("{r:?}"), format!("{file:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("mysq://silk:***@db:3306/silk"), "{shown}");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (r, auth) = with_auth(r).unwrap();
        let e = runtime.block_on(serve(r, auth)).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(
            e.starts_with("database mysq://silk:***@db:3306/silk: unsupported database url"),
            "{e}"
        );
    }

    #[test]
    fn storage_refuses_to_start_without_credentials() {
        let r = resolve(&args(None, Some("sqlite::memory:")), |_| None).unwrap();
        let Err(e) = with_auth(r) else {
            panic!("no [auth] table accepted");
        };
        assert!(matches!(e, ConfigError::MissingAuth { .. }), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_env_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.toml");
        std::fs::write(&path, "[storage]\nretention = 5\n").unwrap();
        let e = resolve(&args(Some(path), None), |_| None).unwrap_err();
        assert!(e.to_string().contains("unknown field `retention`"), "{e}");
        let env = |k: &str| (k == "SILK_STORAGE_DEAD_EM_CUTOFF_MS").then(|| "soon".to_owned());
        let e = resolve(&args(None, None), env).unwrap_err();
        assert!(
            e.to_string().starts_with("SILK_STORAGE_DEAD_EM_CUTOFF_MS"),
            "{e}"
        );
        // An empty SILK_STORAGE_DB / SILK_STORAGE_LISTEN counts as unset.
        let r = resolve(&args(None, Some("")), |_| None).unwrap();
        assert_eq!(
            (r.listen.as_str(), r.db.as_str()),
            (DEFAULT_LISTEN, DEFAULT_DB)
        );
    }
}
