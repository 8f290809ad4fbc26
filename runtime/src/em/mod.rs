//! The execution manager (EM): pulls task assignments from the scheduler, registers their task
//! instances with storage, runs them on a pool of executor slots and reports outcomes.
//!
//! * [`pool`] — executor slots (native child or wasm sandbox per package policy) and the
//!   [`pool::SlotPool`] of slot threads;
//! * [`run_em`] (`run.rs`) — setup and drain; `pull.rs` the pull loop; `request_outcome.rs`
//!   builds executor requests and the outcomes reported; `reporter.rs` sends outcomes; `window.rs` sizes the
//!   prefetch queue; `spans.rs` the EM's trace spans; [`liveness`] heartbeats; [`session`] tracks
//!   storage's session; [`config`] the settings.

pub mod clients;
pub mod config;
pub mod error;
pub mod liveness;
pub mod pool;
mod pull;
mod reporter;
mod request_outcome;
mod run;
pub mod session;
mod spans;
mod window;

pub use config::EmConfig;
pub use error::{Error, Result};
pub use run::{run_em, run_em_with, slot_config};
