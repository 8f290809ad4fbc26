//! `silk scheduler`: runs the scheduler service. Configuration comes from a TOML file, then
//! flags or their `SILK_SCHEDULER_*` environment variables; see `docs/config.md`. It waits for
//! storage to come up and survives storage restarts. SIGTERM or SIGINT stops it (exit 0).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

pub use super::config_file::ConfigError;
use super::config_file::{check_listen, check_url, read_toml};
use super::exit_code;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, spawn_endpoint};
use crate::scheduler::{SchedulerConfig, run_scheduler_with};

/// `silk scheduler` arguments.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// TOML config file (keys: `listen`, `advertise_host`, `storage_url`, `metrics_listen`,
    /// `[core]`, `[registry]`, `[auth]`, `[tls]`, `[client_tls]`, `[traces]`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to serve gRPC on.
    #[arg(long, env = "SILK_SCHEDULER_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Storage endpoint, e.g. `http://127.0.0.1:50051`.
    #[arg(long, env = "SILK_SCHEDULER_STORAGE_URL", value_name = "URL")]
    pub storage_url: Option<String>,
    /// Address of the Prometheus endpoint (`GET /metrics`); empty turns it off.
    #[arg(long, env = "SILK_SCHEDULER_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

/// Reads the file (if any) and applies the flags.
///
/// # Errors
/// A [`ConfigError`].
pub fn resolve(args: &SchedulerArgs) -> Result<SchedulerConfig, ConfigError> {
    let mut config = match &args.config {
        Some(path) => read_toml(path)?,
        None => SchedulerConfig::default(),
    };
    if let Some(listen) = args.listen.clone().filter(|s| !s.is_empty()) {
        config.listen = listen;
    }
    if let Some(url) = args.storage_url.clone().filter(|s| !s.is_empty()) {
        config.storage_url = url;
    }
    if let Some(addr) = args.metrics_listen.clone() {
        config.metrics_listen = addr;
    }
    check_listen("listen", &config.listen, false)?;
    check_url("storage_url", &config.storage_url)?;
    check_listen("metrics_listen", &config.metrics_listen, true)?;
    Ok(config)
}

/// Runs `silk scheduler` until SIGTERM/SIGINT. Exit 0 after a clean stop, 1 on a startup or
/// server error, 2 on a configuration error.
#[must_use]
pub fn run(args: &SchedulerArgs, async_threads: Option<u16>) -> ExitCode {
    let config = match resolve(args).and_then(|c| {
        super::config_file::require_auth(c.auth.as_ref(), "silk scheduler", "cluster_token_file")?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::from(exit_code::USAGE);
        }
    };
    let runtime = match crate::cli::tokio_runtime(async_threads) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.listen).await?;
        let cancel = CancellationToken::new();
        let metrics = Metrics::new();
        spawn_endpoint(&config.metrics_listen, metrics.clone(), cancel.clone()).await;
        tokio::spawn({
            let cancel = cancel.clone();
            async move {
                super::storage::shutdown_signal().await;
                tracing::info!("scheduler stopping");
                cancel.cancel();
            }
        });
        run_scheduler_with(config, listener, cancel, &metrics).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "scheduler failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_and_unknown_keys_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scheduler.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:7001\"\nstorage_url = \"http://s:1\"\n[core]\nactive_jobs_per_group = 3\n[registry]\ndead_em_cutoff_ms = 900\n",
        )
        .unwrap();
        let args = SchedulerArgs {
            config: Some(path.clone()),
            listen: None,
            storage_url: Some("http://t:2".into()),
            metrics_listen: None,
        };
        let c = resolve(&args).unwrap();
        assert_eq!(
            (c.listen.as_str(), c.storage_url.as_str()),
            ("0.0.0.0:7001", "http://t:2")
        );
        assert_eq!(c.core.active_jobs_per_group, 3);
        assert_eq!(c.registry.dead_em_cutoff_ms, 900);
        assert_eq!(c.core.dispatch_queue_capacity, 256);
        std::fs::write(&path, "[core]\nactive_jobs = 3\n").unwrap();
        let e = resolve(&args).unwrap_err();
        assert!(e.to_string().contains("unknown field `active_jobs`"), "{e}");
    }
}
