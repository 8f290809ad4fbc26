//! **The shm transport's only unsafe code**: turning the mapped segment into typed views (the
//! header, the rings' control blocks), copying bytes in and out of the rings and prefetching
//! their cache lines. Everything above this module is safe code over [`Mapping`] and
//! [`MappedRing`].
//!
//! Rules this module keeps:
//! * No Rust reference to ring *bytes* ever exists: they are only touched by `copy_nonoverlapping`
//!   through raw pointers, in ranges bounds-checked against the ring, so a peer process writing
//!   garbage can make a message undecodable but cannot make this process read or write outside
//!   the mapping. Bytes have no invalid values.
//! * References are handed out only to atomics (the control blocks and hint words): shared
//!   memory that another process mutates is fine behind atomics, and all-zero bytes (what a fresh
//!   memfd holds) are valid atomics.
//! * Within this process each ring has one producer and one consumer (`Segment` hands each out
//!   once); which bytes each may touch is decided by the ring algorithm in `ring.rs`, checked by
//!   loom (`loom_tests.rs`).
//!
//! Under `--cfg loom` the mapping is replaced by [`HeapRing`], heap memory whose bytes are loom
//! `UnsafeCell`s, so the model checker reports any overlap between the producer's writes and the
//! consumer's reads as a data race.

#[cfg(not(loom))]
pub(crate) use mapped::{MappedRing, Mapping};

#[cfg(loom)]
pub(crate) use heap::HeapRing;

#[cfg(not(loom))]
mod mapped {
    use std::fs::File;
    use std::sync::Arc;
    use std::time::Duration;

    use memmap2::{MmapOptions, MmapRaw};
    use rustix::thread::futex;

    use crate::shm::alarm;
    use crate::shm::layout::{self, Header, HintWords, RingCtl};
    use crate::shm::ring::RingMem;
    use crate::shm::sync::AtomicU32;

    /// A shared, writable mapping of a whole segment file.
    #[derive(Debug)]
    pub(crate) struct Mapping {
        raw: MmapRaw,
    }

    impl Mapping {
        /// Maps all `len` bytes of `file` shared and writable. The caller has made sure the file
        /// cannot shrink (memfd seals) and its pages are allocated, so access cannot SIGBUS.
        pub(crate) fn new(file: &File, len: usize) -> std::io::Result<Self> {
            let raw = MmapOptions::new().len(len).map_raw(file)?;
            if raw.len() < layout::HEADER_BYTES || raw.as_ptr().align_offset(4096) != 0 {
                return Err(std::io::Error::other(
                    "segment mapping too small or misaligned",
                ));
            }
            Ok(Self { raw })
        }

        pub(crate) fn len(&self) -> usize {
            self.raw.len()
        }

        /// Writes the header (EM side, before the executor is started).
        pub(crate) fn write_header(&self, header: Header) {
            // SAFETY: offset 0 is inside the mapping (at least HEADER_BYTES long, checked in
            // `new`) and page-aligned, so aligned for `Header`; `Header` is plain `repr(C)` data.
            // The executor that reads it is started only after this write.
            unsafe {
                self.raw
                    .as_mut_ptr()
                    .cast::<Header>()
                    .write_volatile(header)
            };
        }

        /// Reads the header (executor side, once, before using anything else).
        pub(crate) fn read_header(&self) -> Header {
            // SAFETY: as in `write_header`; every bit pattern is a valid `Header` (integers only).
            unsafe { self.raw.as_ptr().cast::<Header>().read_volatile() }
        }

        /// The control block at `offset` (one of `layout::REQUEST_CTL` / `RESPONSE_CTL`).
        pub(crate) fn ctl(&self, offset: usize) -> &RingCtl {
            assert!(offset == layout::REQUEST_CTL || offset == layout::RESPONSE_CTL);
            // SAFETY: the offset is one of the two control blocks of the layout, inside the header
            // page (const-asserted in `layout`) and 128-aligned within a page-aligned mapping.
            // `RingCtl` holds only atomics, for which all-zero (a fresh memfd) and any value the
            // peer stores are valid; shared mutation through atomics is what they are for. The
            // reference lives no longer than `&self`, which keeps the mapping alive.
            unsafe { &*self.raw.as_ptr().wrapping_add(offset).cast::<RingCtl>() }
        }

        /// The hint words.
        pub(crate) fn hints(&self) -> &HintWords {
            // SAFETY: as in `ctl`, for the `HintWords` block at `layout::HINTS`.
            unsafe {
                &*self
                    .raw
                    .as_ptr()
                    .wrapping_add(layout::HINTS)
                    .cast::<HintWords>()
            }
        }
    }

    /// One ring of a mapped segment.
    #[derive(Debug, Clone)]
    pub(crate) struct MappedRing {
        map: Arc<Mapping>,
        ctl: usize,
        data: usize,
        cap: usize,
    }

    impl MappedRing {
        /// The ring whose control block is at `ctl` and bytes at `data..data + cap`.
        pub(crate) fn new(map: Arc<Mapping>, ctl: usize, data: usize, cap: usize) -> Self {
            assert!(cap.is_power_of_two() && data.checked_add(cap).is_some_and(|e| e <= map.len()));
            let _ = map.ctl(ctl);
            Self {
                map,
                ctl,
                data,
                cap,
            }
        }

        pub(crate) fn mapping(&self) -> &Mapping {
            &self.map
        }
    }

    impl RingMem for MappedRing {
        fn ctl(&self) -> &RingCtl {
            self.map.ctl(self.ctl)
        }

        fn capacity(&self) -> usize {
            self.cap
        }

        fn copy_in(&self, index: usize, src: &[u8]) {
            assert!(index <= self.cap && src.len() <= self.cap - index);
            // SAFETY: `data + index .. + src.len()` lies inside the ring's bytes, inside the
            // mapping (checked in `new` and above). `src` is our own memory, so the ranges do not
            // overlap. No reference to ring bytes exists (module rules); the ring algorithm gives
            // this producer exclusive use of the range until it publishes it.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.as_ptr(),
                    self.map.raw.as_mut_ptr().wrapping_add(self.data + index),
                    src.len(),
                );
            }
        }

        fn copy_out(&self, index: usize, dst: &mut [u8]) {
            assert!(index <= self.cap && dst.len() <= self.cap - index);
            // SAFETY: as in `copy_in`, reading a published range the producer will not touch
            // until this consumer releases it; `dst` is our own, non-overlapping memory.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.map.raw.as_ptr().wrapping_add(self.data + index),
                    dst.as_mut_ptr(),
                    dst.len(),
                );
            }
        }

        fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
            // A bounded park is ended by the alarm thread, not a kernel timer (see `alarm`).
            let ticket = timeout.and_then(|t| alarm::arm(self, alarm::Word::of(self, word)?, t));
            let timeout = if ticket.is_some() { None } else { timeout };
            let ts = timeout.map(|t| futex::Timespec {
                tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: t.subsec_nanos().into(),
            });
            // Not FUTEX_PRIVATE: the word is shared with another process. EAGAIN (the word
            // changed), EINTR and ETIMEDOUT all just end this wait; the caller re-checks.
            let _ = futex::wait(word, futex::Flags::empty(), expected, ts.as_ref());
            drop(ticket);
        }

        fn wake(&self, word: &AtomicU32) {
            let _ = futex::wake(word, futex::Flags::empty(), 1);
        }

        fn prefetch_for_write(&self, index: usize, len: usize) {
            assert!(index <= self.cap && len <= self.cap - index);
            let start = self.map.raw.as_ptr().wrapping_add(self.data + index);
            for offset in (0..len).step_by(64) {
                prefetch_line_for_write(start.wrapping_add(offset));
            }
        }
    }

    /// Whether the CPU has `PREFETCHW` (CPUID 8000_0001h ECX bit 8): every AMD64 CPU and Intel's
    /// since Broadwell. Elsewhere the opcode is not promised to be harmless, so it is not used.
    #[cfg(target_arch = "x86_64")]
    fn has_prefetchw() -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            use std::arch::x86_64::__cpuid;
            // Leaf 8000_0000h says whether leaf 8000_0001h exists.
            __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
        })
    }

    /// Asks the CPU to fetch the cache line holding `p` for writing. (`_mm_prefetch`'s write hint
    /// turns into a read prefetch unless the whole build targets `prfchw`, hence the asm.)
    #[inline]
    fn prefetch_line_for_write(p: *const u8) {
        #[cfg(target_arch = "x86_64")]
        if has_prefetchw() {
            // SAFETY: a prefetch reads and writes no memory, cannot fault (not even on an
            // unmapped address) and changes no register or flag; the CPU has the instruction.
            unsafe {
                std::arch::asm!(
                    "prefetchw [{0}]",
                    in(reg) p,
                    options(nostack, preserves_flags, readonly)
                );
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }
}

#[cfg(loom)]
mod heap {
    use std::time::Duration;

    use loom::cell::UnsafeCell;
    use loom::sync::{Arc, Condvar, Mutex};

    use crate::shm::layout::RingCtl;
    use crate::shm::ring::RingMem;
    use crate::shm::sync::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Inner {
        ctl: RingCtl,
        bytes: Box<[UnsafeCell<u8>]>,
        // Models the kernel's futex bucket: the value check and the sleep are atomic with
        // respect to a wake.
        lock: Mutex<()>,
        cond: Condvar,
    }

    /// A ring in heap memory for the model checker; clones share the ring.
    #[derive(Debug, Clone)]
    pub(crate) struct HeapRing(Arc<Inner>);

    impl HeapRing {
        pub(crate) fn new(cap: usize) -> Self {
            Self(Arc::new(Inner {
                ctl: RingCtl::default(),
                bytes: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
                lock: Mutex::new(()),
                cond: Condvar::new(),
            }))
        }
    }

    impl RingMem for HeapRing {
        fn ctl(&self) -> &RingCtl {
            &self.0.ctl
        }

        fn capacity(&self) -> usize {
            self.0.bytes.len()
        }

        fn copy_in(&self, index: usize, src: &[u8]) {
            for (cell, b) in self.0.bytes[index..index + src.len()].iter().zip(src) {
                // SAFETY: loom checks this access: two threads touching one byte without a
                // happens-before relation fail the model instead of being UB.
                cell.with_mut(|p| unsafe { *p = *b });
            }
        }

        fn copy_out(&self, index: usize, dst: &mut [u8]) {
            for (cell, b) in self.0.bytes[index..index + dst.len()].iter().zip(dst) {
                // SAFETY: as in `copy_in`.
                *b = cell.with(|p| unsafe { *p });
            }
        }

        fn wait(&self, word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
            // Timeouts are not modelled: a lost wake-up must show up as a deadlock.
            let guard = self.0.lock.lock().unwrap();
            if word.fetch_add(0, Ordering::SeqCst) == expected {
                drop(self.0.cond.wait(guard).unwrap());
            }
        }

        fn wake(&self, _word: &AtomicU32) {
            let _guard = self.0.lock.lock().unwrap();
            self.0.cond.notify_all();
        }
    }
}
