//! `WasmHost::inspect_file`: the load checks without the init hook, the task list when a package
//! exports one, and an error of the right class otherwise.

mod common;

use std::time::Duration;

use common::{host, module, packages_dir, watchdog};
use silk_executor_wasm::InspectError;

/// `silk_package_tasks` of a hand-written module, returning the 2-byte list `{}` at 200.
const TASKS_EXPORT: &str = r#"(data (i32.const 200) "{}")
  (func (export "silk_package_tasks") (param $out i32)
    (i32.store (local.get $out) (i32.const 200))
    (i32.store offset=4 (local.get $out) (i32.const 2)))"#;

#[test]
fn staged_packages_export_their_task_lists() {
    watchdog(Duration::from_secs(300), || {
        let host = host();
        let info = host
            .inspect_file(&packages_dir().join("fixtures.wasm"))
            .unwrap();
        assert_eq!((info.name.as_str(), info.abi_version), ("fixtures", 1));
        let list = info.task_list.expect("fixtures exports its task list");
        assert!(list.starts_with(r#"{"version":1,"tasks":["#), "{list}");
        assert!(
            list.contains(
                r#"{"name":"fibonacci","inputs":[{"name":"n","type":"u64"}],"outputs":["u64"]}"#
            ),
            "{list}"
        );
        let info = host
            .inspect_file(&packages_dir().join("wat_echo.wasm"))
            .unwrap();
        assert_eq!(info.name, "wat_echo");
        assert!(
            info.task_list
                .expect("wat_echo exports its task list")
                .contains(r#"{"name":"fail","inputs":[],"outputs":[]}"#)
        );
    });
}

#[test]
fn task_list_is_optional_and_init_does_not_run() {
    // An init hook that traps: a load fails, an inspection never calls it.
    let init = r#"(func (export "silk_package_init") (param i32) (result i32) unreachable)"#;
    watchdog(Duration::from_secs(120), move || {
        let host = host();
        let bytes = module("old", 1, "", init);
        assert!(host.load_bytes(&bytes, "old").is_err());
        let info = host.inspect_bytes(&bytes, "old").unwrap();
        assert_eq!(info.name, "old");
        assert_eq!(info.task_list, None);

        let info = host
            .inspect_bytes(&module("listed", 1, "", TASKS_EXPORT), "listed")
            .unwrap();
        assert_eq!(info.task_list.as_deref(), Some("{}"));
        // A package with the export still loads (the export is additive).
        assert_eq!(
            host.load_bytes(&module("listed", 1, "", TASKS_EXPORT), "listed")
                .unwrap(),
            "listed"
        );
    });
}

#[test]
fn errors_have_their_class() {
    watchdog(Duration::from_secs(120), || {
        let host = host();
        let err = host.inspect_bytes(b"not wasm", "junk").unwrap_err();
        assert!(
            matches!(&err, InspectError::NotAPackage { reason, .. } if reason.contains("not a valid wasm module")),
            "{err}"
        );
        // wasmparser's own message spreads the magic bytes over lines; ours is one line.
        assert!(
            err.to_string()
                .contains("expected=[0x0, 0x61, 0x73, 0x6d] actual=[0x6e, 0x6f, 0x74, 0x20]"),
            "{err}"
        );
        let no_version = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
        let err = host.inspect_bytes(&no_version, "empty").unwrap_err();
        assert!(
            matches!(&err, InspectError::NotAPackage { reason, .. } if reason.contains("missing export `silk_abi_version`")),
            "{err}"
        );
        let err = host
            .inspect_bytes(&module("future", 7, "", ""), "future")
            .unwrap_err();
        assert_eq!(
            err,
            InspectError::AbiVersion {
                origin: "future".into(),
                found: 7
            }
        );
        assert!(err.to_string().contains("ABI version 7 is not supported"));
        let typo = r#"(func (export "silk_package_tasks") (result i32) (i32.const 0))"#;
        let err = host
            .inspect_bytes(&module("typo", 1, "", typo), "typo")
            .unwrap_err();
        assert!(
            matches!(&err, InspectError::Invalid { reason, .. } if reason.contains("export `silk_package_tasks` has type")),
            "{err}"
        );
        let outside = r#"(func (export "silk_package_tasks") (param $out i32)
          (i32.store (local.get $out) (i32.const 65530))
          (i32.store offset=4 (local.get $out) (i32.const 100)))"#;
        let err = host
            .inspect_bytes(&module("outside", 1, "", outside), "outside")
            .unwrap_err();
        assert!(
            matches!(&err, InspectError::Invalid { reason, .. } if reason.contains("outside guest memory")),
            "{err}"
        );
        let err = host
            .inspect_file(&packages_dir().join("no-such-file.wasm"))
            .unwrap_err();
        assert!(matches!(err, InspectError::Read { .. }), "{err}");
    });
}
