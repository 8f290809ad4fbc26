//! Handing a descriptor to a child at a fixed number: the EM side's only unsafe code, a
//! `pre_exec` hook that runs between `fork` and `exec`.

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
