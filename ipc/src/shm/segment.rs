//! The shared segment: a memfd with every page allocated up front (so a full tmpfs fails here,
//! never as a SIGBUS later), sealed against shrinking and growing, mapped by the EM and by its
//! executor, which finds it at a file descriptor it inherited and checks its header first.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{FallocateFlags, MemfdFlags, SealFlags};

use crate::shm::layout::{self, Header, LayoutError};
use crate::shm::raw::{MappedRing, Mapping};

/// Default capacity of each ring: 4 MiB (larger messages stream through in chunks).
pub const DEFAULT_RING_BYTES: usize = 4 << 20;

/// The segment could not be created or attached.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// Creating, sizing, sealing or mapping the memfd failed (e.g. tmpfs full: `ENOSPC`).
    #[error("cannot {what} the shared-memory segment: {source}")]
    Os {
        /// The step that failed.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The ring size is not a power of two in the allowed range.
    #[error("ring size {0} is not a power of two between 4 KiB and 1 GiB")]
    RingSize(usize),
    /// The segment's header does not match this build.
    #[error("shared-memory segment rejected: {0}")]
    Layout(#[from] LayoutError),
    /// The file could shrink under us (missing seals), which would turn access into SIGBUS.
    #[error("shared-memory segment is not sealed against shrinking")]
    NotSealed,
}

fn os(what: &'static str) -> impl FnOnce(rustix::io::Errno) -> ShmError {
    move |e| ShmError::Os {
        what,
        source: e.into(),
    }
}

/// A mapped segment, not yet split into a transport's ring handles (see
/// [`ShmClient::new`](crate::shm::ShmClient::new) and [`ShmServer::new`](crate::shm::ShmServer::new),
/// which consume it so that each ring gets one producer and one consumer per process).
#[derive(Debug)]
pub struct Segment {
    file: File,
    map: Arc<Mapping>,
    ring_bytes: usize,
}

impl Segment {
    /// Creates a segment with two rings of `ring_bytes` each (EM side).
    ///
    /// # Errors
    /// [`ShmError::RingSize`] for a bad size, [`ShmError::Os`] when the memfd cannot be created,
    /// its pages cannot be allocated (tmpfs full), or it cannot be sealed or mapped.
    pub fn create(ring_bytes: usize) -> Result<Self, ShmError> {
        if !layout::ring_size_ok(ring_bytes) {
            return Err(ShmError::RingSize(ring_bytes));
        }
        let total = layout::total_bytes(ring_bytes);
        let fd =
            rustix::fs::memfd_create("silk-shm", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
                .map_err(os("create"))?;
        rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, total as u64)
            .map_err(os("allocate the pages of"))?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(os("seal"))?;
        let file = File::from(fd);
        let map = Mapping::new(&file, total).map_err(|source| ShmError::Os {
            what: "map",
            source,
        })?;
        map.write_header(Header::new(ring_bytes));
        Ok(Self {
            file,
            map: Arc::new(map),
            ring_bytes,
        })
    }

    /// Attaches to a segment created by [`Segment::create`] (executor side): checks the seals,
    /// maps it and validates its header.
    ///
    /// # Errors
    /// [`ShmError::NotSealed`], [`ShmError::Layout`] or [`ShmError::Os`].
    pub fn open(fd: OwnedFd) -> Result<Self, ShmError> {
        let seals = rustix::fs::fcntl_get_seals(&fd).map_err(os("inspect"))?;
        if !seals.contains(SealFlags::SHRINK) {
            return Err(ShmError::NotSealed);
        }
        let len = rustix::fs::fstat(&fd).map_err(os("inspect"))?.st_size;
        let len = u64::try_from(len).unwrap_or(0);
        let map_len = usize::try_from(len)
            .ok()
            .filter(|l| *l >= layout::HEADER_BYTES)
            .ok_or(LayoutError::Sizes {
                header: 0,
                ring: 0,
                total: 0,
                file: len,
            })?;
        let file = File::from(fd);
        let map = Mapping::new(&file, map_len).map_err(|source| ShmError::Os {
            what: "map",
            source,
        })?;
        let ring_bytes = map.read_header().validate(len)?;
        Ok(Self {
            file,
            map: Arc::new(map),
            ring_bytes,
        })
    }

    /// The memfd, to hand to the executor at spawn.
    #[must_use]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Capacity of each ring in bytes.
    #[must_use]
    pub fn ring_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// The request ring (EM → executor) and the response ring.
    pub(crate) fn rings(&self) -> (MappedRing, MappedRing) {
        let r = self.ring_bytes;
        (
            MappedRing::new(
                self.map.clone(),
                layout::REQUEST_CTL,
                layout::request_data(r),
                r,
            ),
            MappedRing::new(
                self.map.clone(),
                layout::RESPONSE_CTL,
                layout::response_data(r),
                r,
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_open_agree_and_bad_sizes_are_refused() {
        let seg = Segment::create(1 << 16).unwrap();
        let dup = seg.fd().try_clone_to_owned().unwrap();
        let other = Segment::open(dup).unwrap();
        assert_eq!(other.ring_bytes(), 1 << 16);
        assert!(matches!(
            Segment::create(5000),
            Err(ShmError::RingSize(5000))
        ));
    }

    #[test]
    fn an_unsealed_or_foreign_file_is_refused() {
        let plain = rustix::fs::memfd_create("x", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&plain, 1 << 20).unwrap();
        assert!(matches!(Segment::open(plain), Err(ShmError::NotSealed)));
        let sealed = rustix::fs::memfd_create("y", MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::fs::ftruncate(&sealed, 1 << 20).unwrap();
        rustix::fs::fcntl_add_seals(&sealed, SealFlags::SHRINK).unwrap();
        assert!(matches!(
            Segment::open(sealed),
            Err(ShmError::Layout(LayoutError::BadMagic(0)))
        ));
    }
}
