//! The shm transport's two ends: [`ShmClient`] (EM) and [`ShmServer`] (executor), each owning
//! one producer and one consumer handle of a [`Segment`]. Messages are encoded with
//! [`crate::codec`] into a buffer the endpoint reuses, then streamed through the ring; received
//! messages are copied into that buffer and decoded from it, so the steady state allocates only
//! what the decoded message itself owns.

use std::time::{Duration, Instant};

use crate::codec;
use crate::protocol::{Execute, Request, RequestRef, RequestView, Response};
use crate::shm::raw::MappedRing;
use crate::shm::ring::{self, Consumer, Producer};
use crate::shm::segment::Segment;
use crate::shm::sync::Ordering;
use crate::shm::wait::{self, Pacer, WaitMode, Waiter};
use crate::transport::{ClientTransport, DEFAULT_MAX_RECV_BYTES, ServerTransport, TransportError};

/// How often a parked EM re-checks its deadline and whether the executor is alive.
pub const EM_PARK_SLICE: Duration = Duration::from_millis(2);
/// How often a parked executor checks that its parent is alive.
pub const EXECUTOR_PARK_SLICE: Duration = Duration::from_millis(50);

/// Largest wait sample fed to the EWMA, so one scheduler hiccup does not stop spinning for long.
const SAMPLE_CAP: Duration = Duration::from_micros(2 * wait::SPIN_CAP.as_micros() as u64);

/// Buffers above this size are freed after use rather than kept for the next message.
const KEEP_BUFFER_BYTES: usize = 8 << 20;

fn trim(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_BUFFER_BYTES {
        *buf = Vec::new();
    }
}

/// The EM's end of the shm transport.
pub struct ShmClient {
    requests: Producer<MappedRing>,
    responses: Consumer<MappedRing>,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    pacer: Pacer,
    peer_alive: Box<dyn FnMut() -> bool + Send>,
    /// Since when the oldest unanswered request has been the executor's (sent, or answered up to
    /// it); `None` when nothing is in flight.
    in_flight_since: Option<Instant>,
    /// Execute requests sent and not yet answered (several when the EM queues them).
    outstanding: usize,
    max_recv: usize,
}

impl std::fmt::Debug for ShmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmClient")
            .field("pacer", &self.pacer)
            .finish_non_exhaustive()
    }
}

impl ShmClient {
    /// The EM end over `segment`. `peer_alive` is asked, at least every [`EM_PARK_SLICE`] while
    /// waiting, whether the executor still runs (e.g. by polling its pidfd); once it says no, the
    /// waiting call fails with [`TransportError::Closed`].
    pub fn new(
        segment: Segment,
        mode: WaitMode,
        peer_alive: impl FnMut() -> bool + Send + 'static,
    ) -> Self {
        let (req, resp) = segment.rings();
        wait::LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            requests: Producer::new(req),
            responses: Consumer::new(resp),
            wbuf: Vec::new(),
            rbuf: Vec::new(),
            pacer: Pacer::new(mode),
            peer_alive: Box::new(peer_alive),
            in_flight_since: None,
            outstanding: 0,
            max_recv: DEFAULT_MAX_RECV_BYTES,
        }
    }

    fn set_in_flight(&mut self, on: bool) {
        let was = self.in_flight_since.is_some();
        if on && !was {
            wait::IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.in_flight_since = Some(Instant::now());
        } else if !on && was {
            wait::IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            self.in_flight_since = None;
        }
    }
}

impl ShmClient {
    fn send_msg<T: serde::Serialize>(
        &mut self,
        request: &T,
        execute: bool,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        // The executor may spin for the next request only while every live executor of this
        // process can have a CPU to itself besides the EM's.
        let may_spin = self.pacer.mode() == WaitMode::Adaptive
            && wait::LIVE.load(std::sync::atomic::Ordering::Relaxed) < wait::cpus();
        // Written only when it changes: the executor reads this line on every request.
        let hint = &self.requests.mem().mapping().hints().executor_may_spin.0;
        if hint.load(Ordering::Relaxed) != u32::from(may_spin) {
            hint.store(u32::from(may_spin), Ordering::Relaxed);
        }
        self.wbuf.clear();
        codec::encode_into(request, &mut self.wbuf)?;
        let window = self.pacer.window();
        let mut waiter = Waiter::new(
            window,
            true,
            Some(deadline),
            EM_PARK_SLICE,
            &mut *self.peer_alive,
        );
        let sent = self.requests.send(&self.wbuf, &mut waiter);
        drop(waiter);
        trim(&mut self.wbuf);
        sent?;
        if execute {
            self.outstanding += 1;
            self.set_in_flight(true);
        }
        Ok(())
    }
}

impl ClientTransport for ShmClient {
    fn send(&mut self, request: &Request, deadline: Instant) -> Result<(), TransportError> {
        self.send_msg(request, matches!(request, Request::Execute(_)), deadline)
    }

    fn send_execute(&mut self, execute: &Execute, deadline: Instant) -> Result<(), TransportError> {
        self.send_msg(&RequestRef::Execute(execute), true, deadline)
    }

    fn recv(&mut self, deadline: Instant) -> Result<Response, TransportError> {
        let window = self.pacer.window();
        let mut waiter = Waiter::new(
            window,
            true,
            Some(deadline),
            EM_PARK_SLICE,
            &mut *self.peer_alive,
        );
        let got = self
            .responses
            .recv(&mut self.rbuf, self.max_recv, &mut waiter);
        let spun_out = waiter.spun_out();
        drop(waiter);
        if let Some(since) = self.in_flight_since {
            self.pacer.record(since.elapsed().min(SAMPLE_CAP), spun_out);
        }
        // The executor stays busy while requests queued behind this one wait; the next answer's
        // wait is timed from now. After an error the connection is dropped, nothing waits.
        self.outstanding = if got.is_ok() {
            self.outstanding.saturating_sub(1)
        } else {
            0
        };
        self.set_in_flight(false);
        if self.outstanding > 0 {
            self.set_in_flight(true);
        }
        let len = got?;
        let response = codec::decode(&self.rbuf[..len]);
        trim(&mut self.rbuf);
        Ok(response?)
    }

    fn set_max_recv_bytes(&mut self, limit: usize) {
        self.max_recv = limit;
    }
}

impl Drop for ShmClient {
    fn drop(&mut self) {
        self.set_in_flight(false);
        wait::LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        ring::close(self.requests.mem());
        ring::close(self.responses.mem());
    }
}

/// The executor's end of the shm transport.
pub struct ShmServer {
    requests: Consumer<MappedRing>,
    responses: Producer<MappedRing>,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    pacer: Pacer,
    parent_alive: Box<dyn FnMut() -> bool + Send>,
    idle_since: Option<Instant>,
}

impl std::fmt::Debug for ShmServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmServer")
            .field("pacer", &self.pacer)
            .finish_non_exhaustive()
    }
}

impl ShmServer {
    /// The executor end over `segment`. `parent_alive` is asked at least every
    /// [`EXECUTOR_PARK_SLICE`] while waiting; once it says no, [`ServerTransport::recv`] returns
    /// `None` (an executor passes a `getppid` check: see [`parent_watch`]).
    pub fn new(
        segment: Segment,
        mode: WaitMode,
        parent_alive: impl FnMut() -> bool + Send + 'static,
    ) -> Self {
        let (req, resp) = segment.rings();
        Self {
            requests: Consumer::new(req),
            responses: Producer::new(resp),
            wbuf: Vec::new(),
            rbuf: Vec::new(),
            pacer: Pacer::new(mode),
            parent_alive: Box::new(parent_alive),
            idle_since: None,
        }
    }
}

/// A `parent_alive` check for [`ShmServer::new`]: true while the process's parent is the one it
/// had when this was called (a re-parented orphan sees another parent pid).
pub fn parent_watch() -> impl FnMut() -> bool + Send + 'static {
    let parent = rustix::process::getppid();
    move || parent.is_some() && rustix::process::getppid() == parent
}

impl ServerTransport for ShmServer {
    fn recv(&mut self) -> Result<Option<RequestView<'_>>, TransportError> {
        // The last request was borrowed until now.
        trim(&mut self.rbuf);
        let hints = self.requests.mem().mapping().hints();
        let may_spin = hints.executor_may_spin.0.load(Ordering::Relaxed) != 0;
        let window = if may_spin {
            self.pacer.window()
        } else {
            Duration::ZERO
        };
        let mut waiter = Waiter::new(
            window,
            false,
            None,
            EXECUTOR_PARK_SLICE,
            &mut *self.parent_alive,
        );
        let got = self
            .requests
            .recv(&mut self.rbuf, DEFAULT_MAX_RECV_BYTES, &mut waiter);
        let spun_out = waiter.spun_out();
        drop(waiter);
        if let Some(since) = self.idle_since.take() {
            self.pacer.record(since.elapsed().min(SAMPLE_CAP), spun_out);
        }
        match got {
            Ok(len) => Ok(Some(codec::decode_request_view(&self.rbuf[..len])?)),
            Err(TransportError::Closed) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, response: &Response) -> Result<(), TransportError> {
        self.wbuf.clear();
        codec::encode_into(response, &mut self.wbuf)?;
        // Waiting here means a response larger than the free ring space: the EM is draining it.
        let window = match self.pacer.mode() {
            WaitMode::Adaptive => wait::SPIN_FLOOR,
            WaitMode::Park => Duration::ZERO,
        };
        let mut waiter = Waiter::new(
            window,
            false,
            None,
            EXECUTOR_PARK_SLICE,
            &mut *self.parent_alive,
        );
        let sent = self.responses.send(&self.wbuf, &mut waiter);
        drop(waiter);
        trim(&mut self.wbuf);
        sent?;
        self.idle_since = Some(Instant::now());
        Ok(())
    }
}

impl Drop for ShmServer {
    fn drop(&mut self) {
        ring::close(self.requests.mem());
        ring::close(self.responses.mem());
    }
}

#[cfg(test)]
mod tests {
    //! The EM's end against a corrupt or lying executor: the executor's side of the segment is
    //! written directly, as a peer that ignores the protocol could.

    use super::*;
    use crate::shm::ring::RingMem;

    const RING: usize = 1 << 16;

    /// An EM end over a fresh segment, and the executor's view of its rings (requests,
    /// responses).
    fn em_and_peer() -> (ShmClient, (MappedRing, MappedRing)) {
        let em_side = Segment::create(RING).unwrap();
        let peer = Segment::open(em_side.fd().try_clone_to_owned().unwrap()).unwrap();
        let rings = peer.rings();
        (ShmClient::new(em_side, WaitMode::Park, || true), rings)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// Publishes `bytes` as the response ring's next bytes at `tail`, bypassing the producer.
    fn publish_raw(responses: &MappedRing, tail: u64, bytes: &[u8]) {
        responses.copy_in((tail % RING as u64) as usize, bytes);
        responses
            .ctl()
            .tail
            .0
            .swap(tail + bytes.len() as u64, Ordering::SeqCst);
    }

    #[test]
    fn a_length_above_the_limit_is_refused_before_allocating() {
        let (mut em, (_, responses)) = em_and_peer();
        publish_raw(&responses, 0, &0xffff_fff0u32.to_le_bytes());
        let e = em.recv(soon()).unwrap_err();
        assert!(
            matches!(e, TransportError::TooLarge { len: 0xffff_fff0, limit } if limit == DEFAULT_MAX_RECV_BYTES),
            "{e}"
        );
        assert!(em.rbuf.capacity() < 1 << 20, "nothing sized for the claim");

        let (mut em, (_, responses)) = em_and_peer();
        em.set_max_recv_bytes(100);
        publish_raw(&responses, 0, &101u32.to_le_bytes());
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

    #[test]
    fn impossible_counters_from_the_peer_are_transport_errors() {
        // A tail more than a ring ahead of the head.
        let (mut em, (_, responses)) = em_and_peer();
        responses
            .ctl()
            .tail
            .0
            .swap(RING as u64 + 5, Ordering::SeqCst);
        let e = em.recv(soon()).unwrap_err();
        assert!(
            matches!(e, TransportError::CorruptRing { head: 0, .. }),
            "{e}"
        );

        // A tail that moves backwards, behind what the EM already consumed.
        let (mut em, (_, responses)) = em_and_peer();
        let mut frame = Vec::new();
        let done = Response::Result {
            outcome: crate::Outcome::Success(vec![1, 2, 3]),
            elapsed_ns: 1,
        };
        codec::encode_into(&done, &mut frame).unwrap();
        let len = u32::try_from(frame.len()).unwrap().to_le_bytes();
        let whole = [&len[..], &frame].concat();
        publish_raw(&responses, 0, &whole);
        assert_eq!(em.recv(soon()).unwrap(), done);
        let consumed = whole.len() as u64;
        responses.ctl().tail.0.swap(consumed - 2, Ordering::SeqCst);
        let e = em.recv(soon()).unwrap_err();
        assert!(
            matches!(e, TransportError::CorruptRing { head, .. } if head == consumed),
            "{e}"
        );

        // A consumer head ahead of everything the EM produced: its next request that has to
        // wait for space fails instead of overwriting unread bytes or overflowing.
        let (mut em, (requests, _)) = em_and_peer();
        requests.ctl().head.0.swap(u64::MAX, Ordering::SeqCst);
        let big = crate::Execute {
            package: "p".into(),
            function: "f".into(),
            context: Vec::new(),
            inputs: vec![0; 2 * RING],
        };
        let e = em.send_execute(&big, soon()).unwrap_err();
        assert!(matches!(e, TransportError::CorruptRing { .. }), "{e}");
    }
}
