//! The execution manager's process pool: executors that run tasks. Today: native executor
//! children driven over the shared-memory ring or pipes ([`native`], [`transport`]).

pub mod child;
mod inherit_fd;
pub mod native;
pub mod policy;
pub mod slot;
pub mod slots;
pub mod transport;

pub use native::{NativeExecutor, NativeExecutorConfig, SpawnError, TaskSuccess};
pub use policy::{Backend, NativePolicy, PackagePolicy};
pub use silk_ipc::shm::WaitMode;
pub use slot::{Slot, SlotConfig};
pub use slots::SlotPool;
pub use transport::TransportKind;
