//! CPU time of a cluster, split by role, from `/proc` (each live thread's time on a CPU, in
//! nanoseconds, from `schedstat`): the control plane (the threads of the cluster's own processes),
//! the native executors (their descendants) and the database server, so a bench can report each
//! per task. A thread's time leaves `/proc` when it exits, so the threads measured must outlive
//! the measurement (a cluster's are long-lived).

use std::ops::{Add, Sub};
use std::time::Duration;

/// The client thread of a bench running in the cluster's own process takes this name (the kernel
/// keeps the first 15 bytes of a thread's name); its time is nobody's control plane.
pub const CLIENT_THREAD: &str = "bench-client";

/// CPU time spent by each role.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    /// Storage, scheduler and EMs: every thread of the cluster's processes but [`CLIENT_THREAD`].
    pub control: Duration,
    /// Every descendant process of the cluster's processes (native executor children).
    pub executors: Duration,
    /// The MySQL/MariaDB server, when one runs on this machine (`mariadbd` or `mysqld`).
    pub database: Duration,
}

impl CpuSplit {
    /// The time of `pids` (the cluster's processes) and of a local database server, now.
    #[must_use]
    pub fn now(pids: &[u32]) -> Self {
        let procs = processes();
        let mut split = Self::default();
        for &pid in pids {
            split.control += threads(pid, |name| name != CLIENT_THREAD);
            let mut tree = vec![pid];
            let mut i = 0;
            while let Some(&parent) = tree.get(i) {
                tree.extend(procs.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
                i += 1;
            }
            split.executors += procs
                .iter()
                .filter(|p| p.pid != pid && tree.contains(&p.pid))
                .map(|p| threads(p.pid, |_| true))
                .sum();
        }
        split.database = procs
            .iter()
            .filter(|p| p.comm == "mariadbd" || p.comm == "mysqld")
            .map(|p| threads(p.pid, |_| true))
            .sum();
        split
    }
}

impl Sub for CpuSplit {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self {
            control: self.control.saturating_sub(rhs.control),
            executors: self.executors.saturating_sub(rhs.executors),
            database: self.database.saturating_sub(rhs.database),
        }
    }
}

impl Add for CpuSplit {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self {
            control: self.control + rhs.control,
            executors: self.executors + rhs.executors,
            database: self.database + rhs.database,
        }
    }
}

/// One process or thread as `/proc/…/stat` shows it.
struct Stat {
    pid: u32,
    ppid: u32,
    comm: String,
}

fn stat(path: &str) -> Option<Stat> {
    let text = std::fs::read_to_string(path).ok()?;
    let (head, rest) = text.rsplit_once(')')?;
    let (pid, comm) = head.split_once(" (")?;
    // Fields after the name: state, ppid, …
    Some(Stat {
        pid: pid.trim().parse().ok()?,
        ppid: rest.split_whitespace().nth(1)?.parse().ok()?,
        comm: comm.to_owned(),
    })
}

fn numbered(dir: &str) -> impl Iterator<Item = u32> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

/// Every live process.
fn processes() -> Vec<Stat> {
    numbered("/proc")
        .filter_map(|p| stat(&format!("/proc/{p}/stat")))
        .collect()
}

/// The time on a CPU of `pid`'s live threads whose name `keep` accepts.
fn threads(pid: u32, keep: impl Fn(&str) -> bool) -> Duration {
    numbered(&format!("/proc/{pid}/task"))
        .filter(|t| stat(&format!("/proc/{pid}/task/{t}/stat")).is_some_and(|s| keep(&s.comm)))
        .filter_map(|t| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/schedstat")).ok()?;
            text.split_whitespace().next()?.parse().ok()
        })
        .map(Duration::from_nanos)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_client_thread_is_not_control_plane_time() {
        let me = std::process::id();
        let before = CpuSplit::now(&[me]);
        let spin = |name: &str| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(|| {
                    let end = std::time::Instant::now() + Duration::from_millis(300);
                    while std::time::Instant::now() < end {
                        std::hint::spin_loop();
                    }
                })
                .expect("a thread")
        };
        let client = spin(CLIENT_THREAD);
        let worker = spin("worker");
        // Measured while the client lives.
        std::thread::sleep(Duration::from_millis(290));
        let spent = CpuSplit::now(&[me]) - before;
        client.join().expect("client");
        worker.join().expect("worker");
        assert!(
            spent.control >= Duration::from_millis(150)
                && spent.control < Duration::from_millis(450),
            "the worker's ~300 ms and not the client's: {spent:?}"
        );
        assert_eq!(spent.executors, Duration::ZERO, "no children: {spent:?}");
    }
}
