//! What the host is configured with: [`HostConfig`] once per execution manager (it shapes the one
//! wasmtime `Engine` and its instance pool) and [`SandboxPolicy`] per package (the limits of each
//! task). The defaults are the safe ones; every field carries its unit.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Engine-wide settings, fixed when the [`WasmHost`](crate::WasmHost) is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// How many tasks (or package loads) may run at once: the number of threads that call into
    /// the host concurrently. Sizes the pooling allocator (instances, memories, tables). Default:
    /// the CPU count.
    pub max_concurrent_tasks: u32,
    /// Ceiling of any package's `max_memory_bytes`: the size of one memory slot in the pool.
    /// Default 1 GiB.
    pub max_memory_bytes: u64,
    /// Native stack wasm code may use before it traps with `StackOverflow`. Default 512 KiB.
    /// Calling threads need a larger stack than this (Rust's default 2 MiB is enough).
    pub max_wasm_stack_bytes: u64,
    /// Period of the epoch ticker thread that enforces timeouts. Default 10 ms; timeouts fire
    /// within one tick after they expire.
    pub epoch_tick_ms: u64,
    /// Compile fuel metering in, so packages can have a [`SandboxPolicy::fuel`] limit. Costs
    /// some speed on every guest (0–90 % depending on the code). Default true.
    pub fuel_metering: bool,
    /// Where compiled modules are kept between runs (`<sha256>-<engine>.cwasm` plus a digest).
    /// Created with mode 0700; must be writable only by this user. Default: none (memory only).
    pub cache_dir: Option<PathBuf>,
    /// Where packages are looked up by name, as `<dir>/<name>.wasm`. Default: none (only
    /// packages loaded explicitly).
    pub package_dir: Option<PathBuf>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            max_concurrent_tasks: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            max_memory_bytes: 1 << 30,
            max_wasm_stack_bytes: 512 << 10,
            epoch_tick_ms: 10,
            fuel_metering: true,
            cache_dir: None,
            package_dir: None,
        }
    }
}

/// The limits one task of a package runs under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxPolicy {
    /// Largest linear memory the guest may have. Default 256 MiB; must not exceed
    /// [`HostConfig::max_memory_bytes`].
    pub max_memory_bytes: u64,
    /// Hard timeout of one task (instantiation, init and the call). Default 30 000 ms.
    pub timeout_ms: u64,
    /// Fuel (roughly, wasm instructions) one task may use; `None` means unmetered. Needs
    /// [`HostConfig::fuel_metering`]. Default none.
    pub fuel: Option<u64>,
    /// Largest result buffer (output frame, error or panic message) the host copies out.
    /// Default 64 MiB.
    pub max_output_bytes: u64,
    /// Bytes of stdout and of stderr kept per task (the rest is counted and dropped; the guest's
    /// writes still succeed). Default 64 KiB each.
    pub max_log_bytes: u64,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            max_memory_bytes: 256 << 20,
            timeout_ms: 30_000,
            fuel: None,
            max_output_bytes: 64 << 20,
            max_log_bytes: 64 << 10,
        }
    }
}

/// Converts a byte count to `usize`, saturating (only matters on 32-bit hosts).
pub(crate) fn usize_of(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_fits_the_default_host() {
        let host = HostConfig::default();
        let policy = SandboxPolicy::default();
        assert!(policy.max_memory_bytes <= host.max_memory_bytes);
        assert!(policy.fuel.is_none());
        assert!(host.max_concurrent_tasks >= 1);
    }
}
