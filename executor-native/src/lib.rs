//! # silk-executor-native — runs trusted native task packages
//!
//! The library behind the `silk-executor-native` binary, a long-lived child process of an
//! execution manager. It reads [`silk_ipc::Request`]s from a transport, loads
//! `<package_dir>/lib<name>.so` on first use (checking the ABI version before touching any other
//! symbol, then the declared name, then running the init hook once), runs the task and answers
//! with the outcome and the time the call took inside the executor.
//!
//! The binary serves over the shared-memory ring when the EM hands it a segment
//! (`--shm-fd N`, see [`take_inherited_fd`] and `silk_ipc::shm`) and over stdin/stdout pipes
//! otherwise. Sits above `silk-ipc`; the EM side (`silk-runtime`) spawns the binary.
//!
//! `silk-executor-native --inspect PATH` instead checks one library like a load does, without
//! running its init hook, and prints its name and task list as JSON ([`inspect_package`],
//! [`inspect`]); `silk package inspect` uses it to keep native code out of the CLI process.
//!
//! ```no_run
//! use silk_executor_native::Executor;
//! use silk_ipc::pipe::PipeServer;
//!
//! let mut transport = PipeServer::take_stdio().unwrap();
//! Executor::new("target/packages".into()).serve(&mut transport).unwrap();
//! ```

mod inherited_fd;
pub mod inspect;
mod package;
mod server;

pub use inherited_fd::take_inherited_fd;
pub use package::{OpenError, Package, inspect as inspect_package};
// What `--inspect` reports, and why it stopped: shared with the wasm executor.
pub use server::Executor;
pub use silk_ipc::{InspectError, PackageInfo};
