//! # silk-executor-native — runs trusted native task packages
//!
//! The library behind the `silk-executor-native` binary, a long-lived child process of an
//! execution manager. It reads [`silk_ipc::Request`]s from a transport, loads
//! `<package_dir>/lib<name>.so` on first use (checking the ABI version before touching any other
//! symbol, then the declared name, then running the init hook once), runs the task and answers
//! with the outcome and the time the call took inside the executor.
//!
//! Sits above `silk-ipc`; the EM side (`silk-runtime`) spawns the binary.
//!
//! ```no_run
//! use silk_executor_native::Executor;
//! use silk_ipc::pipe::PipeServer;
//!
//! let mut transport = PipeServer::take_stdio().unwrap();
//! Executor::new("target/packages".into()).serve(&mut transport).unwrap();
//! ```

mod package;
mod server;

pub use package::Package;
pub use server::Executor;
