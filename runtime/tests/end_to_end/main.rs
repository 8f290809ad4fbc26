//! End-to-end tests: whole clusters (storage, scheduler, EMs as real processes) running jobs through
//! kills, faults, cancellations, hostile outputs and traces.
//!
//! One test binary for the whole group (linking a binary per file cost more than the tests'
//! own build); each module is one former test file.

#[path = "../e2e/mod.rs"]
mod e2e;

mod cancel;
mod cluster;
mod containment;
mod corrupt_executor;
mod drill;
mod faults;
mod jobs;
mod liveness;
mod outputs;
mod traces_otlp;
