//! README.md's examples run as written, so the README cannot drift from the code. The test
//! builds a checkout-like directory (`Checkout`: the repository's files, with this build's
//! binaries at the README's `target/release/` paths and the staged packages at
//! `target/packages`), runs every `sh` block in README order from there with bash, and compares
//! what each command prints with the `# ` lines under it; a `silk dev` runs in the background
//! until the next one starts (as in a second terminal) and its banner is compared with the
//! `text` block. The package a reader writes (`file=../math/...` blocks) is built with cargo
//! next to the checkout, and the Rust client example is `client/examples/readme_client.rs`
//! (the test checks the README shows exactly that file) run against its `silk dev`.
//!
//! What a reader's machine has and a test must not use is set in one place, `environment`:
//! a temporary `HOME` (so the credentials file and `~/silk-packages` stay in the test), free
//! ports instead of 50051 and 9150. Output is compared after `readme::normalise` (ports,
//! temporary directories, slot count, job ages). Blocks marked `no-run` must be in `SKIPPED`,
//! with the reason.

use crate::readme;
use crate::support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use readme::{Block, Step};

/// The README's blocks that the test does not run, by their first line, and why.
const SKIPPED: &[(&str, &str)] = &[
    (
        "./scripts/setup    # builds silk and the example packages, runs a task, then runs a job on a local cluster",
        "builds the release binaries and runs the whole test suite, this test included",
    ),
    (
        "[dependencies]",
        "a fragment of the reader's own Cargo.toml; the example it belongs to is compiled here \
         as client/examples/readme_client.rs",
    ),
    (
        "scripts/build-packages                                # lib<name>.so + <name>.wasm in target/packages/",
        "needs Docker and builds images for ~11 min; deploy_configs.rs checks the files it uses",
    ),
    (
        "scripts/build-packages",
        "benchmark setup: a release build of the executor (minutes), not an example",
    ),
];

/// How long one command may take; cargo builds get longer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn readme_examples_run_as_written() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let markdown = fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = readme::blocks(&markdown);
    let checkout = Checkout::new(&repo);
    let mut run = Run {
        checkout: &checkout,
        dev: None,
        banner: None,
    };
    let mut skipped = Vec::new();
    for block in &blocks {
        eprintln!("README.md:{}: {} {:?}", block.line, block.lang, block.words);
        if block.has("no-run") {
            let reason = SKIPPED
                .iter()
                .find(|(first, _)| *first == block.first_line())
                .map(|(_, reason)| reason)
                .unwrap_or_else(|| {
                    panic!(
                        "README.md:{}: a no-run block that SKIPPED does not list",
                        block.line
                    )
                });
            eprintln!("  skipped: {reason}");
            skipped.push(block.first_line());
            continue;
        }
        match (
            block.lang.as_str(),
            block.value("file"),
            block.value("source"),
        ) {
            ("sh", None, None) => run.block(block),
            ("text", None, None) => run.banner_is(block),
            (_, Some(path), None) => checkout.write_beside(path, &block.text),
            (_, None, Some(path)) => run.same_as_source(&repo, path, block, &markdown),
            _ => panic!(
                "README.md:{}: a `{}` block the test does not know how to run: mark it \
                 `no-run` (and list it in SKIPPED), or give it file= or source=",
                block.line, block.lang
            ),
        }
    }
    run.stop_dev();
    assert_eq!(
        skipped.len(),
        SKIPPED.len(),
        "SKIPPED lists blocks the README no longer marks no-run: {skipped:?}"
    );
}

/// A directory laid out like a silk checkout, with the reader's home and `../math` beside it.
struct Checkout {
    _dir: tempfile::TempDir,
    /// `<tmp>/silk`: where the README's commands run.
    root: PathBuf,
    home: PathBuf,
}

impl Checkout {
    /// Links every top-level entry of the repository except `target`, which holds this build's
    /// `silk` and `silk-executor-native` (hard links, so each finds the other beside it) at the
    /// README's `target/release/` and the staged packages at `target/packages`.
    fn new(repo: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("silk");
        let home = dir.path().join("home");
        let release = root.join("target/release");
        fs::create_dir_all(&release).unwrap();
        fs::create_dir_all(&home).unwrap();
        for entry in fs::read_dir(repo).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name != "target" && name != ".git" {
                std::os::unix::fs::symlink(entry.path(), root.join(&name)).unwrap();
            }
        }
        link_or_copy(Path::new(env!("CARGO_BIN_EXE_silk")), &release.join("silk"));
        link_or_copy(
            &support::executor_bin(),
            &release.join("silk-executor-native"),
        );
        std::os::unix::fs::symlink(support::packages_dir(), root.join("target/packages")).unwrap();
        Self {
            _dir: dir,
            root,
            home,
        }
    }

    /// Writes a file the README has the reader create (`file=../math/Cargo.toml`). For the
    /// `math` crate, two things a reader would not do: its `target` is a directory kept under
    /// this build's target dir (later runs build in seconds), and silk's `Cargo.lock` pins the
    /// same dependency versions (no network needed).
    fn write_beside(&self, path: &str, text: &str) {
        let path = self.root.join(path);
        let crate_dir = path.parent().unwrap();
        let crate_dir = if crate_dir.ends_with("src") {
            crate_dir.parent().unwrap()
        } else {
            crate_dir
        };
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        if !crate_dir.join("target").exists() {
            let cache = build_dir()
                .join("readme-examples")
                .join(crate_dir.file_name().expect("a crate directory has a name"));
            fs::create_dir_all(&cache).unwrap();
            std::os::unix::fs::symlink(&cache, crate_dir.join("target")).unwrap();
            fs::copy(self.root.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
        }
    }

    /// A command run the way a reader runs it, in `dir` (relative to the checkout).
    fn command(&self, program: &str, dir: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.root.join(dir));
        self.environment(&mut cmd);
        cmd
    }

    /// The one place where the test's environment differs from a reader's: `HOME` is the test's
    /// (so `~/silk-packages` and the credentials file `silk dev` writes stay inside it, with
    /// cargo's and rustup's homes kept), nothing of the caller's silk settings leaks in, and
    /// `silk dev` takes free ports rather than 50051 and 9150.
    fn environment(&self, cmd: &mut Command) {
        let real_home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let cargo_home =
            std::env::var_os("CARGO_HOME").map_or_else(|| real_home.join(".cargo"), PathBuf::from);
        let rustup_home = std::env::var_os("RUSTUP_HOME")
            .map_or_else(|| real_home.join(".rustup"), PathBuf::from);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("SILK_") || key.starts_with("CARGO_") || key == "XDG_CONFIG_HOME" {
                cmd.env_remove(&*key);
            }
        }
        cmd.env("HOME", &self.home)
            .env("CARGO_HOME", cargo_home)
            .env("RUSTUP_HOME", rustup_home)
            .env("SILK_DEV_PORT_BASE", "0")
            .env("SILK_DEV_METRICS_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
    }

    fn normalise(&self, text: &str) -> String {
        readme::normalise(text, &self.home.display().to_string())
    }
}

/// The README run so far: the `silk dev` in the background and its banner.
struct Run<'a> {
    checkout: &'a Checkout,
    dev: Option<Child>,
    banner: Option<String>,
}

impl Run<'_> {
    fn block(&mut self, block: &Block) {
        let dir = block.value("cwd").unwrap_or(".");
        for step in readme::steps(block) {
            eprintln!("README.md:{}: $ {}", step.line, step.script);
            if step.script.starts_with("target/release/silk dev") {
                assert!(step.expected.is_empty(), "README.md:{}", step.line);
                self.start_dev(&step, dir);
            } else {
                self.command(&step, dir);
            }
        }
    }

    /// Runs one command with bash and compares its output with the README's.
    fn command(&self, step: &Step, dir: &str) {
        let timeout = if step.script.starts_with("cargo ") {
            BUILD_TIMEOUT
        } else {
            COMMAND_TIMEOUT
        };
        let (code, stdout, stderr) = run_bash(self.checkout, &step.script, dir, timeout);
        let context = format!(
            "README.md:{}: `{}` exited {code:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            step.line, step.script
        );
        assert_eq!(code, Some(step.exit), "{context}");
        if step.expected.is_empty() {
            return;
        }
        let shown = step.expected.join("\n");
        let (actual, expected) = (
            self.checkout
                .normalise(if step.exit == 0 { &stdout } else { &stderr }),
            self.checkout.normalise(&shown),
        );
        let actual: Vec<&str> = actual.trim_end().lines().collect();
        let expected: Vec<&str> = expected.lines().collect();
        let ok = if step.exit == 0 {
            actual == expected
        } else {
            actual.ends_with(&expected)
        };
        assert!(
            ok,
            "{context}\nthe README shows (normalised):\n{}\ngot (normalised):\n{}",
            expected.join("\n"),
            actual.join("\n")
        );
    }

    /// Starts `silk dev` in the background (stopping the one before, as a reader closes the
    /// other terminal) and keeps its banner, up to `Stop with Ctrl-C.`.
    fn start_dev(&mut self, step: &Step, dir: &str) {
        self.stop_dev();
        let mut child = self
            .checkout
            .command("bash", dir)
            .arg("-c")
            .arg(format!("exec {}", step.script))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keeps reading after the banner so that silk dev never blocks on a full pipe.
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut banner = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    banner.push_str(&line);
                    banner.push('\n');
                    if line == "Stop with Ctrl-C." {
                        break;
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "README.md:{}: silk dev did not start ({e}):\n{banner}",
                        step.line
                    );
                }
            }
        }
        self.dev = Some(child);
        self.banner = Some(banner);
    }

    /// Ctrl-C, as the README says: the cluster drains and exits 0.
    fn stop_dev(&mut self) {
        let Some(mut child) = self.dev.take() else {
            return;
        };
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(0), "silk dev after Ctrl-C");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("silk dev did not stop on Ctrl-C");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The `text` block shows the banner of the `silk dev` started last.
    fn banner_is(&self, block: &Block) {
        let banner = self.banner.as_deref().unwrap_or_else(|| {
            panic!(
                "README.md:{}: a text block with no silk dev before it",
                block.line
            )
        });
        let (actual, expected) = (
            self.checkout.normalise(banner),
            self.checkout.normalise(&block.text),
        );
        let actual: Vec<&str> = actual.lines().collect();
        let expected: Vec<&str> = expected.lines().collect();
        assert!(
            readme::matches(&expected, &actual),
            "README.md:{}: silk dev's banner (normalised) is\n{}\nthe README shows\n{}",
            block.line,
            actual.join("\n"),
            expected.join("\n")
        );
    }

    /// The block is the repository's file `path` (after the file's `//!` header), and that
    /// file, built by cargo as an example, runs against the current `silk dev` and prints what
    /// the README says (`It prints `...``).
    fn same_as_source(&self, repo: &Path, path: &str, block: &Block, markdown: &str) {
        let source = fs::read_to_string(repo.join(path)).unwrap();
        let body: String = source
            .lines()
            .skip_while(|l| l.starts_with("//!"))
            .skip_while(|l| l.is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            body, block.text,
            "README.md:{}: the block differs from {path} (below its //! header)",
            block.line
        );
        assert!(
            self.dev.is_some(),
            "README.md:{}: no silk dev running",
            block.line
        );
        let name = Path::new(path).file_stem().unwrap().to_str().unwrap();
        let exe = profile_dir().join("examples").join(name);
        assert!(
            exe.is_file(),
            "{} not built: run `cargo build -p silk-client --example {name}` (scripts/test does)",
            exe.display()
        );
        let after = &markdown[markdown.find(&block.text).unwrap() + block.text.len()..];
        let prints = after
            .split_once("It prints `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(shown, _)| shown)
            .unwrap_or_else(|| {
                panic!("README.md:{}: no `It prints` after the program", block.line)
            });
        let script = exe.display().to_string();
        let (code, stdout, stderr) = run_bash(self.checkout, &script, ".", COMMAND_TIMEOUT);
        assert_eq!(
            (code, stdout.trim_end()),
            (Some(0), prints),
            "{path}: stderr:\n{stderr}"
        );
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if let Some(child) = &mut self.dev {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `bash -c script` in `dir` of the checkout, killed (its whole process group) past `timeout`:
/// the exit code, stdout and stderr.
fn run_bash(
    checkout: &Checkout,
    script: &str,
    dir: &str,
    timeout: Duration,
) -> (Option<i32>, String, String) {
    use std::os::unix::process::CommandExt;
    let out = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut child = checkout
        .command("bash", dir)
        .arg("-c")
        .arg(script)
        .stdout(fs::File::create(&stdout).unwrap())
        .stderr(fs::File::create(&stderr).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!("`{script}` ran past {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap()).into_owned();
    (code, read(&stdout), read(&stderr))
}

/// This build's profile directory (the test binary is `<target>/<profile>/deps/<name>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(2)
        .expect("the test binary is in <target>/<profile>/deps")
        .to_path_buf()
}

/// This build's target directory.
fn build_dir() -> PathBuf {
    profile_dir().parent().unwrap().to_path_buf()
}

/// A hard link to `from` at `to`, or a copy on another file system.
fn link_or_copy(from: &Path, to: &Path) {
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to).unwrap();
    }
}
