//! `silk task run` as a user runs it: the real binary, JSON on stdout, `error: <kind>: ...` on
//! stderr, one exit code per failure kind.

use crate::support;

use std::process::{Command, Output};

use support::packages_dir;

fn silk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(args)
        .output()
        .unwrap()
}

fn run(package: &str, task: &str, extra: &[&str]) -> Output {
    let path = packages_dir().join(package);
    let mut args = vec![
        "task",
        "run",
        "--package",
        path.to_str().unwrap(),
        "--task",
        task,
    ];
    args.extend_from_slice(extra);
    silk(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn success_prints_outputs_as_json() {
    let o = run("libfixtures.so", "fibonacci", &["--inputs", "[10]"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "[55]");
    let o = run(
        "libcomplex.so",
        "dot_product",
        &["--inputs", "[[[1,2],[5,6]], [[3,4],[7,8]]]"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "[[-18.0,92.0]]");
    let o = run("libfixtures.so", "noop", &[]);
    assert_eq!(
        (o.status.code(), stdout(&o).trim().to_owned()),
        (Some(0), "[]".to_owned())
    );
}

#[test]
fn each_failure_kind_has_its_exit_code() {
    let cases: [(&str, &str, &[&str], i32, &str); 5] = [
        (
            "libfixtures.so",
            "always_fail",
            &[],
            3,
            "error: TaskError: ",
        ),
        (
            "libfixtures.so",
            "always_panic",
            &[],
            4,
            "error: Panicked: ",
        ),
        ("libfixtures.so", "abort", &[], 5, "error: Crashed: "),
        (
            "libfixtures.so",
            "fibonacci",
            &["--inputs", "[45]", "--timeout-ms", "200"],
            6,
            "error: Timeout: ",
        ),
        ("libbad_abi.so", "x", &[], 10, "error: PackageError: "),
    ];
    for (package, task, extra, code, prefix) in cases {
        let o = run(package, task, extra);
        assert_eq!(o.status.code(), Some(code), "{task}: {}", stderr(&o));
        assert!(stderr(&o).contains(prefix), "{task}: {}", stderr(&o));
        assert!(
            stdout(&o).is_empty(),
            "{task}: nothing on stdout on failure"
        );
    }
}

#[test]
fn wasm_packages_run_sandboxed_with_the_same_exit_codes() {
    let o = run("fixtures.wasm", "fibonacci", &["--inputs", "[10]"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "[55]");
    let o = run("wat_echo.wasm", "echo", &["--inputs", "[\"hi\", [1, 2]]"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), r#"["hi",[1,2]]"#);
    let cases: [(&str, &[&str], i32, &str); 4] = [
        ("always_panic", &[], 4, "error: Panicked: "),
        ("abort", &[], 9, "error: Trap: "),
        (
            "fibonacci",
            &["--inputs", "[45]", "--timeout-ms", "200"],
            6,
            "error: Timeout: ",
        ),
        (
            "fibonacci",
            &["--inputs", "[30]", "--fuel", "1000"],
            7,
            "error: OutOfFuel: ",
        ),
    ];
    for (task, extra, code, prefix) in cases {
        let o = run("fixtures.wasm", task, extra);
        assert_eq!(o.status.code(), Some(code), "{task}: {}", stderr(&o));
        assert!(stderr(&o).contains(prefix), "{task}: {}", stderr(&o));
    }
}

/// `task run` sends inputs to the executor unchecked, so a wrong type reaches the task's own
/// decoder: both backends say which input, the type the task expected and what it got, in the
/// terms of the submit-time check.
#[test]
fn a_wrong_typed_input_is_named_by_both_backends() {
    for package in ["libfixtures.so", "fixtures.wasm"] {
        let o = run(package, "fibonacci", &["--inputs", r#"["7"]"#]);
        assert_eq!(o.status.code(), Some(3), "{package}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(r#"input 0 (`n`) of fibonacci: expected u64, got the string "7""#),
            "{package}: {err}"
        );
        assert!(
            !err.contains("marker"),
            "{package}: no decoder jargon: {err}"
        );
        let o = run(package, "fibonacci", &["--inputs", "[[1, 2]]"]);
        assert_eq!(o.status.code(), Some(3), "{package}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("input 0 (`n`) of fibonacci: expected u64, got an array of 2"),
            "{package}: {err}"
        );
    }
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    let o = run("libfixtures.so", "fibonacci", &["--inputs", "{\"n\": 1}"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("must be a JSON array"),
        "{}",
        stderr(&o)
    );
    let o = run("libfixtures.so", "fibonacci", &["--inputs", "[1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not valid JSON"), "{}", stderr(&o));
    let o = silk(&["task", "run", "--package", "fixtures.dll", "--task", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("lib<name>.so"), "{}", stderr(&o));
    let o = silk(&["task", "run", "--task", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(
        "libfixtures.so",
        "fibonacci",
        &["--inputs", "[1]", "--fuel", "10"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("wasm packages only"), "{}", stderr(&o));
}

#[test]
fn help_documents_the_exit_codes() {
    let o = silk(&["task", "run", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    for line in ["3   TaskError", "6   Timeout", "10  PackageError"] {
        assert!(help.contains(line), "missing {line:?} in:\n{help}");
    }
}

#[test]
fn both_native_transports_give_the_same_outputs() {
    for transport in ["shm", "pipe"] {
        let o = run(
            "libfixtures.so",
            "fibonacci",
            &["--inputs", "[10]", "--transport", transport],
        );
        assert_eq!(o.status.code(), Some(0), "{transport}: {}", stderr(&o));
        assert_eq!(stdout(&o).trim(), "[55]", "{transport}");
    }
    let o = run("libfixtures.so", "noop", &["--transport", "tcp"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("shm or pipe"), "{}", stderr(&o));
}
