//! `silk storage`, `silk scheduler` and `silk em` refuse a configuration they cannot run with the
//! same way: a configuration error (exit 2, as their `--help` says), before anything is bound or
//! opened.

use std::process::{Command, Output};

fn silk(args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

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
        let (out, err) = silk(args);
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

#[test]
fn a_listen_address_that_is_not_host_and_port_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("storage.db").display());
    // The message quotes the value; the logs (JSON here, stderr is not a terminal) escape quotes.
    let cases: [(&[&str], &str); 4] = [
        (
            &["storage", "--db", &db, "--listen", "notanaddr"],
            "listen: \\\"notanaddr\\\"",
        ),
        (
            &["storage", "--db", &db, "--metrics-listen", "9151"],
            "metrics_listen: \\\"9151\\\"",
        ),
        (
            &["scheduler", "--listen", "127.0.0.1"],
            "listen: \\\"127.0.0.1\\\"",
        ),
        (
            &["em", "--metrics-listen", "localhost:http"],
            "metrics_listen: \\\"localhost:http\\\"",
        ),
    ];
    for (args, message) in cases {
        let (out, err) = silk(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("{message} is not a HOST:PORT address")),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.path().join("storage.db").exists());
}
