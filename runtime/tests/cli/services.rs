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
fn an_address_url_or_slot_count_that_cannot_work_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("storage.db").display());
    // The message quotes the value; the logs (JSON here, stderr is not a terminal) escape quotes.
    let not_host_port = "is not a HOST:PORT address";
    let not_url = "is not an http:// or https:// URL";
    let cases: [(&[&str], &str, &str); 6] = [
        (
            &["storage", "--db", &db, "--listen", "notanaddr"],
            "listen: \\\"notanaddr\\\"",
            not_host_port,
        ),
        (
            &["storage", "--db", &db, "--metrics-listen", "9151"],
            "metrics_listen: \\\"9151\\\"",
            not_host_port,
        ),
        (
            &["scheduler", "--listen", "127.0.0.1"],
            "listen: \\\"127.0.0.1\\\"",
            not_host_port,
        ),
        (
            &["scheduler", "--storage-url", "storage:50051"],
            "storage_url: \\\"storage:50051\\\"",
            not_url,
        ),
        (
            &["em", "--metrics-listen", "localhost:http"],
            "metrics_listen: \\\"localhost:http\\\"",
            not_host_port,
        ),
        (
            &["em", "--scheduler-url", "scheduler"],
            "scheduler_url: \\\"scheduler\\\"",
            not_url,
        ),
    ];
    for (args, what, why) in cases {
        let (out, err) = silk(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&format!("{what} {why}")), "{args:?}: {err}");
    }
    assert!(!dir.path().join("storage.db").exists());
    let config = dir.path().join("em.toml");
    std::fs::write(&config, "slots = 0\n").unwrap();
    let (out, err) = silk(&["em", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "slots = 0: {err}");
    assert!(err.contains("slots: must be at least 1"), "{err}");
    let (out, err) = silk(&["dev", "--metrics-listen", "bad"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "silk dev --metrics-listen bad: {err}"
    );
    assert!(err.contains("\"bad\" is not a HOST:PORT address"), "{err}");
    for command in ["em", "dev"] {
        let (out, err) = silk(&[command, "--slots", "0"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "silk {command} --slots 0: {err}"
        );
        assert!(err.contains("'0' for '--slots <N>'"), "{err}");
    }
}
