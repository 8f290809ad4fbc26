//! # silk-proto — silk's gRPC protocol
//!
//! The `.proto` files under `proto/silk/` and the tonic/prost code generated from them at build
//! time (with protox, so no system `protoc` is needed). The services are implemented in
//! `silk-runtime`; this crate holds only messages, clients and server traits.
//!
//! ```
//! use silk_proto::storage::{TaskId, task_id::Kind};
//! let commit = TaskId { kind: Some(Kind::Commit(silk_proto::storage::Void {})) };
//! assert!(matches!(commit.kind, Some(Kind::Commit(_))));
//! ```

/// The storage service (`silk.storage.v1`).
pub mod storage {
    #![expect(missing_docs, reason = "generated code")]
    #![expect(clippy::all, reason = "generated code")]
    tonic::include_proto!("silk.storage.v1");
}

/// The scheduler service (`silk.scheduler.v1`).
pub mod scheduler {
    #![expect(missing_docs, reason = "generated code")]
    #![expect(clippy::all, reason = "generated code")]
    tonic::include_proto!("silk.scheduler.v1");
}

/// The gRPC path (`/package.Service/Method`) of every RPC of every silk service, generated from
/// the `.proto` files.
pub const METHOD_PATHS: &[&str] = include!(concat!(env!("OUT_DIR"), "/method_paths.rs"));
