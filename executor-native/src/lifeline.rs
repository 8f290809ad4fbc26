//! The executor's tie to its execution manager. When the EM goes away — `kill -9` included — or
//! the EM thread that started the executor ends, the executor and every process a task started
//! in its process group must go too.
//!
//! The kernel's parent-death signal fires when the *thread* that spawned the executor ends (so
//! also when the whole EM dies), but `SIGKILL` would end the executor alone and leave a task's
//! subprocesses running. So, when the executor leads its own process group (the EM starts it
//! so), the parent-death signal is `SIGUSR2`, whose handler kills the whole group. A watcher
//! thread backs it up: it kills the group once the parent process is gone (a task thread might
//! block `SIGUSR2`).

use std::time::Duration;

use rustix::process::{Signal, getpgid, getpid, getppid, kill_process_group};

/// How often the watcher looks at the parent.
const POLL: Duration = Duration::from_millis(100);

/// The handler of the parent-death signal when the executor leads its process group: kills the
/// group (the executor and its tasks' subprocesses).
extern "C" fn kill_group(_signal: libc::c_int) {
    // SAFETY: kill(2) is async-signal-safe; pid 0 names the caller's own process group.
    unsafe { libc::kill(0, libc::SIGKILL) };
    // SAFETY: _exit(2) is async-signal-safe (reached only if the kill above failed).
    unsafe { libc::_exit(1) };
}

/// Makes `SIGUSR2`, handled by [`kill_group`], the parent-death signal.
fn arm_group_kill() -> std::io::Result<()> {
    // SAFETY: an all-zero `sigaction` is a valid value (no flags, empty mask).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = kill_group as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installs a handler that makes only async-signal-safe calls, for a signal nothing
    // else in the executor uses; the old action is not asked for.
    if unsafe { libc::sigaction(libc::SIGUSR2, &raw const action, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Replaces the SIGKILL armed before exec in one step: no moment without a tie.
    rustix::process::set_parent_process_death_signal(Some(Signal::USR2))?;
    Ok(())
}

/// Ties this process (and, when it leads its process group, the group) to its parent.
pub fn tie_to_parent() {
    // First the plain kernel tie (the EM armed it before exec too), until the group kill is armed.
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        eprintln!("silk-executor-native: cannot set parent-death signal: {e}");
    }
    let parent = getppid();
    let me = getpid();
    if parent.is_none() || getpgid(None).ok() != Some(me) {
        // Not our own group (run by hand, from a shell): killing it would kill others.
        return;
    }
    if let Err(e) = arm_group_kill() {
        eprintln!(
            "silk-executor-native: cannot arm the group kill on the parent's death ({e}); \
             SIGKILL stays armed"
        );
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
    if let Err(e) = watcher {
        eprintln!("silk-executor-native: cannot start the lifeline thread: {e}");
    }
}
