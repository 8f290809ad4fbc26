//! The pipe transport: length-delimited bincode frames (`u32 LE length`, then the message) over
//! the executor's stdin and stdout. Each frame is written with a single `write` when the pipe
//! has room. The EM side uses non-blocking pipes and `poll` so that no call outlives its deadline.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use rustix::io::Errno;

use crate::codec;
use crate::protocol::{Execute, Request, RequestRef, RequestView, Response};
use crate::transport::{
    ClientTransport, DEFAULT_MAX_RECV_BYTES, MAX_MESSAGE_BYTES, ServerTransport, TransportError,
};

/// Receive buffers above this size are freed after use rather than kept for the next message.
const KEEP_BUFFER_BYTES: usize = 8 << 20;

/// Encodes `msg` as one frame into `buf` (cleared first).
fn frame_into<T: serde::Serialize>(msg: &T, buf: &mut Vec<u8>) -> Result<(), TransportError> {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
    codec::encode_into(msg, buf)?;
    let len = buf.len() - 4;
    let len32 = u32::try_from(len).map_err(|_| TransportError::TooLarge {
        len,
        limit: MAX_MESSAGE_BYTES,
    })?;
    buf[..4].copy_from_slice(&len32.to_le_bytes());
    Ok(())
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), TransportError> {
    let flags = fcntl_getfl(fd)?;
    fcntl_setfl(fd, flags | OFlags::NONBLOCK)?;
    Ok(())
}

/// Waits until `fd` is ready for `flags` or `deadline` passes.
fn wait_ready(fd: &OwnedFd, flags: PollFlags, deadline: Instant) -> Result<(), TransportError> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(TransportError::TimedOut);
        }
        let timeout = Timespec::try_from(remaining).map_err(|_| TransportError::TimedOut)?;
        let mut fds = [PollFd::new(fd, flags)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(Errno::INTR) => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The EM's end: writes requests to the executor's stdin, reads responses from its stdout.
#[derive(Debug)]
pub struct PipeClient {
    to_child: OwnedFd,
    from_child: OwnedFd,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    max_recv: usize,
}

impl PipeClient {
    /// Wraps the two pipe ends (e.g. `ChildStdin` and `ChildStdout`), making them non-blocking.
    ///
    /// # Errors
    /// If the descriptors cannot be made non-blocking.
    pub fn new(
        to_child: impl Into<OwnedFd>,
        from_child: impl Into<OwnedFd>,
    ) -> Result<Self, TransportError> {
        let (to_child, from_child) = (to_child.into(), from_child.into());
        set_nonblocking(&to_child)?;
        set_nonblocking(&from_child)?;
        Ok(Self {
            to_child,
            from_child,
            wbuf: Vec::new(),
            rbuf: Vec::with_capacity(64 * 1024),
            max_recv: DEFAULT_MAX_RECV_BYTES,
        })
    }

    /// Reads until `rbuf` holds at least `want` bytes.
    fn fill(&mut self, want: usize, deadline: Instant) -> Result<(), TransportError> {
        let mut filled = self.rbuf.len();
        if filled >= want {
            return Ok(());
        }
        // Size the buffer once (zeroing it once), then read as much as is there, at least up to
        // `want`, in as few calls as possible. Resizing per read would re-zero the rest of a large
        // message on every call.
        self.rbuf.resize(want.max(filled + 64 * 1024), 0);
        let result = loop {
            if filled >= want {
                break Ok(());
            }
            match rustix::io::read(&self.from_child, &mut self.rbuf[filled..]) {
                Ok(0) => break Err(TransportError::Closed),
                Ok(n) => filled += n,
                Err(Errno::AGAIN) => {
                    if let Err(e) = wait_ready(&self.from_child, PollFlags::IN, deadline) {
                        break Err(e);
                    }
                }
                Err(Errno::INTR) => {}
                Err(e) => break Err(e.into()),
            }
        };
        self.rbuf.truncate(filled);
        result
    }
}

impl PipeClient {
    fn send_msg<T: serde::Serialize>(
        &mut self,
        msg: &T,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        frame_into(msg, &mut self.wbuf)?;
        let mut off = 0;
        while off < self.wbuf.len() {
            match rustix::io::write(&self.to_child, &self.wbuf[off..]) {
                Ok(n) => off += n,
                Err(Errno::AGAIN) => wait_ready(&self.to_child, PollFlags::OUT, deadline)?,
                Err(Errno::INTR) => {}
                Err(Errno::PIPE) => return Err(TransportError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl ClientTransport for PipeClient {
    fn send(&mut self, request: &Request, deadline: Instant) -> Result<(), TransportError> {
        self.send_msg(request, deadline)
    }

    fn send_execute(&mut self, execute: &Execute, deadline: Instant) -> Result<(), TransportError> {
        self.send_msg(&RequestRef::Execute(execute), deadline)
    }

    fn recv(&mut self, deadline: Instant) -> Result<Response, TransportError> {
        self.fill(4, deadline)?;
        let len =
            u32::from_le_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]) as usize;
        // Checked before `fill` sizes the buffer for it: the length is the peer's word.
        if len > self.max_recv {
            self.rbuf.clear();
            return Err(TransportError::TooLarge {
                len,
                limit: self.max_recv,
            });
        }
        self.fill(4 + len, deadline)?;
        let response = codec::decode(&self.rbuf[4..4 + len]);
        // The protocol is strictly request/response: nothing follows a response.
        self.rbuf.clear();
        if self.rbuf.capacity() > KEEP_BUFFER_BYTES {
            self.rbuf = Vec::with_capacity(64 * 1024);
        }
        Ok(response?)
    }

    fn set_max_recv_bytes(&mut self, limit: usize) {
        self.max_recv = limit;
    }
}

/// The executor's end: reads requests from stdin, writes responses to stdout (blocking).
#[derive(Debug)]
pub struct PipeServer {
    input: BufReader<File>,
    output: File,
    buf: Vec<u8>,
}

impl PipeServer {
    /// Wraps the two ends. In an executor, pass duplicates of stdin/stdout and point the real
    /// fds 0 and 1 elsewhere so package code printing to stdout cannot corrupt the protocol.
    #[must_use]
    pub fn new(input: impl Into<OwnedFd>, output: impl Into<OwnedFd>) -> Self {
        Self {
            input: BufReader::with_capacity(64 * 1024, File::from(input.into())),
            output: File::from(output.into()),
            buf: Vec::new(),
        }
    }

    /// Takes over the process's stdin and stdout for the protocol: the protocol gets private
    /// duplicates, fd 0 becomes `/dev/null` and fd 1 becomes a copy of stderr.
    ///
    /// # Errors
    /// If the descriptors cannot be duplicated or `/dev/null` cannot be opened.
    pub fn take_stdio() -> Result<Self, TransportError> {
        let input = std::io::stdin().as_fd().try_clone_to_owned()?;
        let output = std::io::stdout().as_fd().try_clone_to_owned()?;
        let null = File::open("/dev/null")?;
        rustix::stdio::dup2_stdin(&null)?;
        rustix::stdio::dup2_stdout(std::io::stderr().as_fd())?;
        Ok(Self::new(input, output))
    }
}

impl ServerTransport for PipeServer {
    fn recv(&mut self) -> Result<Option<RequestView<'_>>, TransportError> {
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > DEFAULT_MAX_RECV_BYTES {
            return Err(TransportError::TooLarge {
                len,
                limit: DEFAULT_MAX_RECV_BYTES,
            });
        }
        self.buf.resize(len, 0);
        self.input.read_exact(&mut self.buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                TransportError::Closed
            } else {
                e.into()
            }
        })?;
        Ok(Some(codec::decode_request_view(&self.buf)?))
    }

    fn send(&mut self, response: &Response) -> Result<(), TransportError> {
        frame_into(response, &mut self.buf)?;
        self.output.write_all(&self.buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                TransportError::Closed
            } else {
                e.into()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_length_above_the_limit_is_refused_before_allocating() {
        let (_to_child_r, to_child_w) = rustix::pipe::pipe().unwrap();
        let (from_child_r, from_child_w) = rustix::pipe::pipe().unwrap();
        let mut em = PipeClient::new(to_child_w, from_child_r).unwrap();
        let mut peer = File::from(from_child_w);
        let soon = || Instant::now() + Duration::from_secs(10);

        peer.write_all(&0xffff_fff0u32.to_le_bytes()).unwrap();
        let e = em.recv(soon()).unwrap_err();
        assert!(
            matches!(e, TransportError::TooLarge { len: 0xffff_fff0, limit } if limit == DEFAULT_MAX_RECV_BYTES),
            "{e}"
        );
        assert!(em.rbuf.capacity() < 1 << 20, "nothing sized for the claim");

        em.set_max_recv_bytes(100);
        peer.write_all(&101u32.to_le_bytes()).unwrap();
        let e = em.recv(soon()).unwrap_err();
        assert!(
            matches!(
                e,
                TransportError::TooLarge {
                    len: 101,
                    limit: 100
                }
            ),
            "{e}"
        );
    }
}
