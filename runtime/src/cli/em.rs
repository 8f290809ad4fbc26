//! `silk em`: runs an execution manager. Configuration comes from a TOML file, then flags or
//! their `SILK_EM_*` environment variables; see `docs/config.md`. The first SIGTERM/SIGINT drains
//! (no new work; running tasks finish within `drain_grace_ms`; acknowledgements are sent; exit
//! 0); a second one stops at once.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

pub use super::config_file::ConfigError;
use super::config_file::{check_listen, check_url, read_toml};
use super::exit_code;
use tokio_util::sync::CancellationToken;

use crate::em::{EmConfig, run_em_with};
use crate::metrics::{Metrics, spawn_endpoint};

/// `silk em` arguments.
#[derive(Debug, Args)]
pub struct EmArgs {
    /// TOML config file (see docs/config.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Storage endpoint, e.g. `http://127.0.0.1:50051`.
    #[arg(long, env = "SILK_EM_STORAGE_URL", value_name = "URL")]
    pub storage_url: Option<String>,
    /// Scheduler endpoint, e.g. `http://127.0.0.1:50052`.
    #[arg(long, env = "SILK_EM_SCHEDULER_URL", value_name = "URL")]
    pub scheduler_url: Option<String>,
    /// Executor slots, at least 1 (default: the CPU count).
    #[arg(
        long,
        env = "SILK_EM_SLOTS",
        value_name = "N",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536)
    )]
    pub slots: Option<usize>,
    /// Address of the Prometheus endpoint (`GET /metrics`); empty turns it off.
    #[arg(long, env = "SILK_EM_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

/// Reads the file (if any) and applies the flags.
///
/// # Errors
/// A [`ConfigError`].
pub fn resolve(args: &EmArgs) -> Result<EmConfig, ConfigError> {
    let mut config = match &args.config {
        Some(path) => read_toml(path)?,
        None => EmConfig::default(),
    };
    if let Some(url) = args.storage_url.clone().filter(|s| !s.is_empty()) {
        config.storage_url = url;
    }
    if let Some(url) = args.scheduler_url.clone().filter(|s| !s.is_empty()) {
        config.scheduler_url = url;
    }
    if let Some(n) = args.slots {
        config.slots = Some(n);
    }
    if let Some(addr) = args.metrics_listen.clone() {
        config.metrics_listen = addr;
    }
    check_listen("metrics_listen", &config.metrics_listen, true)?;
    check_url("storage_url", &config.storage_url)?;
    check_url("scheduler_url", &config.scheduler_url)?;
    if config.slots == Some(0) {
        return Err(ConfigError::Zero { key: "slots" });
    }
    Ok(config)
}

/// Cancels `stop` on the first SIGTERM/SIGINT and `kill` on the second.
async fn watch_signals(stop: CancellationToken, kill: CancellationToken) {
    super::storage::shutdown_signal().await;
    tracing::info!("draining: no new work; running tasks finish (signal again to stop at once)");
    stop.cancel();
    super::storage::shutdown_signal().await;
    tracing::warn!("stopping at once");
    kill.cancel();
}

/// Runs `silk em` until signalled. Exit 0 after a drain, 1 on a startup error or when storage
/// declared the EM dead, 2 on a configuration error.
#[must_use]
pub fn run(args: &EmArgs, async_threads: Option<u16>) -> ExitCode {
    let config = match resolve(args).and_then(|c| {
        super::config_file::require_auth(c.auth.as_ref(), "silk em", "cluster_token_file")?;
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
        let (stop, kill) = (CancellationToken::new(), CancellationToken::new());
        let signals = tokio::spawn(watch_signals(stop.clone(), kill.clone()));
        let metrics = Metrics::new();
        spawn_endpoint(&config.metrics_listen, metrics.clone(), kill.clone()).await;
        let r = run_em_with(config, stop, kill, &metrics).await;
        signals.abort();
        r
    });
    // Slot threads may still be inside a task after a hard stop: do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ crate::em::Error::Config { .. }) => {
            tracing::error!(error = %e, "invalid configuration");
            ExitCode::from(exit_code::USAGE)
        }
        Err(e) => {
            tracing::error!(error = %e, "execution manager failed");
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
        let path = dir.path().join("em.toml");
        std::fs::write(
            &path,
            "storage_url = \"http://s:1\"\npackage_dir = \"/opt/pk\"\nnative_packages = [\"fixtures\"]\nslots = 3\n[wasm_packages.complex]\ntimeout_ms = 500\n",
        )
        .unwrap();
        let args = EmArgs {
            config: Some(path.clone()),
            storage_url: None,
            scheduler_url: Some("http://t:2".into()),
            slots: None,
            metrics_listen: None,
        };
        let c = resolve(&args).unwrap();
        assert_eq!(c.storage_url, "http://s:1");
        assert_eq!(c.scheduler_url, "http://t:2");
        assert_eq!(c.slot_count(), 3);
        assert_eq!(c.native_packages, ["fixtures"]);
        assert_eq!(c.wasm_packages["complex"].timeout_ms, 500);
        std::fs::write(&path, "slot = 3\n").unwrap();
        let e = resolve(&args).unwrap_err();
        assert!(e.to_string().contains("unknown field `slot`"), "{e}");
    }
}
