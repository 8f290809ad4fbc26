//! Running an execution manager ([`run_em`]): registers with storage, starts the liveness actor, the
//! outcome reporter and the slot pool, runs the pull loop (`pull.rs`) until told to stop, then
//! drains.
//!
//! Acknowledgements: an assignment is acknowledged once storage accepted or rejected its task
//! instance, or when it is dropped as stale; one whose registration never completed (cancelled,
//! storage unreachable) is not, so the scheduler re-dispatches it.
//!
//! Shutdown: `stop` drains — no more pulls, running tasks get `drain_grace_ms`, outcomes are
//! reported, the remaining acknowledgements go with `Shutdown`; `kill` stops at once. Storage
//! declaring the EM dead stops it at once with [`Error::MarkedDead`].

use std::sync::Arc;
use std::time::Duration;

use silk_proto::scheduler as scheduler_pb;
use silk_proto::storage as storage_pb;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::clients::{CALL_TIMEOUT, Clients, request};
use super::config::EmConfig;
use super::error::{Error, Result};
use super::liveness::Liveness;
use super::pool::{NativeExecutorConfig, PackagePolicy, SlotConfig, SlotPool};
use super::pull::Loop;
use super::reporter::{ReporterParts, run_reporter};
use super::session::SessionTracker;
use crate::metrics::Metrics;
use crate::traces::{Service, Traces};
use silk_core::ids::{ExecutionManagerId, SessionId};
use silk_core::retry::is_transient;
use silk_core::retry::{FIRST_DELAY, next_delay};

/// Sleeps `d` unless `token` fires first; false if it fired.
pub(super) async fn pause(d: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        () = token.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

/// The slot configuration an EM config describes.
///
/// # Errors
/// [`Error::Config`] when `native_packages` is not empty but the native executor binary
/// (`executor_bin`, else searched for) is missing or not executable.
pub fn slot_config(config: &EmConfig) -> Result<SlotConfig> {
    let bin = if config.native_packages.is_empty() {
        config
            .executor_bin
            .clone()
            .or_else(super::pool::child::find_executor_bin)
            .unwrap_or_else(|| "silk-executor-native".into())
    } else {
        super::pool::child::require_executor_bin(config.executor_bin.as_deref()).map_err(|e| {
            Error::Config {
                message: format!("native_packages needs the native executor: {e}"),
            }
        })?
    };
    Ok(SlotConfig {
        policy: PackagePolicy::trusting(config.native_packages.iter().cloned()),
        native: NativeExecutorConfig::new(bin, config.package_dir.clone()),
        native_default: config.native_default.clone(),
        native_packages: config.native_package_limits.clone(),
        wasm_default: config.wasm_default.clone(),
        wasm_packages: config.wasm_packages.clone(),
    })
}

/// Registers with storage, retrying transport errors until `stop`; `None` if stopped.
async fn register(
    clients: &Clients,
    stop: &CancellationToken,
) -> Result<Option<(ExecutionManagerId, SessionId)>> {
    let mut delay = FIRST_DELAY;
    loop {
        let mut call_client = clients.liveness.clone();
        let call = call_client.register_execution_manager(request(
            storage_pb::RegisterExecutionManagerRequest {
                address: "0.0.0.0".into(),
            },
            CALL_TIMEOUT,
        ));
        let result = tokio::select! {
            () = stop.cancelled() => return Ok(None),
            r = call => r,
        };
        match result {
            Ok(r) => {
                let r = r.into_inner();
                return Ok(Some((ExecutionManagerId(r.id), SessionId(r.session_id))));
            }
            // A TLS mismatch or an untrusted certificate will not go away: fail with the reason.
            Err(s) if crate::auth::tls_failure(&s).is_some() => {
                return Err(Error::Register {
                    message: format!(
                        "{}: {}",
                        s.message(),
                        crate::auth::tls_failure(&s).unwrap_or_default()
                    ),
                });
            }
            Err(s) if is_transient(&s) => {
                let hint =
                    crate::auth::plaintext_hint(&s, &clients.storage_url).unwrap_or_default();
                tracing::warn!(storage_url = %clients.storage_url, code = ?s.code(), error = s.message(), hint, "registration failed; retrying");
                if !pause(delay, stop).await {
                    return Ok(None);
                }
                delay = next_delay(delay);
            }
            Err(s) => {
                return Err(Error::Register {
                    message: s.message().to_owned(),
                });
            }
        }
    }
}

/// Runs an EM until `stop` (drain) or `kill` (at once).
///
/// # Errors
/// Invalid configuration, refused registration, a wasm host or slot thread that cannot start,
/// or [`Error::MarkedDead`].
pub async fn run_em(
    config: EmConfig,
    stop: CancellationToken,
    kill: CancellationToken,
) -> Result<()> {
    run_em_with(config, stop, kill, &Metrics::new()).await
}

/// As [`run_em`], exposing the EM's metrics in `metrics` (the endpoint is the caller's).
///
/// # Errors
/// As [`run_em`].
pub async fn run_em_with(
    config: EmConfig,
    stop: CancellationToken,
    kill: CancellationToken,
    metrics: &Metrics,
) -> Result<()> {
    let security =
        crate::auth::config::client_security(config.auth.as_ref(), config.client_tls.as_ref())
            .map_err(|e| Error::Config {
                message: e.to_string(),
            })?;
    let clients = Clients::new(&config.storage_url, &config.scheduler_url, &security)?;
    let traces = Traces::start(config.traces.as_ref(), Service::Em).map_err(|e| Error::Config {
        message: e.to_string(),
    })?;
    let slots = config.slot_count();
    let mut host_config = config.wasm_host.clone();
    host_config.package_dir = Some(config.package_dir.clone());
    host_config.max_concurrent_tasks = u32::try_from(slots).unwrap_or(u32::MAX);
    let wasm = tokio::task::spawn_blocking(move || silk_executor_wasm::WasmHost::new(host_config))
        .await
        .map_err(|e| Error::Config {
            message: format!("wasm host setup panicked: {e}"),
        })??;
    let pool =
        SlotPool::start(slots, Arc::new(slot_config(&config)?), &wasm).map_err(Error::Slot)?;
    metrics.register(|r| pool.metrics().register(r));

    let Some((em, session)) = register(&clients, &stop).await? else {
        return Ok(());
    };
    tracing::info!(em_id = %em, session = %session, slots, native = ?config.native_packages, "execution manager registered");
    let tracker = SessionTracker::new(session);
    let dead = CancellationToken::new();
    let background = CancellationToken::new();
    let pool = Arc::new(pool);
    let (liveness, refresh) = Liveness::new(
        clients.clone(),
        em,
        tracker.clone(),
        Duration::from_millis(config.heartbeat_interval_ms),
        dead.clone(),
        pool.clone(),
    );
    let services = TaskTracker::new();
    services.spawn(liveness.run(background.clone()));
    let (outcomes, outcomes_rx) = mpsc::unbounded_channel();
    let reporter_kill = CancellationToken::new();
    let finished = Arc::new(Notify::new());
    let reporter = tokio::spawn(run_reporter(
        ReporterParts {
            clients: clients.clone(),
            em,
            session: tracker.clone(),
            refresh: refresh.clone(),
            retries: pool.metrics().report_retries(),
            traces: traces.clone(),
        },
        outcomes_rx,
        finished.clone(),
        reporter_kill.clone(),
    ));

    let mut state = Loop {
        clients: clients.clone(),
        em,
        tracker,
        refresh,
        pool,
        free: Arc::new(Semaphore::new(slots + config.max_prefetched_tasks)),
        max_queued: config.max_prefetched_tasks,
        unreported: Arc::new(Semaphore::new(config.max_unreported_tasks.max(1))),
        finished,
        tasks: TaskTracker::new(),
        outcomes,
        acks: Vec::new(),
        scheduler_id: 0,
        poll_wait: Duration::from_millis(config.poll_wait_ms),
        native: config.native_packages.clone().into(),
        traces: traces.clone(),
    };
    let pull_stop = CancellationToken::new();
    let forward = tokio::spawn({
        let (pull_stop, stop, kill, dead) =
            (pull_stop.clone(), stop.clone(), kill.clone(), dead.clone());
        async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = kill.cancelled() => {}
                () = dead.cancelled() => {}
            }
            pull_stop.cancel();
        }
    });
    state.pull(&pull_stop).await;
    forward.abort();

    // Drain: running tasks finish within the grace period (or until killed / declared dead).
    state.tasks.close();
    let grace = Duration::from_millis(config.drain_grace_ms);
    let hard = tokio::select! {
        () = kill.cancelled() => true,
        () = dead.cancelled() => true,
        r = tokio::time::timeout(grace, state.tasks.wait()) => r.is_err(),
    };
    if hard {
        tracing::warn!(em_id = %em, "stopping without waiting for running tasks");
        reporter_kill.cancel();
    }
    let Loop {
        outcomes,
        acks,
        scheduler_id,
        clients: loop_clients,
        ..
    } = state;
    drop(outcomes);
    let mut reporter = reporter;
    let reported = tokio::select! {
        () = kill.cancelled() => false,
        () = dead.cancelled() => false,
        () = tokio::time::sleep(grace) => false,
        _ = &mut reporter => true,
    };
    if !reported {
        // Returns promptly once killed.
        reporter_kill.cancel();
        let _ = reporter.await;
    }
    background.cancel();
    services.close();
    services.wait().await;
    traces.shutdown().await;
    if dead.is_cancelled() {
        return Err(Error::MarkedDead {
            message: "storage refused this execution manager's heartbeat".into(),
        });
    }
    let mut scheduler = loop_clients.scheduler.clone();
    let goodbye = scheduler.shutdown(request(
        scheduler_pb::ShutdownRequest {
            execution_manager_id: em.0,
            acks: Some(scheduler_pb::Acks {
                scheduler_id,
                assignment_ids: acks,
            }),
        },
        CALL_TIMEOUT,
    ));
    tokio::select! {
        () = kill.cancelled() => {}
        r = goodbye => if let Err(s) = r {
            tracing::warn!(em_id = %em, error = s.message(), "scheduler shutdown call failed");
        },
    }
    tracing::info!(em_id = %em, "execution manager stopped");
    Ok(())
}
