//! # silk-benches — what handing a task to an executor costs
//!
//! Shared code of the `ipc` bench (`cargo bench -p silk-benches --bench ipc`): the payloads
//! ([`payload`]), the paths a task can take to run ([`paths`]: in-process direct call, native
//! executor over the shm ring — spinning and parked — and over pipes), and the statistics and
//! markdown table ([`stats`]) written to `target/silk-bench/ipc-overhead.md`; and the layered
//! graph of the `e2e`, `graph` and `scale` benches ([`layered`]); the `e2e` bench's production
//! layout ([`cluster`]) and CPU time by role ([`cpu`]); peak resident memory ([`memory`]).
//!
//! Sits on top of everything it measures (`fixtures` linked as an rlib, `silk-runtime`'s
//! executor handle); nothing depends on it.
//!
//! ```
//! let paths = silk_benches::payload::upstream_paths();
//! assert_eq!(paths.len(), 100);
//! assert_eq!(paths[1], "/usr/local/bin/file_0031_00001.log");
//! ```

pub mod cluster;
pub mod cpu;
pub mod layered;
pub mod memory;
pub mod paths;
pub mod payload;
pub mod stats;

/// The tokio runtime a bench's in-process `silk dev` cluster runs on, built as `silk dev` builds
/// its own: `SILK_ASYNC_THREADS` workers, or `silk`'s default.
///
/// # Panics
/// If the runtime cannot start.
#[must_use]
pub fn dev_runtime() -> tokio::runtime::Runtime {
    let threads = std::env::var("SILK_ASYNC_THREADS")
        .ok()
        .and_then(|v| v.parse().ok());
    silk_runtime::cli::build_runtime(threads).expect("tokio runtime")
}
