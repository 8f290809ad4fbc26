//! An executor slot picks the backend per package: native only for allow-listed packages, wasm
//! for every other package, with per-package sandbox limits.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rmpv::Value;
use silk_executor_wasm::{HostConfig, SandboxPolicy, WasmHost};
use silk_ipc::FailureKind;
use silk_runtime::em::pool::{NativeExecutorConfig, NativePolicy, PackagePolicy, Slot, SlotConfig};
use support::{executor_bin, frame, outputs, packages_dir, request};

const T: Duration = Duration::from_secs(20);

/// A slot running `policy`'s packages natively, the rest as wasm with `wasm_packages`' limits.
pub fn slot(policy: PackagePolicy, wasm_packages: BTreeMap<String, SandboxPolicy>) -> Slot {
    let host = WasmHost::new(HostConfig {
        package_dir: Some(packages_dir()),
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("silk-wasm-cache")),
        ..HostConfig::default()
    })
    .unwrap();
    let config = SlotConfig {
        policy,
        native: NativeExecutorConfig::new(executor_bin(), packages_dir()),
        native_default: NativePolicy::default(),
        native_packages: BTreeMap::new(),
        wasm_default: SandboxPolicy::default(),
        wasm_packages,
    };
    Slot::new(Arc::new(config), host)
}

fn fib(n: u64) -> silk_ipc::Execute {
    request("fixtures", "fibonacci", frame(&[Value::from(n)]))
}

#[test]
fn trusted_packages_run_natively_and_the_rest_in_the_sandbox() {
    let mut s = slot(PackagePolicy::trusting(["fixtures"]), BTreeMap::new());
    assert_eq!(
        s.native_pid(),
        None,
        "no native executor before a native task"
    );
    assert_eq!(
        outputs::<u64>(&s.execute(&fib(10), T).unwrap().outputs),
        vec![55]
    );
    let pid = s
        .native_pid()
        .expect("fixtures is trusted: it ran in a native executor");
    // `abort` kills a native executor but only traps in wasm: the kind tells which backend ran.
    let err = s
        .execute(&request("fixtures", "abort", frame(&[])), T)
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Crashed);
    assert_ne!(s.native_pid(), Some(pid), "respawned");

    let dot = request(
        "complex",
        "dot_product",
        frame(&[Value::Array(vec![]), Value::Array(vec![])]),
    );
    assert_eq!(
        outputs::<(f64, f64)>(&s.execute(&dot, T).unwrap().outputs),
        vec![(0.0, 0.0)]
    );
    let err = s
        .execute(&request("complex", "always_fail", frame(&[])), T)
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::TaskError);
}

#[test]
fn untrusted_native_code_is_never_loaded() {
    let mut s = slot(PackagePolicy::default(), BTreeMap::new());
    let err = s
        .execute(&request("fixtures", "abort", frame(&[])), T)
        .unwrap_err();
    assert_eq!(
        err.kind(),
        FailureKind::Trap,
        "fixtures is not trusted: it ran as wasm"
    );
    // bad_abi exists only as a .so: without trust it is not found, rather than loaded natively.
    let err = s
        .execute(&request("bad_abi", "x", frame(&[])), T)
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::PackageError);
    assert!(err.to_string().contains("not found"), "{err}");
    assert_eq!(s.native_pid(), None);
}

#[test]
fn wasm_limits_are_per_package_and_the_hard_timeout_caps_them() {
    let fuel = SandboxPolicy {
        fuel: Some(10_000),
        ..SandboxPolicy::default()
    };
    let mut s = slot(
        PackagePolicy::default(),
        BTreeMap::from([("fixtures".to_owned(), fuel)]),
    );
    let err = s.execute(&fib(30), T).unwrap_err();
    assert_eq!(err.kind(), FailureKind::OutOfFuel, "{err}");
    let add = request(
        "complex",
        "add",
        frame(&[Value::Array(vec![]), Value::Array(vec![])]),
    );
    assert!(s.execute(&add, T).is_ok(), "complex has the default limits");

    let mut s = slot(PackagePolicy::default(), BTreeMap::new());
    let err = s.execute(&fib(45), Duration::from_millis(200)).unwrap_err();
    assert_eq!(err, silk_ipc::TaskFailure::Timeout { after_ms: 200 });
}
