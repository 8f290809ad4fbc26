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
    let em_config = dir.path().join("em.toml");
    std::fs::write(&em_config, "slots = 0\n").unwrap();
    let em_config = em_config.to_str().unwrap();
    // The services log JSON here (stderr is not a terminal), which escapes the quotes around a
    // value; `silk dev`'s flags are checked by clap, which prints them as they are.
    let logged = |key: &str, value: &str, why: &str| format!("{key}: \\\"{value}\\\" {why}");
    let (host_port, url) = (
        "is not a HOST:PORT address",
        "is not an http:// or https:// URL",
    );
    let cases: [(&[&str], String); 10] = [
        (
            &["storage", "--db", &db, "--listen", "notanaddr"],
            logged("listen", "notanaddr", host_port),
        ),
        (
            &["storage", "--db", &db, "--metrics-listen", "9151"],
            logged("metrics_listen", "9151", host_port),
        ),
        (
            &["scheduler", "--listen", "127.0.0.1"],
            logged("listen", "127.0.0.1", host_port),
        ),
        (
            &["scheduler", "--storage-url", "storage:50051"],
            logged("storage_url", "storage:50051", url),
        ),
        (
            &["em", "--metrics-listen", "localhost:http"],
            logged("metrics_listen", "localhost:http", host_port),
        ),
        (
            &["em", "--scheduler-url", "scheduler"],
            logged("scheduler_url", "scheduler", url),
        ),
        (
            &["em", "--config", em_config],
            "slots: must be at least 1".to_owned(),
        ),
        (&["em", "--slots", "0"], "'0' for '--slots <N>'".to_owned()),
        (&["dev", "--slots", "0"], "'0' for '--slots <N>'".to_owned()),
        (
            &["dev", "--metrics-listen", "bad"],
            format!("metrics_listen: \"bad\" {host_port}"),
        ),
    ];
    for (args, message) in cases {
        let (out, err) = silk(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&message), "{args:?}: {err}");
    }
    assert!(!dir.path().join("storage.db").exists());
}
