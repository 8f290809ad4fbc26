//! Message-size conformance of the native executor's transports, one definition run against
//! both: a real executor child echoes strings (`fixtures::echo_bytes`) of 0 B, 1 B, sizes whose
//! request frame (length prefix + encoded message) is exactly ring − 1, ring and ring + 1 bytes
//! of the default shm ring, sizes whose response frame is, then 64 MiB, then thousands of random
//! sizes in sequence.
//!
//! Response frames carry the executor-measured `elapsed_ns` as a varint; the response-sized cases
//! assume it takes 5 bytes (65 µs to 4.3 s, true for a multi-MiB echo), so they land on the ring
//! edge or within 4 bytes of it.

use crate::support;

use std::time::Duration;

use rmpv::Value;
use silk_ipc::shm::DEFAULT_RING_BYTES;
use silk_ipc::{Execute, Outcome, Request, Response, codec};
use silk_runtime::em::pool::{NativeExecutor, NativeExecutorConfig, TransportKind};
use support::{executor_bin, frame, outputs, packages_dir, request};

const RING: usize = DEFAULT_RING_BYTES;
const TIMEOUT: Duration = Duration::from_secs(120);

fn spawn(transport: TransportKind) -> NativeExecutor {
    let mut config =
        NativeExecutorConfig::new(executor_bin(), packages_dir()).with_transport(transport);
    // Room for the 64 MiB echo's output frame (a little over 64 MiB).
    config.max_output_bytes = 65 << 20;
    let executor = NativeExecutor::spawn(config).unwrap();
    assert_eq!(executor.transport(), Some(transport));
    executor
}

/// ASCII text of `n` bytes that differs with `seed`.
fn text(n: usize, seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 90) as u8)
        })
        .collect()
}

fn echo_request(payload: String) -> Execute {
    request("fixtures", "echo_bytes", frame(&[Value::from(payload)]))
}

fn frame_len<T: serde::Serialize>(msg: &T) -> usize {
    let mut buf = Vec::new();
    codec::encode_into(msg, &mut buf).unwrap();
    4 + buf.len()
}

/// The payload length whose request frame (or response frame) is `target` bytes.
fn payload_for(target: usize, response: bool) -> usize {
    (target - 64..=target)
        .find(|&n| {
            let req = echo_request("a".repeat(n));
            let len = if response {
                let outcome = Outcome::Success(req.inputs);
                frame_len(&Response::Result {
                    outcome,
                    elapsed_ns: 1_000_000,
                })
            } else {
                frame_len(&Request::Execute(req))
            };
            len == target
        })
        .unwrap_or_else(|| panic!("no payload makes a {target}-byte frame"))
}

fn echo(b: &mut NativeExecutor, n: usize, seed: u64) {
    let payload = text(n, seed);
    let out = b
        .execute(&echo_request(payload.clone()), TIMEOUT)
        .unwrap_or_else(|e| panic!("echo of {n} bytes failed: {e}"));
    let back = outputs::<String>(&out.outputs);
    assert!(
        back.len() == 1 && back[0] == payload,
        "echo of {n} bytes came back altered"
    );
}

mod cases {
    use super::*;

    pub fn edges(transport: TransportKind) {
        let mut b = spawn(transport);
        let mut sizes = vec![0, 1];
        for edge in [RING - 1, RING, RING + 1] {
            sizes.push(payload_for(edge, false));
            sizes.push(payload_for(edge, true));
        }
        for (i, n) in sizes.into_iter().enumerate() {
            echo(&mut b, n, i as u64);
        }
        assert_eq!(b.transport(), Some(transport), "no respawn on the way");
    }

    pub fn sixty_four_mib(transport: TransportKind) {
        let mut b = spawn(transport);
        let pid = b.pid();
        echo(&mut b, 64 << 20, 1);
        echo(&mut b, 10, 2);
        assert_eq!(b.pid(), pid, "the executor survived");
    }

    pub fn random_sizes(transport: TransportKind) {
        let mut b = spawn(transport);
        let pid = b.pid();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly small; every 50th up to two rings long.
            let n = if i % 50 == 0 {
                x % (2 * RING as u64)
            } else {
                x % 4096
            };
            echo(&mut b, n as usize, i);
        }
        assert_eq!(b.pid(), pid, "the executor survived");
    }
}

macro_rules! size_tests {
    ($module:ident, $transport:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn frames_on_the_ring_edges() {
                cases::edges($transport);
            }
            #[test]
            fn sixty_four_mib_each_way() {
                cases::sixty_four_mib($transport);
            }
            #[test]
            fn thousands_of_random_sizes() {
                cases::random_sizes($transport);
            }
        }
    };
}

size_tests!(shm, TransportKind::Shm);
size_tests!(pipe, TransportKind::Pipe);
