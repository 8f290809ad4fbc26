//! The execution manager's settings (the `silk em` config file; see `docs/config.md`): where
//! storage and the scheduler are, how many executor slots, which packages run natively, wasm
//! limits, timing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use silk_executor_wasm::{HostConfig, SandboxPolicy};

use super::pool::NativePolicy;
use crate::auth::config::{ClientTls, PeerAuth};
use crate::traces::TracesConfig;

/// EM settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmConfig {
    /// Storage endpoint URL.
    pub storage_url: String,
    /// Scheduler endpoint URL.
    pub scheduler_url: String,
    /// Executor slots (tasks run at once). Default: the CPU count.
    pub slots: Option<usize>,
    /// Directory holding packages (`lib<name>.so`, `<name>.wasm`).
    pub package_dir: PathBuf,
    /// Packages trusted to run natively; every other package runs as wasm.
    pub native_packages: Vec<String>,
    /// The `silk-executor-native` binary (default: next to `silk`, or `SILK_EXECUTOR_NATIVE`).
    pub executor_bin: Option<PathBuf>,
    /// Limits of native packages without their own entry.
    pub native_default: NativePolicy,
    /// Limits per native package.
    pub native_package_limits: BTreeMap<String, NativePolicy>,
    /// Sandbox limits of wasm packages without their own entry.
    pub wasm_default: SandboxPolicy,
    /// Sandbox limits per wasm package.
    pub wasm_packages: BTreeMap<String, SandboxPolicy>,
    /// Engine-wide wasm settings (`package_dir` and `max_concurrent_tasks` are set from the
    /// keys above).
    pub wasm_host: HostConfig,
    /// Most assignments queued beyond one per slot, so short tasks do not wait for round trips
    /// (the queue holds about 2 ms of work per slot at the recent mean task time; 0: none).
    pub max_prefetched_tasks: usize,
    /// Most tasks accepted but not yet reported to and acknowledged by storage (queued,
    /// running, or finished with the report not yet persisted): how far execution may run
    /// ahead of persistence, so what a storage crash makes run again is bounded.
    pub max_unreported_tasks: usize,
    /// Long-poll wait of one `NextTasks` call.
    pub poll_wait_ms: u64,
    /// Heartbeat period (storage and scheduler).
    pub heartbeat_interval_ms: u64,
    /// On the first SIGTERM/SIGINT, how long running tasks may take to finish.
    pub drain_grace_ms: u64,
    /// Address of the Prometheus endpoint (`GET /metrics`) `silk em` serves; empty turns it
    /// off. Each EM on one host needs its own.
    pub metrics_listen: String,
    /// The cluster token file (`[auth]`); `silk em` refuses to start without it.
    pub auth: Option<PeerAuth>,
    /// TLS for `https://` storage and scheduler URLs (`[client_tls]`).
    pub client_tls: Option<ClientTls>,
    /// OpenTelemetry span export (`[traces]`); `None`: off.
    pub traces: Option<TracesConfig>,
}

impl Default for EmConfig {
    fn default() -> Self {
        Self {
            storage_url: "http://127.0.0.1:50051".into(),
            scheduler_url: "http://127.0.0.1:50052".into(),
            slots: None,
            package_dir: PathBuf::from("packages"),
            native_packages: Vec::new(),
            executor_bin: None,
            native_default: NativePolicy::default(),
            native_package_limits: BTreeMap::new(),
            wasm_default: SandboxPolicy::default(),
            wasm_packages: BTreeMap::new(),
            wasm_host: HostConfig::default(),
            max_prefetched_tasks: 256,
            max_unreported_tasks: 1024,
            poll_wait_ms: 1000,
            heartbeat_interval_ms: 500,
            drain_grace_ms: 30_000,
            metrics_listen: "127.0.0.1:9153".into(),
            auth: None,
            client_tls: None,
            traces: None,
        }
    }
}

impl EmConfig {
    /// The slot count: configured, or the CPU count.
    #[must_use]
    pub fn slot_count(&self) -> usize {
        self.slots
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}
