//! The execution manager's pool of executor slots ([`slot_pool`]): N slot threads fed from one queue,
//! each owning one [`slot`] that runs one task at a time on the backend [`policy`] picks for its
//! package: a native executor child (`silk-executor-native`) for the packages the EM's
//! configuration trusts — kept by the slot across tasks, respawned after a crash or timeout, and
//! driven over the shared-memory ring or pipes ([`native`], [`transport`]) — and the wasm sandbox
//! (`silk-executor-wasm`, inside the EM's process, under per-package limits) for every other
//! package. [`child`] finds the executor binary and forwards its stderr; `pre_exec.rs` hands
//! the child its segment and ties its life to the EM's; [`stop`] stops a queued or running task
//! that is no longer wanted.

pub mod child;
pub mod native;
pub mod policy;
mod pre_exec;
pub mod slot;
pub mod slot_pool;
pub mod stop;
pub mod transport;

pub use native::{NativeExecutor, NativeExecutorConfig, SpawnError, TaskSuccess};
pub use policy::{Backend, NativePolicy, PackagePolicy};
pub use silk_ipc::shm::WaitMode;
pub use slot::{Done, Queued, RunStats, Slot, SlotConfig};
pub use slot_pool::SlotPool;
pub use stop::Stop;
pub use transport::TransportKind;
