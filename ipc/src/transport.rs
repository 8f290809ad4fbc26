//! The transport contract: how the EM side and the executor side exchange [`Request`]s and
//! [`Response`]s. Every transport (pipes, the shared-memory ring) implements both halves and
//! passes the same conformance suite.
//!
//! The EM side never blocks past a deadline and notices a dead peer: `send` and `recv` return
//! [`TransportError::TimedOut`] once the deadline passes and [`TransportError::Closed`] when the
//! executor has gone away.

use std::time::Instant;

use crate::codec::CodecError;
use crate::protocol::{Execute, Request, RequestView, Response};

/// Largest message a transport carries (bytes of encoded message).
pub const MAX_MESSAGE_BYTES: usize = u32::MAX as usize;

/// Largest message a receiving end accepts unless told otherwise
/// ([`ClientTransport::set_max_recv_bytes`]): 64 MiB of task data (the default task output
/// limit, and storage's gRPC message cap for inputs) plus 1 MiB for the rest of the message. A
/// length above the limit is refused before anything is allocated for it.
pub const DEFAULT_MAX_RECV_BYTES: usize = (64 << 20) + (1 << 20);

/// A transport failure.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The deadline passed first.
    #[error("timed out")]
    TimedOut,
    /// The peer closed its end or died.
    #[error("peer closed the connection")]
    Closed,
    /// An OS-level error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A message is larger than the limit (the receiver's, or [`MAX_MESSAGE_BYTES`]).
    #[error("message of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// The message's length (as claimed by its header, when received).
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// The peer wrote ring counters no correct peer can write: a corrupt or lying peer.
    #[error("corrupt ring counters: head {head}, tail {tail}, capacity {capacity}")]
    CorruptRing {
        /// Bytes ever consumed, as read.
        head: u64,
        /// Bytes ever published, as read.
        tail: u64,
        /// The ring's capacity.
        capacity: u64,
    },
}

impl From<rustix::io::Errno> for TransportError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Io(e.into())
    }
}

/// The EM's end of a connection to one executor.
pub trait ClientTransport: Send {
    /// Sends a request, giving up at `deadline`.
    ///
    /// # Errors
    /// [`TransportError::TimedOut`], [`TransportError::Closed`] or an I/O or codec error.
    fn send(&mut self, request: &Request, deadline: Instant) -> Result<(), TransportError>;

    /// Sends `Request::Execute` for a borrowed `execute`. Transports override this to encode
    /// from the borrow ([`crate::RequestRef`]); the default clones.
    ///
    /// # Errors
    /// As [`ClientTransport::send`].
    fn send_execute(&mut self, execute: &Execute, deadline: Instant) -> Result<(), TransportError> {
        self.send(&Request::Execute(execute.clone()), deadline)
    }

    /// Waits for the next response, giving up at `deadline`. A response whose length exceeds
    /// the receive limit fails with [`TransportError::TooLarge`] before anything is allocated
    /// for it; the connection is then out of step and must be dropped.
    ///
    /// # Errors
    /// As [`ClientTransport::send`], [`TransportError::TooLarge`], and
    /// [`TransportError::CorruptRing`] for a peer that wrote impossible ring counters.
    fn recv(&mut self, deadline: Instant) -> Result<Response, TransportError>;

    /// Sets the largest response [`ClientTransport::recv`] accepts (initially
    /// [`DEFAULT_MAX_RECV_BYTES`]).
    fn set_max_recv_bytes(&mut self, limit: usize);
}

/// The executor's end of the connection.
pub trait ServerTransport {
    /// Waits for the next request; `None` when the EM closed the connection or is gone. The
    /// request borrows the transport's receive buffer (no copy of its inputs), until the next
    /// call.
    ///
    /// # Errors
    /// An I/O or codec error.
    fn recv(&mut self) -> Result<Option<RequestView<'_>>, TransportError>;

    /// Sends a response.
    ///
    /// # Errors
    /// [`TransportError::Closed`] when the EM is gone, or an I/O or codec error.
    fn send(&mut self, response: &Response) -> Result<(), TransportError>;
}
