//! The EM's slot pool: tasks of a trusted (native) package and an untrusted (wasm) package,
//! submitted concurrently, spread over the pool's slots and all return the right outputs; a
//! native crash is reported with its kind and the pool keeps serving.

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
use support::{executor_bin, frame, outputs, packages_dir, request};

const T: Duration = Duration::from_secs(20);

async fn scenario() {
    let host = WasmHost::new(HostConfig {
        package_dir: Some(packages_dir()),
        max_concurrent_tasks: 2,
        ..HostConfig::default()
    })
    .unwrap();
    let config = SlotConfig {
        policy: PackagePolicy::trusting(["fixtures"]),
        native: NativeExecutorConfig::new(executor_bin(), packages_dir()),
        native_default: NativePolicy::default(),
        native_packages: BTreeMap::new(),
        wasm_default: SandboxPolicy::default(),
        wasm_packages: BTreeMap::new(),
    };
    let pool = Arc::new(SlotPool::start(2, Arc::new(config), &host).unwrap());
    assert_eq!(pool.slots(), 2);
    let mut runs = Vec::new();
    for n in 0..6u64 {
        let pool = pool.clone();
        runs.push(tokio::spawn(async move {
            if n % 2 == 0 {
                let out = pool
                    .execute(
                        request("fixtures", "fibonacci", frame(&[Value::from(n + 10)])),
                        T,
                    )
                    .await
                    .unwrap();
                outputs::<u64>(&out.outputs)
            } else {
                let out = pool
                    .execute(request("wat_echo", "echo", frame(&[Value::from(n)])), T)
                    .await
                    .unwrap();
                outputs::<u64>(&out.outputs)
            }
        }));
    }
    let mut got = Vec::new();
    for r in runs {
        got.push(r.await.unwrap());
    }
    assert_eq!(
        got,
        [vec![55], vec![1], vec![144], vec![3], vec![377], vec![5]]
    );
    // `abort` kills a native executor (it would only trap in wasm): fixtures ran natively.
    let err = pool
        .execute(request("fixtures", "abort", frame(&[])), T)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Crashed);
    let out = pool
        .execute(
            request("fixtures", "fibonacci", frame(&[Value::from(10u64)])),
            T,
        )
        .await
        .unwrap();
    assert_eq!(outputs::<u64>(&out.outputs), [55]);
    let err = pool
        .execute(request("wat_echo", "fail", frame(&[])), T)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::TaskError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_wasm_tasks_share_the_pool() {
    tokio::time::timeout(Duration::from_secs(120), scenario())
        .await
        .expect("watchdog");
}
