//! Helpers shared by the integration tests: finding the staged packages, framing values, a
//! watchdog.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "test helpers are pub for the test binaries")]

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use silk_executor_wasm::{HostConfig, SandboxPolicy, TaskFailure, WasmHost};
use silk_tdl::frame;

/// `target/packages` (or `SILK_TEST_PACKAGES`), checked to hold the staged wasm packages.
pub fn packages_dir() -> PathBuf {
    let dir = std::env::var_os("SILK_TEST_PACKAGES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/packages"),
        PathBuf::from,
    );
    for name in ["fixtures", "complex", "wat_echo"] {
        let file = dir.join(format!("{name}.wasm"));
        assert!(
            file.is_file(),
            "{} is missing: run scripts/build-packages first (or set SILK_TEST_PACKAGES)",
            file.display()
        );
    }
    dir
}

/// A host over the staged packages, with room for the test threads.
pub fn host() -> WasmHost {
    WasmHost::new(HostConfig {
        max_concurrent_tasks: 8,
        package_dir: Some(packages_dir()),
        // Shared by the tests (and test runs), so each new host loads precompiled artifacts.
        cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("silk-wasm-cache")),
        ..HostConfig::default()
    })
    .expect("create wasm host")
}

/// A policy with `timeout_ms` and defaults otherwise.
pub fn policy(timeout_ms: u64) -> SandboxPolicy {
    SandboxPolicy {
        timeout_ms,
        ..SandboxPolicy::default()
    }
}

/// Frames MessagePack-encoded values.
pub fn frame_of<T: serde::Serialize>(values: &[T]) -> Vec<u8> {
    let mut w = frame::FrameWriter::new();
    for v in values {
        w.push(v).expect("encode input");
    }
    w.finish()
}

/// Decodes output `position` of a frame.
pub fn output<T: serde::de::DeserializeOwned>(frame_bytes: &[u8], position: usize) -> T {
    let values = frame::decode(frame_bytes).expect("decode output frame");
    frame::value(values[position], position).expect("decode output value")
}

/// Runs `f` on its own thread and fails the test if it takes longer than `limit`.
pub fn watchdog<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: test exceeded {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("test thread panicked"),
    }
}

/// Asserts `fixtures::fibonacci(7)` still runs: the host is healthy after a failure.
pub fn assert_host_healthy(host: &WasmHost) {
    let ctx = silk_tdl::TaskContext::standalone().to_msgpack();
    let (out, _) = host
        .execute(
            "fixtures",
            "fibonacci",
            &ctx,
            &frame_of(&[7u64]),
            &policy(20_000),
        )
        .expect("fibonacci(7) after a failure");
    assert_eq!(output::<u64>(&out, 0), 13);
}

/// Shorthand for the package message of a failure, panicking on other kinds.
pub fn package_message(failure: &TaskFailure) -> &str {
    match failure {
        TaskFailure::Package { message } => message,
        other => panic!("expected a package error, got {other:?}"),
    }
}

/// A minimal ABI module: `version` is what `silk_abi_version` returns, `skip` names an export to
/// leave out, `extra` adds module fields.
pub fn module(name: &str, version: u32, skip: &str, extra: &str) -> Vec<u8> {
    let field = |export: &str, text: &str| {
        if export == skip {
            String::new()
        } else {
            text.to_owned()
        }
    };
    let wat = format!(
        r#"(module
  (memory (export "memory") 1)
  (data (i32.const 16) "{name}")
  (func (export "silk_abi_version") (result i32) (i32.const {version}))
  {alloc}
  (func (export "silk_free") (param i32 i32))
  (func (export "silk_package_name") (param $out i32)
    (i32.store (local.get $out) (i32.const 16))
    (i32.store offset=4 (local.get $out) (i32.const {len})))
  {execute}
  {extra})"#,
        len = name.len(),
        alloc = field(
            "silk_alloc",
            r#"(func (export "silk_alloc") (param i32) (result i32) (i32.const 1024))"#
        ),
        execute = field(
            "silk_package_execute",
            r#"(func (export "silk_package_execute") (param i32 i32 i32 i32 i32 i32 i32) (result i32)
                 (i32.store (local.get 6) (i32.const 0))
                 (i32.store offset=4 (local.get 6) (i32.const 0))
                 (i32.const 0))"#
        ),
    );
    wat::parse_str(&wat).unwrap()
}
