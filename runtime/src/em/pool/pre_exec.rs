//! Hooks that run in an executor child between `fork` and `exec` (`pre_exec`), the EM side's
//! only unsafe code: handing a descriptor to the child at a fixed number, and tying the child's
//! life to the EM's.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `fd` appear in the child as descriptor `target` (without close-on-exec). `fd` must stay
/// open until the command has been spawned; the parent's copy keeps its close-on-exec flag, so
/// children spawned concurrently by other threads do not inherit it.
pub(crate) fn inherit_at(cmd: &mut Command, fd: BorrowedFd<'_>, target: RawFd) {
    let source = fd.as_raw_fd();
    let hook = move || {
        // Only async-signal-safe calls (dup2, fcntl) and no allocation: this runs in the forked
        // child of a possibly multi-threaded parent.
        let r = if source == target {
            // dup2 to itself would keep close-on-exec: clear it instead.
            // SAFETY: a plain syscall on a descriptor number that is open in the child (fork
            // copied it; close-on-exec acts only at exec).
            unsafe { libc::fcntl(target, libc::F_SETFD, 0) }
        } else {
            // SAFETY: as above for `source`; `target` is ours to replace in the child.
            unsafe { libc::dup2(source, target) }
        };
        if r == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: the hook only makes async-signal-safe syscalls and touches no memory shared with
    // other threads (it captures two integers).
    unsafe { cmd.pre_exec(hook) };
}

/// Arms SIGKILL as the child's parent-death signal before it execs, and fails the spawn if the
/// parent is already gone. The executor arms it again itself, but only after exec: this closes
/// the window in which a child that left the EM's process group could outlive the EM.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    let parent = rustix::process::getpid();
    let hook = move || {
        // Only async-signal-safe syscalls (prctl, getppid) and no allocation, as above.
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
        if rustix::process::getppid() != Some(parent) {
            // The EM died before the signal was armed.
            return Err(std::io::Error::from(rustix::io::Errno::SRCH));
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe syscalls and touches no memory shared with
    // other threads (it captures one integer).
    unsafe { cmd.pre_exec(hook) };
}
