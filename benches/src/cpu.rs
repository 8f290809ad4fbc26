//! CPU time of a cluster, split by role, from `/proc` (each live thread's time on a CPU, in
//! nanoseconds, from `schedstat`): the control plane (the threads of the cluster's own processes),
//! the EMs' slot threads, the native executors (their descendants) and the database server, so a
//! bench can report each per task. A thread's time leaves `/proc` when it exits, so the threads measured must outlive
//! the measurement (a cluster's are long-lived).

use std::ops::Sub;
use std::time::Duration;

/// The client thread of a bench running in the cluster's own process takes this name (the kernel
/// keeps the first 15 bytes of a thread's name); its time is nobody's control plane.
pub const CLIENT_THREAD: &str = "bench-client";
/// The name of every EM slot thread starts so.
const SLOT_THREAD: &str = "silk-slot-";

/// CPU time spent by each role.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    /// Storage, scheduler and EMs: every thread of the cluster's processes but [`CLIENT_THREAD`]
    /// and the slot threads.
    pub control: Duration,
    /// The EMs' slot threads: a wasm task runs on one (fresh instance, call, copies); a native
    /// task is sent to its executor and waited for on one.
    pub slots: Duration,
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
            split.control += threads(pid, |name| {
                name != CLIENT_THREAD && !name.starts_with(SLOT_THREAD)
            });
            split.slots += threads(pid, |name| name.starts_with(SLOT_THREAD));
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
            slots: self.slots.saturating_sub(rhs.slots),
            executors: self.executors.saturating_sub(rhs.executors),
            database: self.database.saturating_sub(rhs.database),
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

    /// This thread's time on a CPU.
    fn thread_cpu() -> Duration {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
        Duration::from_nanos(text.split_whitespace().next().unwrap().parse().unwrap())
    }

    #[test]
    fn time_is_split_by_thread_name() {
        let me = std::process::id();
        let before = CpuSplit::now(&[me]);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
        let exit_rx = std::sync::Arc::new(std::sync::Mutex::new(exit_rx));
        // Each spins for 100 ms of its own CPU time, then waits (alive) to be told to exit.
        let spin = |name: &str| {
            let (done_tx, exit_rx) = (done_tx.clone(), exit_rx.clone());
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    let end = thread_cpu() + Duration::from_millis(100);
                    while thread_cpu() < end {
                        std::hint::spin_loop();
                    }
                    done_tx.send(()).expect("report");
                    let _ = exit_rx.lock().expect("lock").recv();
                })
                .expect("a thread")
        };
        let threads = [spin(CLIENT_THREAD), spin("worker"), spin("silk-slot-0")];
        for _ in &threads {
            done_rx.recv().expect("a spinner finished");
        }
        let spent = CpuSplit::now(&[me]) - before;
        drop(exit_tx);
        for t in threads {
            t.join().expect("spinner");
        }
        let about_100_ms =
            |d: Duration| d >= Duration::from_millis(95) && d < Duration::from_millis(170);
        assert!(
            about_100_ms(spent.control),
            "the worker's 100 ms, not the client's or the slot's: {spent:?}"
        );
        assert!(about_100_ms(spent.slots), "the slot's 100 ms: {spent:?}");
        assert_eq!(spent.executors, Duration::ZERO, "no children: {spent:?}");
    }
}
