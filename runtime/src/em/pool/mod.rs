//! The execution manager's process pool: executors that run tasks. Today: native executor
//! children driven over the IPC transport ([`native`]).

pub mod child;
pub mod native;
pub mod policy;
pub mod slot;

pub use native::{NativeExecutor, NativeExecutorConfig, SpawnError, TaskSuccess};
pub use policy::{Backend, PackagePolicy};
pub use slot::{Slot, SlotConfig};
