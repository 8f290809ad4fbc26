//! Transport conformance at the `silk-ipc` level: the same message-size cases run over the shm
//! ring and over pipes, each with an echo server on a thread. Sizes are of whole frames (the
//! `u32` length prefix plus the encoded message) so they land exactly on the ring's edges, in
//! both directions; then 64 MiB each way through a 64 KiB ring, then thousands of random sizes in
//! sequence. Plus the shm transport's liveness rules: deadlines, closing, dead peers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use silk_ipc::pipe::{PipeClient, PipeServer};
use silk_ipc::shm::{Segment, ShmClient, ShmServer, WaitMode};
use silk_ipc::{
    ClientTransport, Execute, Outcome, Request, RequestView, Response, ServerTransport,
    TransportError, codec,
};

const RING: usize = 64 * 1024;
const WATCHDOG: Duration = Duration::from_secs(60);

/// Replies to each `Execute` with its inputs as the output, until `Shutdown` or the end.
fn echo_server(mut server: impl ServerTransport + Send + 'static) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while let Some(RequestView::Execute(e)) = server.recv().unwrap() {
            let resp = Response::Result {
                outcome: Outcome::Success(e.inputs.to_vec()),
                elapsed_ns: 0,
            };
            server.send(&resp).unwrap();
        }
    })
}

fn shm_pair(mode: WaitMode) -> (Box<dyn ClientTransport>, JoinHandle<()>) {
    let em = Segment::create(RING).unwrap();
    let ex = Segment::open(em.fd().try_clone_to_owned().unwrap()).unwrap();
    let server = echo_server(ShmServer::new(ex, mode, || true));
    (Box::new(ShmClient::new(em, mode, || true)), server)
}

fn pipe_pair() -> (Box<dyn ClientTransport>, JoinHandle<()>) {
    let (req_r, req_w) = rustix::pipe::pipe().unwrap();
    let (resp_r, resp_w) = rustix::pipe::pipe().unwrap();
    let server = echo_server(PipeServer::new(req_r, resp_w));
    (Box::new(PipeClient::new(req_w, resp_r).unwrap()), server)
}

fn execute(inputs: Vec<u8>) -> Request {
    Request::Execute(Execute {
        package: "p".into(),
        function: "f".into(),
        context: vec![],
        inputs,
    })
}

fn frame_len<T: serde::Serialize>(msg: &T) -> usize {
    let mut buf = Vec::new();
    codec::encode_into(msg, &mut buf).unwrap();
    4 + buf.len()
}

/// The payload size whose request frame (or, with `response`, whose echoed response frame) is
/// exactly `target` bytes.
fn payload_for_frame(target: usize, response: bool) -> usize {
    (target.saturating_sub(64)..=target)
        .find(|&n| {
            let len = if response {
                let r = Response::Result {
                    outcome: Outcome::Success(vec![0; n]),
                    elapsed_ns: 0,
                };
                frame_len(&r)
            } else {
                frame_len(&execute(vec![0; n]))
            };
            len == target
        })
        .unwrap_or_else(|| panic!("no payload gives a {target}-byte frame"))
}

/// Deterministic bytes that differ between messages, so a mix-up cannot go unnoticed.
fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn round_trip(client: &mut dyn ClientTransport, inputs: Vec<u8>) {
    let deadline = Instant::now() + WATCHDOG;
    let len = inputs.len();
    client.send(&execute(inputs.clone()), deadline).unwrap();
    match client.recv(deadline).unwrap() {
        Response::Result {
            outcome: Outcome::Success(out),
            ..
        } => {
            assert!(out == inputs, "echo of {len} bytes came back altered");
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn finish(mut client: Box<dyn ClientTransport>, server: JoinHandle<()>) {
    client
        .send(&Request::Shutdown, Instant::now() + WATCHDOG)
        .unwrap();
    server.join().unwrap();
}

mod cases {
    use super::*;

    pub fn frames_on_the_ring_edges(pair: fn() -> (Box<dyn ClientTransport>, JoinHandle<()>)) {
        let (mut client, server) = pair();
        let mut sizes = vec![0, 1];
        for edge in [RING - 1, RING, RING + 1] {
            sizes.push(payload_for_frame(edge, false));
            sizes.push(payload_for_frame(edge, true));
        }
        for (i, n) in sizes.into_iter().enumerate() {
            round_trip(&mut *client, pattern(n, i as u64));
        }
        finish(client, server);
    }

    pub fn sixty_four_mib_each_way(pair: fn() -> (Box<dyn ClientTransport>, JoinHandle<()>)) {
        let (mut client, server) = pair();
        round_trip(&mut *client, pattern(64 << 20, 7));
        round_trip(&mut *client, pattern(3, 8));
        finish(client, server);
    }

    pub fn thousands_of_random_sizes(pair: fn() -> (Box<dyn ClientTransport>, JoinHandle<()>)) {
        let (mut client, server) = pair();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly small, sometimes several rings long.
            let n = if i % 10 == 0 {
                (x % (3 * RING as u64)) as usize
            } else {
                (x % 2048) as usize
            };
            round_trip(&mut *client, pattern(n, i));
        }
        finish(client, server);
    }
}

macro_rules! conformance {
    ($module:ident, $pair:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn frames_on_the_ring_edges() {
                cases::frames_on_the_ring_edges($pair);
            }
            #[test]
            fn sixty_four_mib_each_way() {
                cases::sixty_four_mib_each_way($pair);
            }
            #[test]
            fn thousands_of_random_sizes() {
                cases::thousands_of_random_sizes($pair);
            }
        }
    };
}

conformance!(shm_adaptive, || shm_pair(WaitMode::Adaptive));
conformance!(shm_parked, || shm_pair(WaitMode::Park));
conformance!(pipe, pipe_pair);

#[test]
fn shm_recv_gives_up_at_the_deadline() {
    let em = Segment::create(RING).unwrap();
    let _ex = Segment::open(em.fd().try_clone_to_owned().unwrap()).unwrap();
    let mut client = ShmClient::new(em, WaitMode::Adaptive, || true);
    let start = Instant::now();
    let err = client.recv(start + Duration::from_millis(50)).unwrap_err();
    assert!(matches!(err, TransportError::TimedOut), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn shm_client_notices_a_dead_peer_while_waiting() {
    let em = Segment::create(RING).unwrap();
    let _ex = Segment::open(em.fd().try_clone_to_owned().unwrap()).unwrap();
    let alive = Arc::new(AtomicBool::new(true));
    let flag = alive.clone();
    let mut client = ShmClient::new(em, WaitMode::Adaptive, move || flag.load(Ordering::SeqCst));
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        alive.store(false, Ordering::SeqCst);
    });
    let err = client.recv(Instant::now() + WATCHDOG).unwrap_err();
    assert!(matches!(err, TransportError::Closed), "{err}");
    killer.join().unwrap();
}

#[test]
fn shm_dropping_one_end_closes_the_other() {
    let em = Segment::create(RING).unwrap();
    let ex = Segment::open(em.fd().try_clone_to_owned().unwrap()).unwrap();
    let mut server = ShmServer::new(ex, WaitMode::Park, || true);
    let waiter = std::thread::spawn(move || server.recv().unwrap().map(|r| format!("{r:?}")));
    let client = ShmClient::new(em, WaitMode::Park, || true);
    std::thread::sleep(Duration::from_millis(10));
    drop(client);
    assert_eq!(waiter.join().unwrap(), None, "executor sees the EM go away");

    let em = Segment::create(RING).unwrap();
    let ex = Segment::open(em.fd().try_clone_to_owned().unwrap()).unwrap();
    let mut client = ShmClient::new(em, WaitMode::Park, || true);
    let server = ShmServer::new(ex, WaitMode::Park, || true);
    let dropper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        drop(server);
    });
    let err = client.recv(Instant::now() + WATCHDOG).unwrap_err();
    assert!(matches!(err, TransportError::Closed), "{err}");
    let err = client
        .send(&Request::Shutdown, Instant::now() + WATCHDOG)
        .unwrap_err();
    assert!(matches!(err, TransportError::Closed), "{err}");
    dropper.join().unwrap();
}

#[test]
fn shm_executor_with_a_dead_parent_stops_waiting() {
    let em = Segment::create(RING).unwrap();
    let ex = Segment::open(em.fd().try_clone_to_owned().unwrap()).unwrap();
    let mut server = ShmServer::new(ex, WaitMode::Adaptive, || false);
    let start = Instant::now();
    assert_eq!(server.recv().unwrap(), None);
    assert!(start.elapsed() < WATCHDOG);
    drop(em);
}
