//! A message's lengths are read from a peer that may lie: decoding a short message that claims a
//! huge string or byte buffer must fail without allocating for the claim. A counting allocator
//! records the largest single allocation made while decoding.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use silk_ipc::codec;
use silk_ipc::{Request, Response};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only records
// sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// bincode's varint prefix for a u64 length.
fn varint_u64(n: u64) -> Vec<u8> {
    let mut out = vec![0xfd];
    out.extend_from_slice(&n.to_le_bytes());
    out
}

#[test]
fn lying_lengths_allocate_nothing_for_their_claim() {
    let claim: u64 = 3 << 30;
    // An Execute request whose package name claims 3 GiB.
    let mut execute = vec![0u8];
    execute.extend(varint_u64(claim));
    execute.extend_from_slice(b"short");
    // A success response whose outputs claim 3 GiB.
    let mut success = vec![0u8, 0];
    success.extend(varint_u64(claim));
    success.extend_from_slice(&[0; 16]);
    LARGEST.store(0, Ordering::Relaxed);
    assert!(codec::decode::<Request>(&execute).is_err());
    assert!(codec::decode::<Response>(&success).is_err());
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 2 << 20,
        "decoding two messages of {} and {} bytes allocated {largest} bytes at once",
        execute.len(),
        success.len()
    );
}
