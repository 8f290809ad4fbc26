//! Loading packages: the ABI checks at load, the WAT package, init hooks, the on-disk module
//! cache, fuel and policy checks.

mod common;

use std::time::Duration;

use common::{frame_of, host, module, output, package_message, packages_dir, policy, watchdog};
use silk_executor_wasm::{HostConfig, SandboxPolicy, TaskFailure, WasmHost};
use silk_tdl::{TaskContext, TdlError};

fn ctx() -> Vec<u8> {
    TaskContext::standalone().to_msgpack()
}

#[test]
fn abi_checks_at_load() {
    watchdog(Duration::from_secs(120), || {
        let host = host();
        assert_eq!(
            host.load_bytes(&module("good", 1, "", ""), "good").unwrap(),
            "good"
        );
        let err = host
            .load_bytes(&module("future", 2, "", ""), "future")
            .unwrap_err();
        assert!(
            package_message(&err).contains("ABI version 2 is not supported"),
            "{err}"
        );
        let err = host
            .load_bytes(&module("noalloc", 1, "silk_alloc", ""), "noalloc")
            .unwrap_err();
        assert!(
            package_message(&err).contains("missing export `silk_alloc`"),
            "{err}"
        );
        let err = host
            .load_bytes(&module("noexec", 1, "silk_package_execute", ""), "x")
            .unwrap_err();
        assert!(
            package_message(&err).contains("missing export `silk_package_execute`"),
            "{err}"
        );
        let err = host
            .load_bytes(&module("bad name", 1, "", ""), "x")
            .unwrap_err();
        assert!(
            package_message(&err).contains("invalid package name"),
            "{err}"
        );
        let typo = r#"(func (export "silk_package_init") (result i32) (i32.const 0))"#;
        let err = host
            .load_bytes(&module("badinit", 1, "", typo), "x")
            .unwrap_err();
        assert!(
            package_message(&err).contains("export `silk_package_init` has type"),
            "{err}"
        );
    });
}

#[test]
fn failing_init_is_a_package_error_at_load() {
    // Status 1 with TdlError::Custom("no") as MessagePack: {"Custom": "no"}.
    let init = r#"(data (i32.const 64) "\81\a6Custom\a2no")
      (func (export "silk_package_init") (param $out i32) (result i32)
        (i32.store (local.get $out) (i32.const 64))
        (i32.store offset=4 (local.get $out) (i32.const 11))
        (i32.const 1))"#;
    watchdog(Duration::from_secs(120), move || {
        let host = host();
        let err = host
            .load_bytes(&module("initfail", 1, "", init), "initfail")
            .unwrap_err();
        let message = package_message(&err);
        assert!(
            message.contains("init failed") && message.contains("no"),
            "{message}"
        );
    });
}

#[test]
fn wat_package_runs_under_silk() {
    watchdog(Duration::from_secs(120), || {
        let host = host();
        let mut w = silk_tdl::frame::FrameWriter::new();
        w.push(&42u64).unwrap();
        w.push(&"hello").unwrap();
        let inputs = w.finish();
        let (out, _) = host
            .execute("wat_echo", "echo", &ctx(), &inputs, &policy(10_000))
            .unwrap();
        assert_eq!(out, inputs);
        assert_eq!(output::<String>(&out, 1), "hello");
        assert_eq!(
            host.execute(
                "wat_echo",
                "fail",
                &ctx(),
                &frame_of::<u8>(&[]),
                &policy(10_000)
            ),
            Err(TaskFailure::Task(TdlError::Custom(
                "wat_echo: intentional failure".into()
            )))
        );
        assert_eq!(
            host.execute(
                "wat_echo",
                "zzz",
                &ctx(),
                &frame_of::<u8>(&[]),
                &policy(10_000)
            ),
            Err(TaskFailure::Task(TdlError::TaskNotFound("zzz".into())))
        );
        // Loaded by file, it registers under the name it declares.
        let name = host
            .load_file(&packages_dir().join("wat_echo.wasm"))
            .unwrap();
        assert_eq!(name, "wat_echo");
    });
}

#[test]
fn fixtures_run_out_of_fuel() {
    watchdog(Duration::from_secs(120), || {
        let host = host();
        let p = SandboxPolicy {
            fuel: Some(10_000_000),
            ..policy(60_000)
        };
        assert_eq!(
            host.execute("fixtures", "fibonacci", &ctx(), &frame_of(&[45u64]), &p),
            Err(TaskFailure::OutOfFuel { fuel: 10_000_000 })
        );
        common::assert_host_healthy(&host);
    });
}

#[test]
fn policy_outside_the_host_limits_is_refused() {
    watchdog(Duration::from_secs(120), || {
        let host = WasmHost::new(HostConfig {
            max_concurrent_tasks: 2,
            max_memory_bytes: 64 << 20,
            fuel_metering: false,
            package_dir: Some(packages_dir()),
            ..HostConfig::default()
        })
        .unwrap();
        let inputs = frame_of(&[3u64]);
        let big = SandboxPolicy {
            max_memory_bytes: 128 << 20,
            ..policy(10_000)
        };
        let err = host
            .execute("fixtures", "fibonacci", &ctx(), &inputs, &big)
            .unwrap_err();
        assert!(package_message(&err).contains("max_memory_bytes"), "{err}");
        let fuel = SandboxPolicy {
            fuel: Some(1),
            max_memory_bytes: 64 << 20,
            ..policy(10_000)
        };
        let err = host
            .execute("fixtures", "fibonacci", &ctx(), &inputs, &fuel)
            .unwrap_err();
        assert!(package_message(&err).contains("fuel"), "{err}");
        let ok = SandboxPolicy {
            max_memory_bytes: 64 << 20,
            ..policy(10_000)
        };
        let (out, _) = host
            .execute("fixtures", "fibonacci", &ctx(), &inputs, &ok)
            .unwrap();
        assert_eq!(output::<u64>(&out, 0), 2);
    });
}

#[test]
fn corrupt_or_missing_artifacts_are_recompiled() {
    watchdog(Duration::from_secs(300), || {
        let cache = tempfile::tempdir().unwrap();
        let make = || {
            WasmHost::new(HostConfig {
                max_concurrent_tasks: 2,
                cache_dir: Some(cache.path().to_owned()),
                ..HostConfig::default()
            })
            .unwrap()
        };
        let wasm = packages_dir().join("wat_echo.wasm");
        let echo = |host: &WasmHost| {
            let inputs = frame_of(&[7u8]);
            let (out, _) = host
                .execute("wat_echo", "echo", &ctx(), &inputs, &policy(10_000))
                .unwrap();
            assert_eq!(out, inputs);
        };
        let host = make();
        host.load_file(&wasm).unwrap();
        echo(&host);
        let artifacts = |ext: &str| -> Vec<std::path::PathBuf> {
            std::fs::read_dir(cache.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().ends_with(ext))
                .collect()
        };
        let cwasm = artifacts(".cwasm");
        assert_eq!(cwasm.len(), 1, "one artifact written");
        assert_eq!(artifacts(".cwasm.sha256").len(), 1, "with its digest");
        let good = std::fs::read(&cwasm[0]).unwrap();

        // Flip bytes in the middle of the code: the digest no longer matches.
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        for b in &mut bad[mid..mid + 64] {
            *b ^= 0xff;
        }
        std::fs::write(&cwasm[0], &bad).unwrap();
        let host = make();
        host.load_file(&wasm).unwrap();
        echo(&host);
        assert_eq!(
            std::fs::read(&cwasm[0]).unwrap(),
            good,
            "rewritten from a fresh compile"
        );

        // Truncated, and with its digest gone.
        std::fs::write(&cwasm[0], &good[..good.len() / 3]).unwrap();
        let host = make();
        host.load_file(&wasm).unwrap();
        echo(&host);
        std::fs::remove_file(&artifacts(".cwasm.sha256")[0]).unwrap();
        let host = make();
        host.load_file(&wasm).unwrap();
        echo(&host);
        assert_eq!(std::fs::read(&cwasm[0]).unwrap(), good);
    });
}
