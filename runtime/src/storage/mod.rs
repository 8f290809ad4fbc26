//! The storage service: silk's source of truth. It owns the database ([`db`]: SQLite or
//! MySQL/MariaDB), accepts jobs, keeps every job's progress, hands an execution manager the inputs
//! of the task it is about to run, records outputs and advances the graph.
//!
//! * [`Storage`] (in `service.rs`, `instances.rs`, `liveness.rs`, `catalog.rs`) is the service
//!   API the gRPC adapter and tests call;
//! * [`job`] holds one job's in-memory state; [`task_state`] a task's state (the job state
//!   machine is `silk_core::JobState`);
//! * [`lanes`] are the inbound queues the scheduler polls; `persist.rs` the group-commit actor;
//!   `settle.rs` the job transitions storage decides on, retried until the database takes them;
//! * [`StorageServer`] a whole storage process (`silk storage`, `silk dev`);
//! * [`config`] the service's tuning keys; [`testing`] helpers for tests on both databases.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use silk_runtime::storage::{Storage, StorageConfig, db::{AnyDb, Secret}};
//! let db = AnyDb::connect("sqlite:/tmp/silk-storage.db").await?;
//! let storage = Storage::open(db, StorageConfig::default()).await?;
//! let group = storage.add_resource_group("team-a", &Secret::new(b"s3cret".to_vec())).await?;
//! let graph = r#"{"schema_version": "1.0", "tasks": [{"package": "p", "function": "f"}]}"#;
//! let job = storage.register_job(group, graph, &[0, 0, 0, 0]).await?;
//! storage.start_job(job).await?;
//! storage.shutdown().await;
//! # Ok(()) }
//! ```

mod catalog;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub(crate) mod instances;
pub mod job;
pub mod lanes;
mod liveness;
mod observe;
mod outputs;
mod persist;
mod register;
mod run;
mod service;
mod settle;
mod spans;
mod stops;
pub mod task_state;
pub mod testing;

pub use catalog::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
pub use clock::Clock;
pub use config::StorageConfig;
pub use error::{Error, Result, Stale};
pub use instances::RegistrationKey;
pub use job::{ExecutionContext, Progress};
pub use lanes::{LaneKind, ReadyTask};
pub use persist::Refused;
pub use register::JobUpload;
pub use run::{RunError, StorageServer};
pub use service::{OUTPUTS_PAGE_BYTES, Storage};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Locks a mutex, ignoring poisoning (no invariant spans a panic in these short sections).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
