//! Model checks of `ring.rs` with loom (`--cfg loom`), over [`HeapRing`]: every interleaving (up
//! to a preemption bound) of a producer and a consumer thread, with the byte cells checked for
//! data races and futex waits that never time out, so a lost wake-up fails as a deadlock.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p silk-ipc --release --lib loom`

use loom::thread;

use crate::shm::raw::HeapRing;
use crate::shm::ring::{self, Consumer, Idle, Producer, Wait};
use crate::transport::TransportError;

/// Parks at once, without a timeout: the strictest test of the wake-up protocol.
struct ParkForever;

impl Wait for ParkForever {
    fn idle(&mut self) -> Result<Idle, TransportError> {
        Ok(Idle::Park(None))
    }
}

/// Spins (yields, under loom) a few times, then parks: covers both branches.
struct SpinThenPark(u32);

impl Wait for SpinThenPark {
    fn idle(&mut self) -> Result<Idle, TransportError> {
        if self.0 == 0 {
            return Ok(Idle::Park(None));
        }
        self.0 -= 1;
        Ok(Idle::Spin)
    }
}

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    b.check(f);
}

/// Messages bigger than the 8-byte ring (4 of which the length prefix takes) stream through it,
/// wrapping around, with both sides parking on full and empty.
#[test]
fn loom_messages_stream_through_a_small_ring() {
    model(3, || {
        let mem = HeapRing::new(8);
        let mut producer = Producer::new(mem.clone());
        let mut consumer = Consumer::new(mem);
        let t = thread::spawn(move || {
            producer.send(&[1, 2, 3], &mut ParkForever).unwrap();
            producer
                .send(&[4, 5, 6, 7, 8, 9], &mut ParkForever)
                .unwrap();
        });
        let mut buf = Vec::new();
        let n = consumer.recv(&mut buf, 64, &mut ParkForever).unwrap();
        assert_eq!(&buf[..n], &[1, 2, 3]);
        let n = consumer.recv(&mut buf, 64, &mut ParkForever).unwrap();
        assert_eq!(&buf[..n], &[4, 5, 6, 7, 8, 9]);
        t.join().unwrap();
    });
}

/// Empty messages and the spin branch.
#[test]
fn loom_empty_messages_and_spinning_waiters() {
    model(3, || {
        let mem = HeapRing::new(8);
        let mut producer = Producer::new(mem.clone());
        let mut consumer = Consumer::new(mem);
        let t = thread::spawn(move || {
            producer.send(&[], &mut SpinThenPark(1)).unwrap();
            producer.send(&[7], &mut SpinThenPark(1)).unwrap();
        });
        let mut buf = Vec::new();
        assert_eq!(
            consumer.recv(&mut buf, 64, &mut SpinThenPark(1)).unwrap(),
            0
        );
        let n = consumer.recv(&mut buf, 64, &mut SpinThenPark(1)).unwrap();
        assert_eq!(&buf[..n], &[7]);
        t.join().unwrap();
    });
}

/// A message published before the ring is closed is still delivered; after it, the consumer
/// sees `Closed` rather than sleeping forever.
#[test]
fn loom_close_wakes_the_sleeper_and_keeps_published_data() {
    model(3, || {
        let mem = HeapRing::new(8);
        let mut producer = Producer::new(mem.clone());
        let mut consumer = Consumer::new(mem);
        let t = thread::spawn(move || {
            producer.send(&[9, 9], &mut ParkForever).unwrap();
            ring::close(producer.mem());
        });
        let mut buf = Vec::new();
        let n = consumer.recv(&mut buf, 64, &mut ParkForever).unwrap();
        assert_eq!(&buf[..n], &[9, 9]);
        assert!(matches!(
            consumer.recv(&mut buf, 64, &mut ParkForever),
            Err(TransportError::Closed)
        ));
        t.join().unwrap();
    });
}

/// A producer blocked on a full ring is woken by a close from the consumer's side.
#[test]
fn loom_close_wakes_a_producer_waiting_for_space() {
    model(3, || {
        let mem = HeapRing::new(8);
        let mut producer = Producer::new(mem.clone());
        let consumer = Consumer::new(mem);
        let t = thread::spawn(move || {
            let r = producer.send(&[0; 12], &mut ParkForever);
            assert!(matches!(r, Err(TransportError::Closed)));
        });
        ring::close(consumer.mem());
        t.join().unwrap();
    });
}
