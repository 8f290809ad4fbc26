//! The executor's tie to its execution manager. When the EM goes away — `kill -9` included —
//! the executor and every process a task started in its process group must go too. The
//! kernel's parent-death signal kills only the executor itself and leaves a task's
//! subprocesses running, so, when the executor leads its own process group (the EM starts it
//! so), a watcher thread notices the EM's death and kills the whole group.

use std::time::Duration;

use rustix::process::{Signal, getpgid, getpid, getppid, kill_process_group};

/// How often the watcher looks at the parent.
const POLL: Duration = Duration::from_millis(100);

/// Ties this process (and, when it leads its process group, the group) to its parent.
pub fn tie_to_parent() {
    // First the kernel's tie, for the time before the watcher runs (no task has started yet).
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        eprintln!("silk-executor-native: cannot set parent-death signal: {e}");
    }
    let parent = getppid();
    let me = getpid();
    if parent.is_none() || getpgid(None).ok() != Some(me) {
        // Not our own group (run by hand, from a shell): killing it would kill others.
        return;
    }
    let watcher = std::thread::Builder::new()
        .name("silk-lifeline".into())
        .spawn(move || {
            loop {
                std::thread::sleep(POLL);
                if getppid() != parent {
                    // The EM is gone: this group (the executor and its tasks' subprocesses).
                    let _ = kill_process_group(me, Signal::KILL);
                    std::process::exit(1);
                }
            }
        });
    match watcher {
        // The watcher ends the whole group; the kernel's signal would end this process alone,
        // first. If the parent died meanwhile, the watcher sees it on its next look.
        Ok(_) => {
            if let Err(e) = rustix::process::set_parent_process_death_signal(None) {
                eprintln!("silk-executor-native: cannot clear parent-death signal: {e}");
            }
        }
        Err(e) => eprintln!("silk-executor-native: cannot start the lifeline thread: {e}"),
    }
}
