//! The execution manager (EM): pulls task assignments from the scheduler, registers their task
//! instances with storage, runs them on a pool of executor slots and reports outcomes.
//!
//! * [`pool`] — executor slots (native child or wasm sandbox per package policy) and the
//!   [`pool::SlotPool`] of slot threads;
//! * [`run_em`] (`runtime.rs`) — setup and drain; `pull.rs` the pull loop; `work.rs` builds requests and
//!   outcomes; `reporter.rs` sends outcomes; `window.rs` sizes the
//!   prefetch queue; `spans.rs` the EM's trace spans; [`liveness`] heartbeats; [`session`] tracks
//!   storage's session; [`config`] the settings.

pub mod clients;
pub mod config;
pub mod error;
pub mod liveness;
pub mod pool;
mod pull;
mod reporter;
mod runtime;
pub mod session;
mod spans;
mod window;
mod work;

pub use config::EmConfig;
pub use error::{Error, Result};
pub use runtime::{run_em, run_em_with, slot_config};
