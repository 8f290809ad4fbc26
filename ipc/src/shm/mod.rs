//! The shared-memory transport: the fast path between an EM and a native executor.
//!
//! One [`Segment`] per executor — a sealed memfd the EM creates, reserves (`fallocate`) and maps,
//! and hands to the executor at spawn — holds two single-producer single-consumer byte rings:
//! requests (EM → executor) and responses (executor → EM). A message is a `u32 LE` length and the
//! [`crate::codec`] encoding; messages larger than a ring stream through it in chunks. Waiting is
//! adaptive spin-then-futex (see `wait.rs`); parks are bounded, so the EM notices a dead executor
//! (through the `peer_alive` check it passes, e.g. a pidfd poll) within a few milliseconds and an
//! executor notices that its parent is gone.
//!
//! Files: `layout.rs` (where things are), `ring.rs` (the lock-free algorithm and its
//! acquire/release pairs), `raw.rs` (the only unsafe code: the mapping and the byte copies),
//! `wait.rs` (spin and park policy), `segment.rs` (memfd setup), `endpoint.rs` (the
//! [`ShmClient`]/[`ShmServer`] transports).
//!
//! # What is checked, and how
//!
//! * **loom** model-checks `ring.rs` — the very code used in production, compiled against loom's
//!   atomics under `--cfg loom` — over heap memory whose bytes are loom cells: message streaming
//!   through a ring smaller than the messages (wrap-around, full and empty rings), the
//!   sleep/wake protocol with futexes modelled as un-timed waits (a lost wake-up is reported as
//!   a deadlock), and closing while the peer sleeps. Run by `scripts/test`:
//!   `RUSTFLAGS="--cfg loom" cargo test -p silk-ipc --release --lib loom`.
//! * **Not** model-checked: `raw.rs` (pointer arithmetic over the mapping, bounds-checked by
//!   asserts and exercised by the unit and transport tests), the futex syscalls themselves, the
//!   timing policy in `wait.rs`, and cross-process behaviour (covered by the executor contract
//!   suite, which runs every case over shm and over pipes).
//! * **miri** is not run: it needs a nightly toolchain with the miri component, which this
//!   project's machines cannot fetch, and it cannot execute the memfd/mmap/futex syscalls anyway;
//!   the part it could check (the heap-backed ring) is what loom already covers.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use silk_ipc::shm::{Segment, ShmClient, ShmServer, WaitMode};
//! use silk_ipc::{ClientTransport, Outcome, Request, RequestView, Response, ServerTransport};
//!
//! let em_side = Segment::create(1 << 16).unwrap();
//! // An executor would get this fd at spawn; here a thread plays the executor.
//! let executor_side = Segment::open(em_side.fd().try_clone_to_owned().unwrap()).unwrap();
//! let executor = std::thread::spawn(move || {
//!     let mut server = ShmServer::new(executor_side, WaitMode::Adaptive, || true);
//!     while let Some(RequestView::Execute(_)) = server.recv().unwrap() {
//!         let done = Response::Result { outcome: Outcome::Success(vec![1]), elapsed_ns: 0 };
//!         server.send(&done).unwrap();
//!     }
//! });
//! let mut client = ShmClient::new(em_side, WaitMode::Adaptive, || true);
//! let deadline = Instant::now() + Duration::from_secs(10);
//! client.send(&Request::Shutdown, deadline).unwrap();
//! executor.join().unwrap();
//! ```

#[cfg(not(loom))]
mod alarm;
#[cfg(not(loom))]
mod endpoint;
#[cfg_attr(
    loom,
    expect(dead_code, reason = "under loom only the ring's types are used")
)]
mod layout;
#[cfg(all(test, loom))]
mod loom_tests;
mod raw;
mod ring;
#[cfg(not(loom))]
mod segment;
mod sync;
#[cfg(not(loom))]
mod wait;

#[cfg(not(loom))]
pub use endpoint::{EM_PARK_SLICE, EXECUTOR_PARK_SLICE, ShmClient, ShmServer, parent_watch};
pub use layout::{LAYOUT_VERSION, LayoutError, MIN_RING_BYTES};
#[cfg(not(loom))]
pub use segment::{DEFAULT_RING_BYTES, Segment, ShmError};
#[cfg(not(loom))]
pub use wait::{SPIN_CAP, SPIN_FLOOR, WaitMode};
