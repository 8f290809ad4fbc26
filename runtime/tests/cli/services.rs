//! `silk storage`, `silk scheduler` and `silk em` refuse to start without credentials the same
//! way: a configuration error (exit 2, as their `--help` says), before anything is bound or opened.

use std::process::Command;

#[test]
fn every_service_without_an_auth_table_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("storage.db").display());
    let cases: [(&str, &[&str]); 3] = [
        (
            "silk storage",
            &["storage", "--db", &db, "--listen", "127.0.0.1:0"],
        ),
        ("silk scheduler", &["scheduler", "--listen", "127.0.0.1:0"]),
        ("silk em", &["em"]),
    ];
    for (service, args) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_silk"))
            .args(args)
            .env_clear()
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{service}: {err}");
        assert!(
            err.contains(&format!("{service} needs an [auth] table")),
            "{service}: {err}"
        );
    }
    assert!(
        !dir.path().join("storage.db").exists(),
        "storage opened its database before checking its configuration"
    );
}
