//! The segment's layout: a 4 KiB header page, then the request ring's bytes, then the response
//! ring's bytes. Pure arithmetic and plain data, no unsafe code.
//!
//! ```text
//! offset 0     Header      magic, layout version, sizes (written once by the EM)
//! offset 256   RingCtl     request ring (EM -> executor): tail | head | sleep words | closed
//! offset 1024  RingCtl     response ring (executor -> EM)
//! offset 1792  HintWords   "executor may spin while idle"
//! offset 4096  [u8; ring]  request ring bytes
//! ...          [u8; ring]  response ring bytes
//! ```
//!
//! Every word a process writes on the hot path sits on its own 128-byte line (two 64-byte cache
//! lines: the adjacent-line prefetcher pairs them), so the producer's `tail` and the consumer's
//! `head` never share a line.

use crate::shm::sync::{AtomicU32, AtomicU64};

/// `"SILKSHM\0"` as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SILKSHM\0");
/// Bumped whenever anything in this file changes meaning.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes before the first ring: the header page.
pub const HEADER_BYTES: usize = 4096;
/// Offset of the request ring's control block.
pub const REQUEST_CTL: usize = 256;
/// Offset of the response ring's control block.
pub const RESPONSE_CTL: usize = REQUEST_CTL + size_of::<RingCtl>();
/// Offset of the hint words.
pub const HINTS: usize = RESPONSE_CTL + size_of::<RingCtl>();
/// Smallest ring the segment accepts (and the model checker's rings are smaller still).
pub const MIN_RING_BYTES: usize = 4096;
/// Largest ring: positions are `u64` byte counts, indices must fit comfortably.
pub const MAX_RING_BYTES: usize = 1 << 30;

/// One value alone on a 128-byte line.
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub struct Line<T>(pub T);

/// The control block of one single-producer single-consumer byte ring.
///
/// `tail` and `head` count bytes ever written and ever consumed; they only grow (a `u64` of
/// bytes does not wrap in practice), `tail - head` is the fill level and `pos % capacity` the
/// index. All-zero bytes are a valid, empty, open ring.
#[derive(Debug, Default)]
#[repr(C)]
pub struct RingCtl {
    /// Bytes ever published by the producer. Written by the producer only.
    pub tail: Line<AtomicU64>,
    /// Bytes ever released by the consumer. Written by the consumer only.
    pub head: Line<AtomicU64>,
    /// 1 while the consumer is (about to be) blocked in `FUTEX_WAIT` on this word.
    pub consumer_sleeping: Line<AtomicU32>,
    /// 1 while the producer is (about to be) blocked waiting for space.
    pub producer_sleeping: Line<AtomicU32>,
    /// Non-zero once either side has gone away for good.
    pub closed: Line<AtomicU32>,
    /// Reserved; keeps the block a multiple of 256 bytes.
    pub _reserved: Line<AtomicU32>,
}

/// Words outside the rings.
#[derive(Debug, Default)]
#[repr(C)]
pub struct HintWords {
    /// Set by the EM before each request: 1 if the executor may busy-wait for the next request
    /// (the EM sees a spare CPU for it), 0 if it should block at once.
    pub executor_may_spin: Line<AtomicU32>,
}

/// The header at offset 0, written once by the EM before the executor starts and only read
/// afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`].
    pub version: u32,
    /// [`HEADER_BYTES`].
    pub header_bytes: u32,
    /// Capacity of each ring in bytes (a power of two).
    pub ring_bytes: u64,
    /// Length of the whole segment.
    pub total_bytes: u64,
}

/// A header that does not describe a segment this build can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Not a silk segment.
    #[error("bad magic {0:#018x}: not a silk shared-memory segment")]
    BadMagic(u64),
    /// Written by another layout version.
    #[error("layout version {found}, this executor speaks {LAYOUT_VERSION}")]
    Version {
        /// The segment's version.
        found: u32,
    },
    /// Sizes that do not add up or are out of range.
    #[error("inconsistent sizes: header {header}, ring {ring}, total {total}, file {file}")]
    Sizes {
        /// Header bytes claimed.
        header: u32,
        /// Ring bytes claimed.
        ring: u64,
        /// Total bytes claimed.
        total: u64,
        /// Actual length of the file.
        file: u64,
    },
}

impl Header {
    /// The header of a segment with two rings of `ring_bytes` each.
    #[must_use]
    pub fn new(ring_bytes: usize) -> Self {
        Self {
            magic: MAGIC,
            version: LAYOUT_VERSION,
            header_bytes: HEADER_BYTES as u32,
            ring_bytes: ring_bytes as u64,
            total_bytes: total_bytes(ring_bytes) as u64,
        }
    }

    /// Checks the header against this build's layout and the file's real length.
    ///
    /// # Errors
    /// [`LayoutError`] naming the first mismatch.
    pub fn validate(&self, file_len: u64) -> Result<usize, LayoutError> {
        if self.magic != MAGIC {
            return Err(LayoutError::BadMagic(self.magic));
        }
        if self.version != LAYOUT_VERSION {
            return Err(LayoutError::Version {
                found: self.version,
            });
        }
        let ring = usize::try_from(self.ring_bytes)
            .ok()
            .filter(|r| ring_size_ok(*r));
        match ring {
            Some(r)
                if self.header_bytes as usize == HEADER_BYTES
                    && self.total_bytes == total_bytes(r) as u64
                    && file_len == self.total_bytes =>
            {
                Ok(r)
            }
            _ => Err(LayoutError::Sizes {
                header: self.header_bytes,
                ring: self.ring_bytes,
                total: self.total_bytes,
                file: file_len,
            }),
        }
    }
}

/// Whether `ring_bytes` is a usable ring capacity (a power of two in range).
#[must_use]
pub fn ring_size_ok(ring_bytes: usize) -> bool {
    ring_bytes.is_power_of_two() && (MIN_RING_BYTES..=MAX_RING_BYTES).contains(&ring_bytes)
}

/// Length of a segment with two rings of `ring_bytes`.
#[must_use]
pub fn total_bytes(ring_bytes: usize) -> usize {
    HEADER_BYTES + 2 * ring_bytes
}

/// Offset of the request ring's bytes.
#[must_use]
pub fn request_data(_ring_bytes: usize) -> usize {
    HEADER_BYTES
}

/// Offset of the response ring's bytes.
#[must_use]
pub fn response_data(ring_bytes: usize) -> usize {
    HEADER_BYTES + ring_bytes
}

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<Header>() <= REQUEST_CTL);
    assert!(size_of::<RingCtl>().is_multiple_of(256));
    assert!(HINTS + size_of::<HintWords>() <= HEADER_BYTES);
    assert!(
        REQUEST_CTL.is_multiple_of(128)
            && RESPONSE_CTL.is_multiple_of(128)
            && HINTS.is_multiple_of(128)
    );
};

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn header_validates_against_the_file() {
        let h = Header::new(1 << 16);
        assert_eq!(h.validate(h.total_bytes), Ok(1 << 16));
        assert!(matches!(
            h.validate(h.total_bytes - 1),
            Err(LayoutError::Sizes { .. })
        ));
        let bad = Header { magic: 1, ..h };
        assert_eq!(bad.validate(h.total_bytes), Err(LayoutError::BadMagic(1)));
        let old = Header { version: 0, ..h };
        assert_eq!(
            old.validate(h.total_bytes),
            Err(LayoutError::Version { found: 0 })
        );
        let odd = Header {
            ring_bytes: 5000,
            ..h
        };
        assert!(odd.validate(h.total_bytes).is_err());
    }

    #[test]
    fn hot_words_sit_on_their_own_lines() {
        assert_eq!(std::mem::offset_of!(RingCtl, head), 128);
        assert_eq!(std::mem::offset_of!(RingCtl, consumer_sleeping), 256);
        assert_eq!(size_of::<RingCtl>(), 768);
    }
}
