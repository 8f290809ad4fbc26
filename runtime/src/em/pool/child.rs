//! Child-process plumbing for native executors: finding the binary, describing how a child
//! ended, and forwarding its stderr to the EM's log line by line (lines capped in size).

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// The executor binary's file name.
pub const EXECUTOR_BIN: &str = "silk-executor-native";

/// Finds `silk-executor-native`: `$SILK_EXECUTOR_NATIVE`, else next to the running binary (or one
/// directory up, for test binaries in `target/*/deps`), else on `PATH`.
#[must_use]
pub fn find_executor_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SILK_EXECUTOR_NATIVE") {
        return Some(PathBuf::from(p));
    }
    if let Some(found) = beside_exe().into_iter().find(|p| p.is_file()) {
        return Some(found);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(EXECUTOR_BIN))
            .find(|p| p.is_file())
    })
}

/// The candidates next to the running binary and one directory up.
fn beside_exe() -> Vec<PathBuf> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    let Some(dir) = exe.parent() else {
        return Vec::new();
    };
    [
        Some(dir.join(EXECUTOR_BIN)),
        dir.parent().map(|d| d.join(EXECUTOR_BIN)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Where [`find_executor_bin`] looks, in order, for error messages:
/// `$SILK_EXECUTOR_NATIVE (unset), /opt/silk/silk-executor-native, /opt/silk-executor-native, PATH`.
#[must_use]
pub fn executor_search_places() -> String {
    let env = match std::env::var_os("SILK_EXECUTOR_NATIVE") {
        Some(p) => format!("$SILK_EXECUTOR_NATIVE ({})", Path::new(&p).display()),
        None => "$SILK_EXECUTOR_NATIVE (unset)".to_owned(),
    };
    let mut places = vec![env];
    places.extend(beside_exe().iter().map(|p| p.display().to_string()));
    places.push("PATH".to_owned());
    places.join(", ")
}

/// The native executor binary could not be found.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// The configured `executor_bin` is missing or not executable.
    #[error("executor_bin {} is missing or not executable", .0.display())]
    Configured(PathBuf),
    /// No executable `silk-executor-native` where [`find_executor_bin`] looks.
    #[error("{EXECUTOR_BIN} not found (looked in {looked})")]
    NotFound {
        /// The places searched, as [`executor_search_places`] lists them.
        looked: String,
    },
}

/// The executor binary to use: `configured` if given, else what [`find_executor_bin`] finds;
/// either way it must be an executable file.
///
/// # Errors
/// [`FindError`] naming the configured path or every place searched.
pub fn require_executor_bin(configured: Option<&Path>) -> Result<PathBuf, FindError> {
    match configured {
        Some(path) if is_executable(path) => Ok(path.to_owned()),
        Some(path) => Err(FindError::Configured(path.to_owned())),
        None => find_executor_bin()
            .filter(|p| is_executable(p))
            .ok_or_else(|| FindError::NotFound {
                looked: executor_search_places(),
            }),
    }
}

/// "exited with status 3", "killed by signal 6 (SIGABRT)".
#[must_use]
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = match sig {
                4 => " (SIGILL)",
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                8 => " (SIGFPE)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("killed by signal {sig}{name}")
        }
        None => format!("ended with {status}"),
    }
}

/// Reads `input` to its end and calls `emit` for each non-empty line, without the newline. A line
/// longer than `max_line` bytes is cut there and marked; the rest of it is skipped.
pub fn forward_lines(mut input: impl Read, max_line: usize, mut emit: impl FnMut(&str)) {
    let mut line = Vec::new();
    let mut skipping = false;
    let mut chunk = [0u8; 8192];
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &chunk[..n] {
            if b == b'\n' {
                if !skipping && !line.is_empty() {
                    emit(&String::from_utf8_lossy(&line));
                }
                line.clear();
                skipping = false;
            } else if !skipping {
                line.push(b);
                if line.len() >= max_line {
                    emit(&format!(
                        "{} [line cut at {max_line} bytes]",
                        String::from_utf8_lossy(&line)
                    ));
                    line.clear();
                    skipping = true;
                }
            }
        }
    }
    if !line.is_empty() && !skipping {
        emit(&String::from_utf8_lossy(&line));
    }
}

/// Whether `path` looks like an executable file.
#[must_use]
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        forward_lines(input, max, |l| out.push(l.to_owned()));
        out
    }

    #[test]
    fn splits_and_caps_lines() {
        assert_eq!(lines(b"a\nbc\n\nlast", 10), ["a", "bc", "last"]);
        assert_eq!(
            lines(b"0123456789abc\nok\n", 4),
            ["0123 [line cut at 4 bytes]", "ok"]
        );
    }

    #[test]
    fn a_missing_executor_is_named() {
        let missing = Path::new("/nonexistent/silk-executor-native");
        let err = require_executor_bin(Some(missing)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "executor_bin /nonexistent/silk-executor-native is missing or not executable"
        );
        // A file that is not executable is refused too.
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join(EXECUTOR_BIN);
        std::fs::write(&plain, b"").unwrap();
        assert!(matches!(
            require_executor_bin(Some(&plain)),
            Err(FindError::Configured(p)) if p == plain
        ));
        let places = executor_search_places();
        assert!(places.starts_with("$SILK_EXECUTOR_NATIVE"), "{places}");
        assert!(places.ends_with(", PATH"), "{places}");
    }

    #[test]
    fn describes_exits() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(6)),
            "killed by signal 6 (SIGABRT)"
        );
    }
}
