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
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let candidates = [
        Some(dir.join(EXECUTOR_BIN)),
        dir.parent().map(|d| d.join(EXECUTOR_BIN)),
    ];
    if let Some(found) = candidates.into_iter().flatten().find(|p| p.is_file()) {
        return Some(found);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(EXECUTOR_BIN))
            .find(|p| p.is_file())
    })
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
