//! `silk package inspect` as a user runs it: the real binary on the staged packages, text and
//! JSON on stdout, `error: ...` on stderr, one exit code per class of problem.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use support::packages_dir;

fn inspect(path: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(["package", "inspect"])
        .arg(path)
        .args(extra)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `inspect -o json`, checks it succeeded and that the object has exactly the documented
/// keys, and returns it.
fn inspect_json(path: &Path) -> Value {
    let o = inspect(path, &["-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["abi_version", "format", "name", "tasks"], "{v}");
    assert_eq!(v["abi_version"], 1);
    v
}

fn task_names(v: &Value) -> Vec<String> {
    v["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no task list in {v}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The task list of `fixtures`, read from the `package!` call in its source (the package uses no
/// `#[task(name = ...)]` overrides, so names are the function names).
fn fixtures_tasks_from_source() -> Vec<String> {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/packages/fixtures/src/lib.rs"),
    )
    .unwrap();
    assert!(
        !source.contains("#[task(name"),
        "this test assumes fixtures does not rename tasks"
    );
    let call = &source[source.find("silk_tdl::package!").unwrap()..];
    let list = &call[call.find("tasks: [").unwrap() + "tasks: [".len()..];
    let list = &list[..list.find(']').unwrap()];
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Copies `file` into `dir` under `name` with `silk_package_tasks` renamed (same length, so the
/// file stays valid): a package as built before the task-list export existed.
fn without_task_list(file: &str, dir: &Path, name: &str) -> std::path::PathBuf {
    let mut bytes = std::fs::read(packages_dir().join(file)).unwrap();
    let (from, to) = (b"silk_package_tasks", b"silk_package_taskz");
    let mut found = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            found += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(found > 0, "{file} does not mention silk_package_tasks");
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn fixtures_list_their_tasks_in_both_formats() {
    let expected = fixtures_tasks_from_source();
    for core in [
        "fibonacci",
        "always_fail",
        "always_panic",
        "abort",
        "noop",
        "sleep_and_echo",
        "echo_bytes",
        "assert_outputs_sum_zero",
        "assert_initialized",
    ] {
        assert!(expected.iter().any(|t| t == core), "{core} in {expected:?}");
    }
    let native = inspect_json(&packages_dir().join("libfixtures.so"));
    let wasm = inspect_json(&packages_dir().join("fixtures.wasm"));
    for (v, format) in [(&native, "native"), (&wasm, "wasm")] {
        assert_eq!(v["name"], "fixtures");
        assert_eq!(v["format"], format);
        assert_eq!(
            task_names(v),
            expected,
            "stale package? run scripts/build-packages"
        );
        assert_eq!(
            v["tasks"][0],
            json!({"name": "fibonacci", "inputs": [{"name": "n", "type": "u64"}], "outputs": ["u64"]})
        );
    }
    assert_eq!(native["tasks"], wasm["tasks"], "one source, one list");

    let o = inspect(&packages_dir().join("libfixtures.so"), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("name:        fixtures\nabi_version: 1\nformat:      native\n"));
    for line in [
        "\n  fibonacci(n: u64) -> u64\n",
        "\n  noop() -> ()\n",
        "\n  sleep_and_echo(paths: Vec<String>) -> Vec<String>\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  ")).count(),
        expected.len()
    );
}

#[test]
fn complex_and_wat_packages() {
    for file in ["libcomplex.so", "complex.wasm"] {
        let v = inspect_json(&packages_dir().join(file));
        assert_eq!(v["name"], "complex");
        assert_eq!(
            task_names(&v),
            ["add", "sub", "dot_product", "cross_product", "always_fail"]
        );
        assert_eq!(
            v["tasks"][2],
            json!({"name": "dot_product",
                   "inputs": [{"name": "a", "type": "Vec<Complex>"}, {"name": "b", "type": "Vec<Complex>"}],
                   "outputs": ["Complex"]})
        );
    }
    let v = inspect_json(&packages_dir().join("wat_echo.wasm"));
    assert_eq!(
        (&v["name"], &v["format"]),
        (&json!("wat_echo"), &json!("wasm"))
    );
    assert_eq!(task_names(&v), ["echo", "fail"]);
}

#[test]
fn packages_without_a_task_list_still_inspect() {
    let dir = tempfile::tempdir().unwrap();
    for (file, name) in [
        ("libfixtures.so", "libfixtures.so"),
        ("fixtures.wasm", "fixtures.wasm"),
    ] {
        let path = without_task_list(file, dir.path(), name);
        let v = inspect_json(&path);
        assert_eq!(v["name"], "fixtures");
        assert_eq!(v["tasks"], Value::Null, "{v}");
        let o = inspect(&path, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            stdout(&o).contains("tasks:       not exported by this package"),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn errors_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let junk_so = dir.path().join("libjunk.so");
    std::fs::write(&junk_so, "not a library").unwrap();
    let junk_wasm = dir.path().join("junk.wasm");
    std::fs::write(&junk_wasm, "not a module").unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    let cases = [
        (
            packages_dir().join("libbad_abi.so"),
            4,
            "package ABI version 999 is not supported",
        ),
        (junk_so, 3, "cannot load"),
        (junk_wasm, 3, "not a valid wasm module"),
        (
            notes,
            2,
            "expected a native `.so` library or a `.wasm` module",
        ),
        (dir.path().join("libmissing.so"), 2, "no such file"),
        (dir.path().join("missing.wasm"), 2, "no such file"),
    ];
    for (path, code, message) in cases {
        for extra in [&[][..], &["-o", "json"][..]] {
            let o = inspect(&path, extra);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(code), "{}: {err}", path.display());
            assert!(
                err.starts_with("error: ") && err.contains(message),
                "{}: {err}",
                path.display()
            );
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
            assert!(o.stdout.is_empty(), "data only on success: {}", stdout(&o));
        }
    }
    let o = inspect(&packages_dir().join("fixtures.wasm"), &["-o", "yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn help_documents_exit_codes() {
    let o = Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(["package", "inspect", "--help"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    for line in [
        "silk package inspect target/packages/libfixtures.so",
        "2  bad usage",
        "3  not a silk package",
        "4  a silk package built for another ABI version",
    ] {
        assert!(help.contains(line), "{line:?} in\n{help}");
    }
}
