//! What leaves a task is bounded where it enters the EM, on real executors: the `hostile`
//! package's outputs over a native package's `max_output_bytes` fail `OutputTooLarge` (an
//! over-long response frame is refused before it is read and the executor replaced), and error
//! and panic messages of 20 MiB arrive cut to 64 KiB with a marker — natively over both
//! transports, and in the wasm sandbox.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rmpv::Value;
use silk_executor_wasm::{HostConfig, SandboxPolicy, WasmHost};
use silk_ipc::{FailureKind, MAX_FAILURE_TEXT_BYTES, TaskFailure};
use silk_runtime::em::pool::{
    NativeExecutorConfig, NativePolicy, PackagePolicy, Slot, SlotConfig, TransportKind,
};
use support::{executor_bin, frame, outputs, packages_dir, request};

const T: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

/// A slot running `hostile` natively (over `transport`, with a 1 MiB output limit) or as wasm.
fn slot(native: bool, transport: TransportKind) -> Slot {
    let host = WasmHost::new(HostConfig {
        package_dir: Some(packages_dir()),
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("silk-wasm-cache")),
        ..HostConfig::default()
    })
    .unwrap();
    let trusted: &[&str] = if native { &["hostile"] } else { &[] };
    let config = SlotConfig {
        policy: PackagePolicy::trusting(trusted.iter().copied()),
        native: NativeExecutorConfig::new(executor_bin(), packages_dir()).with_transport(transport),
        native_default: NativePolicy::default(),
        native_packages: BTreeMap::from([(
            "hostile".to_owned(),
            NativePolicy {
                max_output_bytes: MIB,
            },
        )]),
        wasm_default: SandboxPolicy::default(),
        wasm_packages: BTreeMap::new(),
    };
    Slot::new(Arc::new(config), host)
}

fn hostile(function: &str, n: u64) -> silk_ipc::Execute {
    request("hostile", function, frame(&[Value::from(n)]))
}

/// Asserts `text`, from a message of 20 MiB, was cut to the bound with a marker.
fn assert_cut(text: &str) {
    assert!(
        text.len() <= MAX_FAILURE_TEXT_BYTES + 100,
        "{} bytes",
        text.len()
    );
    assert!(
        text.contains(" bytes cut]"),
        "marker: {}",
        &text[text.len() - 60..]
    );
    assert!(text.len() > 60_000, "the head is kept");
}

fn output_limits(transport: TransportKind) {
    let mut s = slot(true, transport);
    // Just under the limit: fine.
    let out = s.execute(&hostile("blob", MIB - 64), T).unwrap();
    assert_eq!(outputs::<String>(&out.outputs)[0].len() as u64, MIB - 64);
    let pid = s.native_pid();

    // Over the limit, within the frame allowance: the output is refused, the executor stays.
    let err = s.execute(&hostile("blob", MIB + MIB / 2), T).unwrap_err();
    let TaskFailure::OutputTooLarge {
        what,
        size_bytes,
        limit_bytes,
        limit,
    } = &err
    else {
        panic!("expected OutputTooLarge: {err}");
    };
    assert_eq!((what.as_str(), *limit_bytes), ("task output", MIB), "{err}");
    assert!(*size_bytes > MIB + MIB / 2, "{err}");
    assert_eq!(limit, "max_output_bytes");
    assert_eq!(s.native_pid(), pid, "the executor survived");

    // Far over: the response frame is refused before it is read; the executor is replaced.
    let err = s.execute(&hostile("blob", 64 * MIB), T).unwrap_err();
    assert_eq!(err.kind(), FailureKind::OutputTooLarge, "{err}");
    assert!(err.to_string().contains("executor response"), "{err}");
    assert!(err.to_string().contains(&MIB.to_string()), "{err}");
    assert_ne!(s.native_pid(), pid, "replaced");
    let out = s.execute(&hostile("blob", 10), T).unwrap();
    assert_eq!(outputs::<String>(&out.outputs), ["x".repeat(10)]);
}

fn long_messages(native: bool, transport: TransportKind) {
    let mut s = slot(native, transport);
    let err = s.execute(&hostile("big_error", 20 * MIB), T).unwrap_err();
    assert_eq!(
        err.kind(),
        FailureKind::TaskError,
        "{}",
        &err.to_string()[..80]
    );
    assert_cut(&err.to_string());
    let err = s.execute(&hostile("big_panic", 20 * MIB), T).unwrap_err();
    assert_eq!(
        err.kind(),
        FailureKind::Panicked,
        "{}",
        &err.to_string()[..80]
    );
    assert_cut(&err.to_string());
    let out = s.execute(&hostile("blob", 3), T).unwrap();
    assert_eq!(outputs::<String>(&out.outputs), ["xxx"]);
}

#[test]
fn native_outputs_over_the_package_limit_fail_over_shm() {
    output_limits(TransportKind::Shm);
}

#[test]
fn native_outputs_over_the_package_limit_fail_over_pipes() {
    output_limits(TransportKind::Pipe);
}

#[test]
fn long_native_messages_are_cut_over_shm() {
    long_messages(true, TransportKind::Shm);
}

#[test]
fn long_native_messages_are_cut_over_pipes() {
    long_messages(true, TransportKind::Pipe);
}

#[test]
fn long_wasm_messages_are_cut() {
    long_messages(false, TransportKind::Shm);
}
