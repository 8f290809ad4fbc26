//! The single-producer single-consumer byte ring and the message framing on top of it, written
//! once against [`RingMem`] so that the same code runs over the mapped segment and, under
//! `--cfg loom`, over heap memory with loom's atomics (see `loom_tests.rs`).
//!
//! # Synchronisation
//!
//! * **Data.** The producer copies bytes into `[tail, head + capacity)`, then publishes them by
//!   swapping in the new `tail` (SeqCst, so also Release); the consumer's `tail.load(Acquire)`
//!   pairs with it, so the bytes are visible before it reads them. The consumer copies bytes out
//!   of `[head, tail)`, then releases them by swapping in the new `head`; the producer's
//!   `head.load(Acquire)` pairs with it, so the consumer's reads are finished before the producer
//!   overwrites them. Each side caches the other side's counter and reloads it only when the
//!   cached value says "empty" or "full".
//! * **Sleeping** (Tachyon ADR-003's double check). A waiter swaps 1 into its `*_sleeping` word,
//!   re-reads the counter it waits on with a read-modify-write, and only then calls
//!   `FUTEX_WAIT(word, 1)`. The other side publishes its counter (swap), then swaps the sleeping
//!   word to 0 and calls `FUTEX_WAKE` only if it was 1. All four are SeqCst read-modify-writes, so
//!   they fall in one total order: either the waiter's re-read comes after the publish (it sees
//!   the data and does not sleep) or the publisher's swap comes after the waiter's (it sees 1 and
//!   wakes). The kernel's compare in `FUTEX_WAIT` catches a swap to 0 that lands between the
//!   re-check and the wait. A publisher that finds no sleeper makes no syscall. On x86 each swap
//!   is one `xchg`, the instruction a SeqCst store compiles to anyway.
//!
//!   Why read-modify-writes rather than plain stores, loads and SeqCst fences (Tachyon's form):
//!   loom 0.7 reported a lost wake-up for the fence-based form, an outcome the C++ fence rules
//!   forbid but loom's model admits once plain stores and read-modify-writes mix on a word (its
//!   modification order is a partial order). So every write to a shared word (counters, sleeping
//!   words, `closed`) is a read-modify-write; that form is ordered exactly by both C++ and loom,
//!   and what loom checks is what runs.
//! * **Closing.** The closer swaps 1 into `closed` after its last publish, then wakes both
//!   sleeping words as above. A waiter that sees `closed` re-reads the counter once, so data
//!   published before the close is still delivered.
//! * **The peer is not trusted.** The other side's counter and every length header are read
//!   from memory the peer can write at will. A counter is accepted only if `0 ≤ tail − head ≤
//!   capacity` (`fill_level`), and a length only if it is within the receiver's limit, checked
//!   before a buffer is sized for it; anything else is a [`TransportError`], never an overflow,
//!   an assertion or an allocation the peer chose.

use std::time::Duration;

use crate::shm::layout::RingCtl;
use crate::shm::sync::{AtomicU32, Ordering, spin_hint};
use crate::transport::TransportError;

/// The memory a ring lives in: its control block, its bytes and a way to block on a word.
pub(crate) trait RingMem {
    /// The control block.
    fn ctl(&self) -> &RingCtl;
    /// Capacity in bytes (a power of two).
    fn capacity(&self) -> usize;
    /// Copies `src` to ring bytes `index..index + src.len()` (within the capacity).
    fn copy_in(&self, index: usize, src: &[u8]);
    /// Copies ring bytes `index..index + dst.len()` (within the capacity) into `dst`.
    fn copy_out(&self, index: usize, dst: &mut [u8]);
    /// Blocks while `word == expected`, up to `timeout` (`None`: no bound); may return early.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>);
    /// Wakes the thread blocked on `word`, if any.
    fn wake(&self, word: &AtomicU32);
    /// Hints that this side will soon write ring bytes `index..index + len` (within the
    /// capacity): the CPU may fetch their cache lines for writing now. Changes no byte; a no-op
    /// where there is no such hint.
    fn prefetch_for_write(&self, _index: usize, _len: usize) {}
}

/// The most a producer prefetches for its next message (see [`Producer::send`]).
const PREFETCH_MAX: u64 = 32 << 10;

/// What an endpoint does when it finds nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idle {
    /// Busy-wait: poll again after a pause hint.
    Spin,
    /// Block on the futex for up to this long (`None`: until woken).
    Park(Option<Duration>),
}

/// The waiting policy of one blocking call: asked each time the condition is not met yet. It
/// ends the wait with an error (deadline passed, peer dead).
pub(crate) trait Wait {
    fn idle(&mut self) -> Result<Idle, TransportError>;
}

/// The fill level `tail - head` of a ring of `cap` bytes, where one of the two counters was read
/// from the peer: a peer that is corrupt or lies can write any value there, so a counter that no
/// correct peer can produce (the fill level negative or above the capacity) is a transport error,
/// never an overflow, an assertion or an out-of-bounds copy.
fn fill_level(head: u64, tail: u64, cap: u64) -> Result<u64, TransportError> {
    match tail.checked_sub(head) {
        Some(fill) if fill <= cap => Ok(fill),
        _ => Err(TransportError::CorruptRing {
            head,
            tail,
            capacity: cap,
        }),
    }
}

fn wake_if_sleeping<M: RingMem>(mem: &M, sleeping: &AtomicU32) {
    // Partner: the waiter's `sleeping.swap(1)` and counter re-read in `park`; our caller's counter
    // swap precedes this swap in the SeqCst total order (see the module docs). The word has its
    // own line, which the waiter writes only when it parks, so on the hot path this swap hits a
    // line already in this CPU's cache.
    if sleeping.swap(0, Ordering::SeqCst) != 0 {
        mem.wake(sleeping);
    }
}

/// Blocks once on `sleeping` unless `ready()` or the ring is closed. `ready` must re-read the
/// other side's counter with a SeqCst read-modify-write.
fn park<M: RingMem>(
    mem: &M,
    sleeping: &AtomicU32,
    timeout: Option<Duration>,
    ready: impl Fn() -> bool,
) {
    // Partner: the publisher's counter swap + `wake_if_sleeping`, and `close` (module docs).
    sleeping.swap(1, Ordering::SeqCst);
    if !ready() && mem.ctl().closed.0.fetch_add(0, Ordering::SeqCst) == 0 {
        mem.wait(sleeping, 1, timeout);
    }
    // A swap, not a store: see the module docs on read-modify-writes.
    sleeping.swap(0, Ordering::SeqCst);
}

/// Marks the ring closed and wakes both sides.
pub(crate) fn close<M: RingMem>(mem: &M) {
    let ctl = mem.ctl();
    // Partner: the Acquire load in `is_closed` (everything published before the close is visible
    // to whoever sees it) and the re-read in `park` (total order, module docs).
    ctl.closed.0.swap(1, Ordering::SeqCst);
    wake_if_sleeping(mem, &ctl.consumer_sleeping.0);
    wake_if_sleeping(mem, &ctl.producer_sleeping.0);
}

/// Whether the ring has been closed by either side.
pub(crate) fn is_closed<M: RingMem>(mem: &M) -> bool {
    mem.ctl().closed.0.load(Ordering::Acquire) != 0
}

/// The writing end of a ring.
#[derive(Debug)]
pub(crate) struct Producer<M: RingMem> {
    mem: M,
    cap: u64,
    tail: u64,
    head_cache: u64,
}

impl<M: RingMem> Producer<M> {
    /// The producer of the ring in `mem` (the only one: callers hand out one per ring).
    pub(crate) fn new(mem: M) -> Self {
        let cap = mem.capacity() as u64;
        // Only this handle changes `tail` (the consumer's re-read in `park` writes it unchanged).
        let tail = mem.ctl().tail.0.load(Ordering::Relaxed);
        // Partner: the consumer's `head` swap in `Consumer::consume`.
        let head_cache = mem.ctl().head.0.load(Ordering::Acquire);
        Self {
            mem,
            cap,
            tail,
            head_cache,
        }
    }

    pub(crate) fn mem(&self) -> &M {
        &self.mem
    }

    /// Bytes that may be written now.
    fn free(&mut self) -> Result<u64, TransportError> {
        // `head_cache` was validated when it was read.
        let free = self.cap - (self.tail - self.head_cache);
        if free > 0 {
            return Ok(free);
        }
        // Partner: the consumer's `head` swap in `Consumer::consume`: it finished
        // copying those bytes out before releasing them, so they may be overwritten now.
        let head = self.mem.ctl().head.0.load(Ordering::Acquire);
        let fill = fill_level(head, self.tail, self.cap)?;
        self.head_cache = head;
        Ok(self.cap - fill)
    }

    /// Copies `src` to the free space at `tail + offset` without publishing it.
    fn put(&mut self, offset: u64, src: &[u8]) {
        let end = self.tail + offset + src.len() as u64;
        assert!(
            end - self.head_cache <= self.cap,
            "write past the free space"
        );
        let idx = ((self.tail + offset) % self.cap) as usize;
        let first = src.len().min(self.mem.capacity() - idx);
        self.mem.copy_in(idx, &src[..first]);
        if first < src.len() {
            self.mem.copy_in(0, &src[first..]);
        }
    }

    /// Prefetches for writing the free space the next `len` bytes will take (at most
    /// [`PREFETCH_MAX`]).
    fn prefetch_next(&self, len: u64) {
        // `head_cache` may be stale: that only makes the free space look smaller.
        let len = len
            .min(PREFETCH_MAX)
            .min(self.cap - (self.tail - self.head_cache));
        let idx = (self.tail % self.cap) as usize;
        let first = (len as usize).min(self.mem.capacity() - idx);
        self.mem.prefetch_for_write(idx, first);
        self.mem.prefetch_for_write(0, len as usize - first);
    }

    /// Publishes `n` bytes written with `put`.
    fn commit(&mut self, n: u64) {
        self.tail += n;
        let ctl = self.mem.ctl();
        // Partner: the consumer's `tail.load(Acquire)` in `Consumer::available`/`wait_for` (data)
        // and its re-read in `park` (sleep protocol, module docs).
        ctl.tail.0.swap(self.tail, Ordering::SeqCst);
        wake_if_sleeping(&self.mem, &ctl.consumer_sleeping.0);
    }

    fn wait_for_space(&mut self, w: &mut impl Wait) -> Result<(), TransportError> {
        loop {
            if is_closed(&self.mem) {
                return Err(TransportError::Closed);
            }
            if self.free()? > 0 {
                return Ok(());
            }
            match w.idle()? {
                Idle::Spin => spin_hint(),
                Idle::Park(timeout) => {
                    let (ctl, cap, tail) = (self.mem.ctl(), self.cap, self.tail);
                    park(&self.mem, &ctl.producer_sleeping.0, timeout, || {
                        // Partner: the consumer's `head` swap in `Consumer::consume`. Wrapping:
                        // a corrupt `head` must not overflow here; `free` rejects it next.
                        tail.wrapping_sub(ctl.head.0.fetch_add(0, Ordering::SeqCst)) < cap
                    });
                }
            }
        }
    }

    /// Sends one message: a `u32 LE` length, then `msg`, streamed through the ring in chunks as
    /// space frees up. Fails with [`TransportError::Closed`] once the ring is closed.
    ///
    /// Then prefetches the space a next message of the same size would take: the consumer read
    /// those lines last (or they left the cache a lap ago), and fetching them for writing while
    /// this side waits for an answer, rather than while it copies the next message in, takes
    /// that fetch off the round trip (IPC bench: `sleep_and_echo` adaptive p50 2.05–4.25 →
    /// 1.69–1.74 µs).
    pub(crate) fn send(&mut self, msg: &[u8], w: &mut impl Wait) -> Result<(), TransportError> {
        let len = u32::try_from(msg.len()).map_err(|_| TransportError::TooLarge {
            len: msg.len(),
            limit: u32::MAX as usize,
        })?;
        let header = len.to_le_bytes();
        let total = (header.len() + msg.len()) as u64;
        let mut sent = 0u64;
        while sent < total {
            self.wait_for_space(w)?;
            let n = self.free()?.min(total - sent);
            // Copy the part of `header ++ msg` at `sent..sent + n`.
            let (mut at, end) = (sent, sent + n);
            if at < 4 {
                let h = &header[at as usize..end.min(4) as usize];
                self.put(0, h);
                at += h.len() as u64;
            }
            if at < end {
                let body = &msg[(at - 4) as usize..(end - 4) as usize];
                self.put(at - sent, body);
            }
            self.commit(n);
            sent = end;
        }
        self.prefetch_next(total);
        Ok(())
    }
}

/// The reading end of a ring.
#[derive(Debug)]
pub(crate) struct Consumer<M: RingMem> {
    mem: M,
    cap: u64,
    head: u64,
    tail_cache: u64,
}

impl<M: RingMem> Consumer<M> {
    /// The consumer of the ring in `mem` (the only one: callers hand out one per ring).
    pub(crate) fn new(mem: M) -> Self {
        let cap = mem.capacity() as u64;
        // Only this handle changes `head` (the producer's re-read in `park` writes it unchanged).
        let head = mem.ctl().head.0.load(Ordering::Relaxed);
        Self {
            mem,
            cap,
            head,
            tail_cache: head,
        }
    }

    pub(crate) fn mem(&self) -> &M {
        &self.mem
    }

    /// Reads the producer's `tail` into `tail_cache`, validated against `head`.
    fn load_tail(&mut self) -> Result<u64, TransportError> {
        // Partner: the producer's `tail` swap in `Producer::commit`.
        let tail = self.mem.ctl().tail.0.load(Ordering::Acquire);
        let fill = fill_level(self.head, tail, self.cap)?;
        self.tail_cache = tail;
        Ok(fill)
    }

    /// Bytes readable now.
    fn available(&mut self) -> Result<u64, TransportError> {
        if self.tail_cache == self.head {
            return self.load_tail();
        }
        // `tail_cache` was validated when it was read.
        Ok(self.tail_cache - self.head)
    }

    /// Waits until at least `want` bytes are readable.
    fn wait_for(&mut self, want: u64, w: &mut impl Wait) -> Result<(), TransportError> {
        if self.tail_cache - self.head >= want {
            return Ok(());
        }
        loop {
            if self.load_tail()? >= want {
                return Ok(());
            }
            if is_closed(&self.mem) {
                // Data published before the close is visible now (see `close`).
                if self.load_tail()? >= want {
                    return Ok(());
                }
                return Err(TransportError::Closed);
            }
            match w.idle()? {
                Idle::Spin => spin_hint(),
                Idle::Park(timeout) => {
                    let (ctl, head) = (self.mem.ctl(), self.head);
                    park(&self.mem, &ctl.consumer_sleeping.0, timeout, || {
                        // Partner: the producer's `tail` swap in `Producer::commit`. Wrapping:
                        // a corrupt `tail` must not overflow here; `load_tail` rejects it next.
                        ctl.tail.0.fetch_add(0, Ordering::SeqCst).wrapping_sub(head) >= want
                    });
                }
            }
        }
    }

    /// Copies readable bytes at `head + offset` into `dst` without releasing them.
    fn peek(&self, offset: u64, dst: &mut [u8]) {
        assert!(
            offset + dst.len() as u64 <= self.tail_cache - self.head,
            "read past the data"
        );
        let idx = ((self.head + offset) % self.cap) as usize;
        let first = dst.len().min(self.mem.capacity() - idx);
        self.mem.copy_out(idx, &mut dst[..first]);
        if first < dst.len() {
            self.mem.copy_out(0, &mut dst[first..]);
        }
    }

    /// Releases `n` bytes to the producer.
    fn consume(&mut self, n: u64) {
        self.head += n;
        let ctl = self.mem.ctl();
        // Partner: the producer's `head.load(Acquire)` in `Producer::free` (data) and its re-read
        // in `park` (sleep protocol, module docs).
        ctl.head.0.swap(self.head, Ordering::SeqCst);
        wake_if_sleeping(&self.mem, &ctl.producer_sleeping.0);
    }

    /// Receives one message of at most `max_len` bytes into `buf` (grown as needed, never
    /// shrunk) and returns its length; the message is `buf[..len]`. Fails with
    /// [`TransportError::Closed`] when the ring is closed with no complete message in it, with
    /// [`TransportError::TooLarge`] (nothing allocated, nothing consumed) when the length header
    /// says more than `max_len`, and with [`TransportError::CorruptRing`] when the peer wrote
    /// an impossible counter.
    pub(crate) fn recv(
        &mut self,
        buf: &mut Vec<u8>,
        max_len: usize,
        w: &mut impl Wait,
    ) -> Result<usize, TransportError> {
        self.wait_for(4, w)?;
        let mut header = [0u8; 4];
        self.peek(0, &mut header);
        let len = u32::from_le_bytes(header) as usize;
        if len > max_len {
            return Err(TransportError::TooLarge {
                len,
                limit: max_len,
            });
        }
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let first = (self.available()? - 4).min(len as u64) as usize;
        self.peek(4, &mut buf[..first]);
        self.consume(4 + first as u64);
        let mut got = first;
        while got < len {
            self.wait_for(1, w)?;
            let n = self.available()?.min((len - got) as u64) as usize;
            self.peek(0, &mut buf[got..got + n]);
            self.consume(n as u64);
            got += n;
        }
        Ok(len)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Ring memory that records what it is asked to prefetch.
    #[derive(Default)]
    struct Recorder {
        ctl: RingCtl,
        bytes: RefCell<Vec<u8>>,
        prefetched: RefCell<Vec<(usize, usize)>>,
    }

    impl RingMem for &Recorder {
        fn ctl(&self) -> &RingCtl {
            &self.ctl
        }
        fn capacity(&self) -> usize {
            self.bytes.borrow().len()
        }
        fn copy_in(&self, index: usize, src: &[u8]) {
            self.bytes.borrow_mut()[index..index + src.len()].copy_from_slice(src);
        }
        fn copy_out(&self, index: usize, dst: &mut [u8]) {
            dst.copy_from_slice(&self.bytes.borrow()[index..index + dst.len()]);
        }
        fn wait(&self, _: &AtomicU32, _: u32, _: Option<Duration>) {}
        fn wake(&self, _: &AtomicU32) {}
        fn prefetch_for_write(&self, index: usize, len: usize) {
            assert!(index + len <= self.capacity(), "prefetch past the ring");
            self.prefetched.borrow_mut().push((index, len));
        }
    }

    struct NoWait;
    impl Wait for NoWait {
        fn idle(&mut self) -> Result<Idle, TransportError> {
            Err(TransportError::TimedOut)
        }
    }

    #[test]
    fn a_producer_prefetches_the_free_space_its_next_message_takes() {
        let mem = Recorder {
            bytes: RefCell::new(vec![0; 4096]),
            ..Recorder::default()
        };
        let (mut tx, mut rx) = (Producer::new(&mem), Consumer::new(&mem));
        let mut send = |len: usize| {
            tx.send(&vec![7; len], &mut NoWait).unwrap();
            std::mem::take(&mut *mem.prefetched.borrow_mut())
        };
        let mut buf = Vec::new();
        let mut recv = || rx.recv(&mut buf, 4096, &mut NoWait).unwrap();
        // Messages take their length plus a 4-byte header.
        assert_eq!(send(1996), [(2000, 2000), (0, 0)]);
        // The ring is full: nothing to prefetch.
        assert_eq!(send(2092), [(0, 0), (0, 0)]);
        assert_eq!(recv(), 1996);
        // The producer sees the 2 000 freed bytes only now; it prefetches no further.
        assert_eq!(send(996), [(1000, 1000), (0, 0)]);
        assert_eq!((recv(), recv()), (2092, 996));
        // Its view of the consumer is stale until the ring looks full: it prefetches less, never
        // bytes still unread.
        assert_eq!(send(996), [(2000, 0), (0, 0)]);
        assert_eq!(recv(), 996);
        // With everything read, the space after a message wraps past the ring's end.
        assert_eq!(send(1496), [(3500, 596), (0, 904)]);
        // A large message prefetches at most PREFETCH_MAX.
        let big = Recorder {
            bytes: RefCell::new(vec![0; 1 << 20]),
            ..Recorder::default()
        };
        let mut tx = Producer::new(&big);
        tx.send(&vec![1; 100_000], &mut NoWait).unwrap();
        assert_eq!(
            *big.prefetched.borrow(),
            [(100_004, PREFETCH_MAX as usize), (0, 0)]
        );
    }
}
