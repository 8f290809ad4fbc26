//! # silk-ipc — the EM ↔ executor protocol and its transports
//!
//! An execution manager (EM) hands tasks to long-lived native executor processes. This crate
//! defines what they say to each other ([`Request`], [`Response`], [`TaskFailure`]), what both
//! executors say about a package ([`PackageInfo`], [`InspectError`], init hook answers), the one
//! place that encodes it ([`codec`]), and the transports that carry it: two lock-free rings in a
//! shared-memory segment ([`shm`], the default for native executors) and length-delimited frames
//! over pipes ([`pipe`], the fallback). Each transport implements the [`ClientTransport`] (EM side) and
//! [`ServerTransport`] (executor side) contract.
//!
//! Sits between `silk-tdl` (below) and the executors and runtime (above).
//!
//! ```
//! use silk_ipc::{codec, Execute, Request};
//! let req = Request::Execute(Execute {
//!     package: "fixtures".into(),
//!     function: "fibonacci".into(),
//!     context: silk_tdl::TaskContext::standalone().to_msgpack(),
//!     inputs: silk_tdl::frame::encode([rmp_serde::to_vec(&10u64).unwrap()]).unwrap(),
//! });
//! let mut bytes = Vec::new();
//! codec::encode_into(&req, &mut bytes).unwrap();
//! assert_eq!(codec::decode::<Request>(&bytes).unwrap(), req);
//! ```

pub mod codec;
mod failure;
mod package;
pub mod pipe;
mod protocol;
pub mod shm;
mod transport;

pub use failure::{FailureKind, MAX_FAILURE_TEXT_BYTES, TaskFailure, cut_bytes, cut_text};
pub use package::{InspectError, PackageInfo};
pub use protocol::{Execute, ExecuteView, Outcome, Request, RequestRef, RequestView, Response};
pub use transport::{
    ClientTransport, DEFAULT_MAX_RECV_BYTES, MAX_MESSAGE_BYTES, ServerTransport, TransportError,
};
