//! The services' gRPC surfaces: authentication rules, the Rust client against storage, the
//! scheduler's RPCs, TLS, and the metrics endpoints.
//!
//! One test binary for the whole group (linking a binary per file cost more than the tests'
//! own build); each module is one former test file.

#[path = "../auth/mod.rs"]
mod auth;
#[path = "../support/mod.rs"]
mod support;

mod auth_rules;
mod client;
mod metrics_prometheus;
mod metrics_scrape;
mod scheduler_grpc;
mod tls;
