//! silk's shared vocabulary and wire code: what the client, storage, the scheduler and the
//! execution managers all speak besides the `.proto` files of `silk-proto`. It holds no service
//! and compiles no sandbox or database driver, so the client crate built on it stays small.
//! How the pieces fit: `docs/architecture.md`.
//!
//! * [`graph`]: the task graph model, its JSON and compact forms and its validation rules;
//! * [`JobState`]: the job state machine and its wire form;
//! * [`ids`]: the ids services mint (sessions, execution managers, schedulers); [`convert`]:
//!   vocabulary types to and from their wire messages;
//! * [`wire`]: message and flow-control sizes, client channel settings, the error-kind key;
//! * [`retry`]: which failed calls to repeat, and the backoff between tries;
//! * [`auth`]: the client side of authentication (bearer tokens, TLS to servers).

pub mod auth;
pub mod convert;
pub mod graph;
pub mod ids;
pub mod job_state;
pub mod msgpack;
pub mod retry;
pub mod wire;

pub use job_state::{JobState, UnknownJobState};
