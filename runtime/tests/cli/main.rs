//! The `silk` command line and the README: `silk dev`, `silk job`, `silk package`, `silk task run`,
//! the services' configuration errors, the deployment configs, and the README's examples run as
//! written.
//!
//! One test binary for the whole group (linking a binary per file cost more than the tests'
//! own build); each module is one former test file.

#[path = "../readme/mod.rs"]
mod readme;
#[path = "../support/mod.rs"]
mod support;

mod deploy_configs;
mod deploy_monitoring;
mod dev_job;
mod package;
mod readme_examples;
mod services;
mod task_run;
