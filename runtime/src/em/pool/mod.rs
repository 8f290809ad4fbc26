//! The execution manager's pool of executor slots ([`slot_pool`]): each [`slot`] runs a task in the
//! wasm sandbox or, for trusted packages, on a native executor child driven over the
//! shared-memory ring or pipes ([`native`], [`transport`]); [`stop`] stops a task that is no
//! longer wanted.

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
pub use slot::{Slot, SlotConfig};
pub use slot_pool::SlotPool;
pub use stop::Stop;
pub use transport::TransportKind;
