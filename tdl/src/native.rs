//! The native C ABI of a package: the `repr(C)` types that cross it and the functions the
//! `package!` exports call. All of the TDL's unsafe code lives here.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::abi::{STATUS_OK, STATUS_PANICKED, STATUS_TASK_ERROR, panic_message};
use crate::context::TaskContext;
use crate::error::TdlError;
use crate::task::{TaskFn, dispatch};

/// A borrowed byte slice passed across the ABI.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BytesRef {
    /// Start of the bytes; may be dangling or null when `len` is 0.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl BytesRef {
    /// Borrows `s` for a call.
    #[must_use]
    pub fn new(s: &[u8]) -> Self {
        Self {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The bytes.
    ///
    /// # Safety
    /// Unless `len` is 0, `ptr` must point to `len` initialised bytes that stay valid and unchanged
    /// for `'a`.
    #[must_use]
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees `ptr` points to `len` valid bytes living for `'a`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A buffer allocated by the package and handed to the executor, which must return it to
/// `silk_package_free`.
#[repr(C)]
#[derive(Debug)]
pub struct OwnedBuf {
    /// Start of the allocation.
    pub ptr: *mut u8,
    /// Initialised bytes.
    pub len: usize,
    /// Allocated capacity.
    pub cap: usize,
}

impl OwnedBuf {
    fn from_vec(v: Vec<u8>) -> Self {
        let mut v = std::mem::ManuallyDrop::new(v);
        Self {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
        }
    }
}

/// The result of `silk_package_init` or `silk_package_execute`.
#[repr(C)]
#[derive(Debug)]
pub struct CallResult {
    /// One of the `STATUS_*` codes in [`crate::abi`].
    pub status: u32,
    /// The output frame, the MessagePack `TdlError` or the panic message.
    pub buf: OwnedBuf,
}

impl CallResult {
    fn new(status: u32, bytes: Vec<u8>) -> Self {
        Self {
            status,
            buf: OwnedBuf::from_vec(bytes),
        }
    }

    fn from_outcome(outcome: std::thread::Result<Result<Vec<u8>, TdlError>>) -> Self {
        match outcome {
            Ok(Ok(out)) => Self::new(STATUS_OK, out),
            Ok(Err(e)) => Self::new(STATUS_TASK_ERROR, e.to_msgpack()),
            Err(payload) => Self::new(STATUS_PANICKED, panic_message(&*payload).into_bytes()),
        }
    }
}

/// Body of `silk_package_execute`: decodes the name and context, dispatches, catches panics.
///
/// # Safety
/// Each `BytesRef` must satisfy the contract of [`BytesRef::as_slice`] for the whole call.
#[must_use]
pub unsafe fn execute(
    table: &[(&str, TaskFn)],
    name: BytesRef,
    context: BytesRef,
    inputs: BytesRef,
) -> CallResult {
    // SAFETY: forwarded from this function's contract.
    let name = unsafe { name.as_slice() };
    // SAFETY: forwarded from this function's contract.
    let context = unsafe { context.as_slice() };
    // SAFETY: forwarded from this function's contract.
    let inputs = unsafe { inputs.as_slice() };
    CallResult::from_outcome(catch_unwind(AssertUnwindSafe(|| {
        let name = std::str::from_utf8(name)
            .map_err(|_| TdlError::Deserialization("task name is not valid UTF-8".into()))?;
        let ctx = TaskContext::from_msgpack(context)?;
        dispatch(table, name, ctx, inputs)
    })))
}

/// Body of `silk_package_init`: runs the hook, catching panics.
#[must_use]
pub fn init(hook: fn() -> Result<(), TdlError>) -> CallResult {
    CallResult::from_outcome(catch_unwind(hook).map(|r| r.map(|()| Vec::new())))
}

/// Body of `silk_package_free`.
///
/// # Safety
/// `buf` must come from a [`CallResult`] returned by this package and not be freed before.
pub unsafe fn free(buf: OwnedBuf) {
    // SAFETY: `buf` was made by `OwnedBuf::from_vec` in this package (same allocator), and the
    // caller guarantees it is freed once; ptr/len/cap are exactly those of that Vec.
    drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
}

/// The `silk_package_name` (and `silk_package_tasks`) result for a static string.
#[must_use]
pub const fn name_ref(name: &'static str) -> BytesRef {
    BytesRef {
        ptr: name.as_ptr(),
        len: name.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameWriter;

    fn take(r: CallResult) -> (u32, Vec<u8>) {
        let bytes = {
            // SAFETY: the buffer was just returned by this module and is read before it is freed.
            let s = unsafe {
                BytesRef {
                    ptr: r.buf.ptr,
                    len: r.buf.len,
                }
                .as_slice()
            };
            s.to_vec()
        };
        // SAFETY: returned by this module, freed once.
        unsafe { free(r.buf) };
        (r.status, bytes)
    }

    fn table() -> Vec<(&'static str, TaskFn)> {
        vec![
            ("ok", |_, inputs| Ok(inputs.to_vec())),
            ("err", |_, _| Err(TdlError::Execution("boom".into()))),
            ("panic", |_, _| panic!("kaput {}", 7)),
        ]
    }

    fn call(name: &str) -> (u32, Vec<u8>) {
        let ctx = TaskContext::standalone().to_msgpack();
        let inputs = FrameWriter::new().finish();
        // SAFETY: all three slices outlive the call.
        take(unsafe {
            execute(
                &table(),
                BytesRef::new(name.as_bytes()),
                BytesRef::new(&ctx),
                BytesRef::new(&inputs),
            )
        })
    }

    #[test]
    fn statuses() {
        assert_eq!(call("ok"), (STATUS_OK, vec![0, 0, 0, 0]));
        let (s, b) = call("err");
        assert_eq!(s, STATUS_TASK_ERROR);
        assert_eq!(
            TdlError::from_msgpack(&b).unwrap(),
            TdlError::Execution("boom".into())
        );
        assert_eq!(call("panic"), (STATUS_PANICKED, b"kaput 7".to_vec()));
        let (s, b) = call("nope");
        assert_eq!(s, STATUS_TASK_ERROR);
        assert_eq!(
            TdlError::from_msgpack(&b).unwrap(),
            TdlError::TaskNotFound(r#""nope"; the package's tasks: err, ok, panic"#.into())
        );
    }

    #[test]
    fn init_catches_panics() {
        assert_eq!(take(init(|| Ok(()))).0, STATUS_OK);
        assert_eq!(
            take(init(|| Err(TdlError::Custom("x".into())))).0,
            STATUS_TASK_ERROR
        );
        assert_eq!(
            take(init(|| panic!("in init"))),
            (STATUS_PANICKED, b"in init".to_vec())
        );
    }

    #[test]
    fn empty_ref_needs_no_pointer() {
        let empty = BytesRef {
            ptr: std::ptr::null(),
            len: 0,
        };
        // SAFETY: len 0 never dereferences the pointer.
        let slice = unsafe { empty.as_slice() };
        assert!(slice.is_empty());
    }
}
