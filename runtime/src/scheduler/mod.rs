//! The scheduler: pulls ready tasks from storage's lanes, orders them fairly and hands them to
//! execution managers.
//!
//! * [`RoundRobinCore`] (`core.rs`, `group.rs`) — the synchronous fairness state machine: round
//!   robin over resource groups, then over a bounded set of active jobs per group, commit and
//!   cleanup tasks first; deduplication, finalizing gates, session changes;
//! * [`DispatchQueue`] — the bounded, session-fenced queue EMs pull from;
//! * [`EmRegistry`] — outstanding assignments per execution manager, rescheduled when an EM dies
//!   or shuts down without acknowledging them;
//! * [`run_core`] (`runner.rs`) — the async loop: polls storage (retrying with backoff), feeds
//!   the core, fills the dispatch queue;
//! * [`grpc`] — the `silk.scheduler.v1` service EMs call; [`run_scheduler`] (`server.rs`) wires
//!   a whole scheduler process against storage over gRPC.

mod assignment;
mod config;
mod core;
mod dispatch;
mod error;
mod group;
pub mod grpc;
mod registry;
mod runner;
#[cfg(test)]
mod scenarios;
mod server;

pub use assignment::{Assignment, AssignmentId, IdIssuer};
pub use config::CoreConfig;
pub use core::{RoundRobinCore, SessionChange};
pub use dispatch::DispatchQueue;
pub use error::{Error, Result};
pub use registry::{EmRegistry, RegistryConfig};
pub use runner::{LaneSource, Polled, run_core};
pub use server::{GrpcLanes, SchedulerConfig, lazy_channel, run_scheduler, run_scheduler_with};
