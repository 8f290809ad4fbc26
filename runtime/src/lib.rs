//! # silk-runtime — silk's services and command line
//!
//! The execution manager side of silk: the process pool that drives executors ([`em`]), and the
//! `silk` command line ([`cli`]). The binary `silk` is a thin wrapper around [`cli::run`].
//! The Rust client — build a typed task graph, submit it, watch and wait for it, fetch its
//! outputs — is the crate `silk-client`; the vocabulary every part shares (task graphs, job
//! states, ids, wire settings) is the crate `silk-core`.
//! The storage service — jobs, task state, SQLite/MySQL persistence, recovery and its gRPC
//! server — is [`storage`].
//! The scheduler — fair round robin over resource groups and jobs, the dispatch queue and the EM
//! registry, its gRPC service — is [`scheduler`]; the execution manager's runtime (registration,
//! liveness, pull loop, slot pool, reports, drain) is [`em::run_em`].
//! Credentials and TLS of every gRPC server and client — the cluster, admin and group tokens,
//! the one table of which RPC needs which, the auth layer — are [`auth`].
//! How these parts fit together (components, one job's path, state machines, session fencing)
//! is described in `docs/architecture.md` at the repository's root.
//!
//! Run one task of a native package in a fresh executor:
//!
//! ```no_run
//! use std::time::Duration;
//! use silk_runtime::em::pool::{NativeExecutor, NativeExecutorConfig};
//! use silk_ipc::Execute;
//!
//! let config = NativeExecutorConfig::new("target/debug/silk-executor-native".into(), "target/packages".into());
//! let mut executor = NativeExecutor::spawn(config).unwrap();
//! let mut inputs = silk_tdl::frame::FrameWriter::new();
//! inputs.push(&10u64).unwrap();
//! let request = Execute {
//!     package: "fixtures".into(),
//!     function: "fibonacci".into(),
//!     context: silk_tdl::TaskContext::standalone().to_msgpack(),
//!     inputs: inputs.finish(),
//! };
//! let out = executor.execute(&request, Duration::from_secs(5)).unwrap();
//! let values = silk_tdl::frame::decode(&out.outputs).unwrap();
//! assert_eq!(silk_tdl::frame::value::<u64>(values[0], 0).unwrap(), 55);
//! ```

pub mod auth;
pub mod cli;
pub mod dev;
pub mod em;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod run_to_end;
pub mod scheduler;
pub mod storage;
pub mod traces;
