//! # silk-executor-wasm — run untrusted task packages in wasmtime
//!
//! A task package built for `wasm32-wasip1` (from the same TDL source as its native `.so`, or
//! written in any language that implements the guest ABI of `docs/wasm-abi.md`) runs here,
//! inside the execution manager's process, with no files, no network, no environment, and
//! bounded memory, CPU time and output. Native `.so` packages (trusted code only) run in
//! `silk-executor-native` instead; the EM picks the backend per package.
//!
//! Sits beside `silk-executor-native`: it depends on `silk-tdl` (the ABI) and `silk-ipc` (the
//! [`TaskFailure`] kinds) and is used by the runtime's execution manager and `silk task run`.
//!
//! * One [`WasmHost`] per EM: one wasmtime `Engine` (cranelift, pooling allocator sized by
//!   [`HostConfig::max_concurrent_tasks`] with keep-resident memory and tables, epoch
//!   interruption driven by one ticker thread, optional fuel metering).
//! * Modules compile once per content hash, cached in memory and, with
//!   [`HostConfig::cache_dir`], on disk as verified precompiled artifacts.
//! * Each package is checked at load (allowed imports, required exports, ABI version, name, init
//!   hook) and pre-linked; each task gets a **fresh instance**, so nothing leaks between tasks.
//!   [`WasmHost::inspect_file`] runs the same checks without the init hook and reads the
//!   package's name and task list ([`PackageInfo`]).
//! * Each task runs under a [`SandboxPolicy`]: memory limit, hard timeout, optional fuel, max
//!   output bytes, bounded stdout/stderr capture (forwarded to `tracing` with job/task ids).
//! * Failures keep their kind: `Task`, `Panicked` (with the guest's panic message), `Timeout`,
//!   `OutOfFuel`, `MemoryLimit`, `Trap` (with the trap code) and `Package`.
//!
//! The API is synchronous and runs guest code on the calling thread: call it from a dedicated
//! thread or `spawn_blocking`, never on a tokio worker.
//!
//! ```no_run
//! use silk_executor_wasm::{HostConfig, SandboxPolicy, WasmHost};
//! use silk_tdl::{TaskContext, frame};
//!
//! let host = WasmHost::new(HostConfig {
//!     package_dir: Some("target/packages".into()),
//!     ..HostConfig::default()
//! })?;
//! let inputs = frame::encode([rmp_serde::to_vec(&10u64)?])?;
//! let policy = SandboxPolicy { timeout_ms: 1_000, ..SandboxPolicy::default() };
//! let ctx = TaskContext::standalone().to_msgpack();
//! let (outputs, _elapsed_ns) = host.execute("fixtures", "fibonacci", &ctx, &inputs, &policy)?;
//! let values = frame::decode(&outputs)?;
//! assert_eq!(frame::value::<u64>(values[0], 0)?, 55);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cache;
mod config;
mod engine;
mod error;
mod host;
mod linker;
mod output;
mod package;
mod poll;
mod run;
mod sandbox;
mod validate;

pub use config::{HostConfig, SandboxPolicy};
pub use error::HostError;
pub use host::{TaskRun, WasmHost};
pub use output::Captured;
// What an inspection reports, and why it stopped: shared with the native executor.
pub use silk_ipc::{FailureKind, InspectError, PackageInfo, TaskFailure};
