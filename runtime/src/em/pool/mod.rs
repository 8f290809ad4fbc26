//! The execution manager's pool of executor slots ([`slots`]): each [`slot`] runs a task in the
//! wasm sandbox or, for trusted packages, on a native executor child driven over the
//! shared-memory ring or pipes ([`native`], [`transport`]); [`stop`] stops a task that is no
//! longer wanted.

pub mod child;
mod inherit_fd;
pub mod native;
pub mod policy;
pub mod slot;
pub mod slots;
pub mod stop;
pub mod transport;

pub use native::{NativeExecutor, NativeExecutorConfig, SpawnError, TaskSuccess};
pub use policy::{Backend, NativePolicy, PackagePolicy};
pub use silk_ipc::shm::WaitMode;
pub use slot::{Slot, SlotConfig};
pub use slots::SlotPool;
pub use stop::Stop;
pub use transport::TransportKind;
