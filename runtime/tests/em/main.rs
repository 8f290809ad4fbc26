//! The execution manager and its executors: the EM against a mock storage and scheduler, the
//! executor contract, limits and message sizes, the slot pool and its backends and metrics.
//!
//! One test binary for the whole group (linking a binary per file cost more than the tests'
//! own build); each module is one former test file.

mod mock;
#[path = "../support/mod.rs"]
mod support;

mod em_runtime;
mod executor_contract;
mod executor_limits;
mod message_sizes;
mod pool_backends;
mod pool_batches;
mod pool_metrics;
mod slot_pool;
mod timeout_span;
