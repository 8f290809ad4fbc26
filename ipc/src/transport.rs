//! The transport contract: how the EM side and the executor side exchange [`Request`]s and
//! [`Response`]s. Every transport (pipes, the shared-memory ring) implements both halves and
//! passes the same conformance suite.
//!
//! The EM side never blocks past a deadline and notices a dead peer: `send` and `recv` return
//! [`TransportError::TimedOut`] once the deadline passes and [`TransportError::Closed`] when the
//! executor has gone away.

use std::time::Instant;

use crate::codec::CodecError;
use crate::protocol::{Execute, Request, Response};

/// Largest message a transport carries (bytes of encoded message).
pub const MAX_MESSAGE_BYTES: usize = u32::MAX as usize;

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
    /// A message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
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

    /// Waits for the next response, giving up at `deadline`.
    ///
    /// # Errors
    /// As [`ClientTransport::send`].
    fn recv(&mut self, deadline: Instant) -> Result<Response, TransportError>;
}

/// The executor's end of the connection.
pub trait ServerTransport {
    /// Waits for the next request; `None` when the EM closed the connection or is gone.
    ///
    /// # Errors
    /// An I/O or codec error.
    fn recv(&mut self) -> Result<Option<Request>, TransportError>;

    /// Sends a response.
    ///
    /// # Errors
    /// [`TransportError::Closed`] when the EM is gone, or an I/O or codec error.
    fn send(&mut self, response: &Response) -> Result<(), TransportError>;
}
