//! Capture of a guest's stdout and stderr: the first `max_log_bytes` bytes are kept, the rest is
//! counted and dropped. The guest's writes always succeed, so a chatty task is not failed for
//! its logging; host memory stays bounded however much it writes.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// What a task wrote to one of its output streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes written, up to the policy's `max_log_bytes`.
    pub bytes: Vec<u8>,
    /// How many further bytes were written and dropped.
    pub dropped_bytes: u64,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    captured: Captured,
}

/// A bounded, cloneable output stream handed to WASI as stdout or stderr.
#[derive(Debug, Clone)]
pub(crate) struct CappedPipe(Arc<Mutex<Inner>>);

/// Largest write WASI is invited to make at once (it splits bigger ones).
const WRITE_PERMIT: usize = 1 << 20;

impl CappedPipe {
    pub(crate) fn new(limit: usize) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            limit,
            captured: Captured::default(),
        })))
    }

    fn push(&self, buf: &[u8]) {
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let room = inner.limit.saturating_sub(inner.captured.bytes.len());
        let keep = room.min(buf.len());
        inner.captured.bytes.extend_from_slice(&buf[..keep]);
        let dropped = u64::try_from(buf.len() - keep).unwrap_or(u64::MAX);
        inner.captured.dropped_bytes = inner.captured.dropped_bytes.saturating_add(dropped);
    }

    /// Takes what was captured so far.
    pub(crate) fn take(&self) -> Captured {
        std::mem::take(
            &mut self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .captured,
        )
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_prefix_and_counts_the_rest() {
        let pipe = CappedPipe::new(4);
        pipe.push(b"ab");
        pipe.push(b"cdef");
        pipe.push(b"gh");
        let c = pipe.take();
        assert_eq!(c.bytes, b"abcd");
        assert_eq!(c.dropped_bytes, 4);
    }
}
