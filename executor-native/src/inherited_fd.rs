//! Taking ownership of a file descriptor the EM left open for the executor at a known number
//! (the shared-memory segment): the one unsafe step of attaching to it, kept apart from the
//! request loop.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Takes ownership of inherited descriptor `fd`, which must be open and above stdio.
///
/// Call at most once per number: the returned `OwnedFd` closes it on drop.
///
/// # Errors
/// If `fd` is 0–2 or not an open descriptor.
pub fn take_inherited_fd(fd: RawFd) -> std::io::Result<OwnedFd> {
    if fd < 3 {
        return Err(std::io::Error::other(format!(
            "fd {fd} is stdio, not an inherited segment"
        )));
    }
    // SAFETY: borrowed only for this call, which tolerates a closed number (it fails with EBADF).
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(borrowed)?;
    // SAFETY: the descriptor is open (checked above); the EM's spawn put it at this number for
    // this process, and nothing else here owns it (the caller takes it once, at start-up).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
