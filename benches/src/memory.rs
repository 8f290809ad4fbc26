//! Peak resident memory of a process (`VmHWM` in `/proc/<pid>/status`), for the benches that
//! report it.

/// Resets the peak resident memory of process `pid` (`"self"` for this one) to its current size.
pub fn reset_peak_rss(pid: &str) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// The peak resident memory of process `pid` (`"self"` for this one) since it started or was
/// last reset, in MiB; 0 if it cannot be read.
#[must_use]
pub fn peak_rss_mib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}
