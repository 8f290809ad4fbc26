//! Helpers shared by the runtime's integration tests: where the staged packages and the
//! executor binary are, and how to build requests.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

pub mod certs;

use std::path::PathBuf;

pub mod dev;

use silk_ipc::Execute;
use silk_tdl::TaskContext;
use silk_tdl::frame::FrameWriter;

/// A free loopback port for a server this test starts later (in another process, or after other
/// servers), taken below the kernel's ephemeral range: a port bound to `:0` and released could
/// be handed by the kernel to any process's next `:0` bind (an EM's metrics endpoint, say)
/// before its owner binds it, and then the owner's clients talk to the wrong server. Ports are
/// tried in turn from a start derived from the process id (concurrent test processes rarely
/// meet), each checked free by binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let (low, high) = (1_024_u32, ephemeral_low.max(2_048));
    let span = high - low;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(low + (start + n) % span).expect("below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {high}");
}

/// `target/packages`, where `scripts/build-packages` stages packages.
pub fn packages_dir() -> PathBuf {
    let dir = match std::env::var_os("SILK_TEST_PACKAGES") {
        Some(d) => PathBuf::from(d),
        None => {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root.join("target"), |t| root.join(t));
            target.join("packages")
        }
    };
    assert!(
        dir.join("libfixtures.so").is_file(),
        "no packages staged in {}: run scripts/build-packages first",
        dir.display()
    );
    dir
}

/// `path` (relative to the repository root) as an absolute path string.
pub fn repo_path(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

/// The `silk-executor-native` binary built next to this test.
pub fn executor_bin() -> PathBuf {
    silk_runtime::em::pool::child::find_executor_bin()
        .expect("silk-executor-native not built: run `cargo build --workspace --bins` first (scripts/test does)")
}

/// An input frame of MessagePack values.
pub fn frame(values: &[rmpv::Value]) -> Vec<u8> {
    let mut w = FrameWriter::new();
    for v in values {
        w.push(v).unwrap();
    }
    w.finish()
}

/// A request for `package::function` with a standalone context.
pub fn request(package: &str, function: &str, inputs: Vec<u8>) -> Execute {
    request_with(package, function, &TaskContext::standalone(), inputs)
}

/// A request with an explicit context.
pub fn request_with(package: &str, function: &str, ctx: &TaskContext, inputs: Vec<u8>) -> Execute {
    Execute {
        package: package.into(),
        function: function.into(),
        context: ctx.to_msgpack(),
        inputs,
    }
}

/// Decodes an output frame into `T`s.
pub fn outputs<T: serde::de::DeserializeOwned>(frame: &[u8]) -> Vec<T> {
    silk_tdl::frame::decode(frame)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, v)| silk_tdl::frame::value(v, i).unwrap())
        .collect()
}
