//! The slot pool's metrics, read from their exposition after real tasks: successes, every
//! failure under its own kind, package and backend (native panic, crash and timeout; wasm out of
//! fuel; a missing package, labelled `other`), native executor restarts after a crash and a
//! timeout, wasm fuel burnt, and the slot gauges back at rest.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rmpv::Value;
use silk_executor_wasm::{HostConfig, SandboxPolicy, WasmHost};
use silk_ipc::FailureKind;
use silk_runtime::em::pool::{
    NativeExecutorConfig, NativePolicy, PackagePolicy, SlotConfig, SlotPool,
};
use silk_runtime::metrics::Metrics;
use support::{executor_bin, frame, packages_dir, request};

const T: Duration = Duration::from_secs(20);

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_restarts_and_fuel_are_counted() {
    let host = WasmHost::new(HostConfig {
        package_dir: Some(packages_dir()),
        max_concurrent_tasks: 2,
        ..HostConfig::default()
    })
    .unwrap();
    let starved = SandboxPolicy {
        fuel: Some(1),
        ..SandboxPolicy::default()
    };
    let config = SlotConfig {
        policy: PackagePolicy::trusting(["fixtures"]),
        native: NativeExecutorConfig::new(executor_bin(), packages_dir()),
        native_default: NativePolicy::default(),
        native_packages: BTreeMap::new(),
        wasm_default: SandboxPolicy::default(),
        wasm_packages: BTreeMap::from([("hostile".to_owned(), starved)]),
    };
    let pool = SlotPool::start(2, Arc::new(config), &host).unwrap();
    let metrics = Metrics::new();
    metrics.register(|r| pool.metrics().register(r));

    let run = |package: &str, function: &str, inputs: &[Value], timeout: Duration| {
        pool.execute(request(package, function, frame(inputs)), timeout)
    };
    for _ in 0..2 {
        run("trivial", "one", &[], T).await.unwrap();
    }
    let kind = |r: Result<_, silk_ipc::TaskFailure>| r.unwrap_err().kind();
    let blob = [Value::from(10u64)];
    assert_eq!(
        kind(run("hostile", "blob", &blob, T).await),
        FailureKind::OutOfFuel
    );
    assert_eq!(
        kind(run("fixtures", "always_panic", &[], T).await),
        FailureKind::Panicked
    );
    assert_eq!(
        kind(run("fixtures", "abort", &[], T).await),
        FailureKind::Crashed
    );
    let sleep = [Value::from(10_000u64)];
    let short = Duration::from_millis(300);
    assert_eq!(
        kind(run("fixtures", "sleep_ms", &sleep, short).await),
        FailureKind::Timeout
    );
    assert_eq!(
        kind(run("nope", "f", &[], T).await),
        FailureKind::PackageError
    );

    let text = metrics.encode();
    let v = |series: &str| value(&text, series);
    let fixtures = "package=\"fixtures\",backend=\"native\"";
    let failed = |labels: &str, kind: &str| {
        v(&format!(
            "silk_em_tasks_failed_total{{{labels},kind=\"{kind}\"}}"
        ))
    };
    assert_eq!(failed(fixtures, "Panicked"), 1.0);
    assert_eq!(failed(fixtures, "Crashed"), 1.0);
    assert_eq!(failed(fixtures, "Timeout"), 1.0);
    assert_eq!(failed(fixtures, "TaskError"), 0.0);
    assert_eq!(
        v(&format!("silk_em_tasks_started_total{{{fixtures}}}")),
        3.0
    );
    assert_eq!(
        failed("package=\"hostile\",backend=\"wasm\"", "OutOfFuel"),
        1.0
    );
    // A package the pool has no file for gets no label of its own.
    assert_eq!(
        failed("package=\"other\",backend=\"other\"", "PackageError"),
        1.0
    );
    assert!(!text.contains("nope"), "{text}");
    assert_eq!(
        v("silk_em_tasks_succeeded_total{package=\"trivial\",backend=\"wasm\"}"),
        2.0
    );
    // The starved package burnt exactly its allowance; a successful task burnt some.
    assert_eq!(
        v("silk_em_wasm_fuel_consumed_total{package=\"hostile\"}"),
        1.0
    );
    assert!(v("silk_em_wasm_fuel_consumed_total{package=\"trivial\"}") > 0.0);
    // The crash and the timeout each cost the native executor a restart.
    assert_eq!(v("silk_em_executor_restarts_total"), 2.0);
    assert_eq!(v("silk_em_slots"), 2.0);
    assert_eq!(v("silk_em_slots_busy"), 0.0);
}
