//! The guest side of the wasm package ABI (specified in `docs/wasm-abi.md`): the functions the
//! exports of [`package!`](crate::package) call when a package is built for `wasm32-wasip1`, and
//! the macro that emits those exports. All of the TDL's guest-side unsafe code lives here.
//!
//! Memory contract in short: every buffer that crosses the boundary lives in the guest's linear
//! memory and comes from the guest's allocator. The host gets input space with `silk_alloc`,
//! writes the task name, context and inputs there and lends them to `silk_package_execute` for the
//! call; the call writes `(ptr, len)` of its result buffer into an 8-byte record the host provides.
//! A host that keeps the instance frees both with `silk_free`; a host that drops the instance after
//! the call (silk's host does, one fresh instance per task) need not free anything.
//!
//! Rust guests on `wasm32-wasip1` abort on panic (`panic=abort`), so a panic cannot be returned as
//! a status. Instead a panic hook hands the message to the host through the `silk.panic` import,
//! then the guest aborts (a wasm `unreachable` trap) and the host reports `Panicked` with it.

use std::alloc::{Layout, alloc as raw_alloc, dealloc};
use std::sync::Once;

use crate::abi::{STATUS_OK, STATUS_TASK_ERROR};
use crate::context::TaskContext;
use crate::error::TdlError;
use crate::task::{TaskFn, dispatch};

#[link(wasm_import_module = "silk")]
unsafe extern "C" {
    /// `silk.panic(ptr, len)`: the host copies the UTF-8 panic message out of guest memory.
    #[link_name = "panic"]
    fn silk_host_panic(ptr: *const u8, len: usize);
}

static PANIC_HOOK: Once = Once::new();

/// Installs (once per instance) the hook that hands a panic message to the host before the
/// abort, then runs the default hook (which prints the message and location to stderr).
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload_as_str()
                .unwrap_or("panic with a non-string payload");
            // SAFETY: `message` is a live, initialised UTF-8 slice for the whole call; the host
            // only reads `len` bytes from `ptr` (docs/wasm-abi.md, `silk.panic`).
            unsafe { silk_host_panic(message.as_ptr(), message.len()) };
            default(info);
        }));
    });
}

/// Body of `silk_alloc`: `len` bytes (alignment 1), null when the allocation fails, a dangling
/// non-null pointer for `len == 0`.
#[must_use]
pub fn alloc(len: usize) -> *mut u8 {
    if len == 0 {
        return std::ptr::NonNull::<u8>::dangling().as_ptr();
    }
    match Layout::array::<u8>(len) {
        // SAFETY: the layout has a non-zero size (checked above).
        Ok(layout) => unsafe { raw_alloc(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

/// Body of `silk_free`.
///
/// # Safety
/// `ptr`/`len` must be a buffer returned by [`alloc`] or handed out as a call result by this
/// module, with exactly that length, and not freed before.
pub unsafe fn free(ptr: *mut u8, len: usize) {
    if len == 0 || ptr.is_null() {
        return;
    }
    if let Ok(layout) = Layout::array::<u8>(len) {
        // SAFETY: per this function's contract the buffer was allocated with this very layout
        // (`alloc`, or a `Box<[u8]>` of `len` bytes in `hand_out`) and is freed once.
        unsafe { dealloc(ptr, layout) };
    }
}

/// Borrows `len` bytes at `ptr`.
///
/// # Safety
/// Unless `len` is 0, `ptr` must point to `len` initialised bytes that stay unchanged for `'a`.
unsafe fn borrow<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// Writes the result record `(ptr u32 LE, len u32 LE)` to `out`.
///
/// # Safety
/// `out` must point to 8 writable bytes (no alignment needed).
unsafe fn write_record(out: *mut u8, ptr: *const u8, len: usize) {
    let mut record = [0u8; 8];
    // wasm32 addresses and lengths are 32-bit, so these conversions never saturate there.
    record[..4].copy_from_slice(&u32::try_from(ptr.addr()).unwrap_or(u32::MAX).to_le_bytes());
    record[4..].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    // SAFETY: `out` points to 8 writable bytes (this function's contract); `record` is a distinct
    // local, so the ranges cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping(record.as_ptr(), out, record.len()) };
}

/// Leaks `bytes` as a boxed slice (freeable with [`free`]) and records it in `out`.
///
/// # Safety
/// As [`write_record`].
unsafe fn hand_out(out: *mut u8, bytes: Vec<u8>) {
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len();
    let ptr = Box::into_raw(boxed).cast::<u8>();
    // SAFETY: forwarded from this function's contract.
    unsafe { write_record(out, ptr, len) };
}

fn status_of(outcome: Result<Vec<u8>, TdlError>) -> (u32, Vec<u8>) {
    match outcome {
        Ok(bytes) => (STATUS_OK, bytes),
        Err(e) => (STATUS_TASK_ERROR, e.to_msgpack()),
    }
}

/// Body of `silk_package_name`: records the static name in `out` (not to be freed).
///
/// # Safety
/// `out` must point to 8 writable bytes.
pub unsafe fn package_name(name: &'static str, out: *mut u8) {
    // SAFETY: forwarded from this function's contract; the name is static.
    unsafe { write_record(out, name.as_ptr(), name.len()) };
}

/// Body of `silk_package_tasks`: records the static task list (JSON) in `out` (not to be freed).
///
/// # Safety
/// `out` must point to 8 writable bytes.
pub unsafe fn package_tasks(list: &'static str, out: *mut u8) {
    // SAFETY: forwarded from this function's contract; the list is static.
    unsafe { write_record(out, list.as_ptr(), list.len()) };
}

/// Body of `silk_package_init`: runs the hook and records its result buffer (empty on success,
/// a MessagePack `TdlError` on failure).
///
/// # Safety
/// `out` must point to 8 writable bytes.
pub unsafe fn init(hook: fn() -> Result<(), TdlError>, out: *mut u8) -> u32 {
    install_panic_hook();
    let (status, bytes) = status_of(hook().map(|()| Vec::new()));
    // SAFETY: forwarded from this function's contract.
    unsafe { hand_out(out, bytes) };
    status
}

/// Body of `silk_package_execute`: decodes the name and context, dispatches and records the
/// output frame (or the MessagePack `TdlError`) in `out`.
///
/// # Safety
/// Each `(ptr, len)` pair must satisfy the contract of `borrow` for the whole call (the host
/// wrote them into buffers from `silk_alloc`), and `out` must point to 8 writable bytes that do
/// not overlap them.
#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the flat wasm export signature"
)]
pub unsafe fn execute(
    table: &[(&str, TaskFn)],
    name: *const u8,
    name_len: usize,
    context: *const u8,
    context_len: usize,
    inputs: *const u8,
    inputs_len: usize,
    out: *mut u8,
) -> u32 {
    install_panic_hook();
    // SAFETY: forwarded from this function's contract.
    let name = unsafe { borrow(name, name_len) };
    // SAFETY: forwarded from this function's contract.
    let context = unsafe { borrow(context, context_len) };
    // SAFETY: forwarded from this function's contract.
    let inputs = unsafe { borrow(inputs, inputs_len) };
    let outcome = std::str::from_utf8(name)
        .map_err(|_| TdlError::Deserialization("task name is not valid UTF-8".into()))
        .and_then(|name| {
            let ctx = TaskContext::from_msgpack(context)?;
            dispatch(table, name, ctx, inputs)
        });
    let (status, bytes) = status_of(outcome);
    // SAFETY: forwarded from this function's contract.
    unsafe { hand_out(out, bytes) };
    status
}

/// Emits the wasm exports of a package (used by [`package!`](crate::package) on wasm targets).
/// Not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! __silk_wasm_exports {
    (package: $name:literal) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn silk_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn silk_alloc(len: usize) -> *mut u8 {
            $crate::__private::wasm::alloc(len)
        }

        /// # Safety
        /// `ptr`/`len` must come from `silk_alloc` or a call result of this package, freed once.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn silk_free(ptr: *mut u8, len: usize) {
            // SAFETY: forwarded from this function's contract (docs/wasm-abi.md).
            unsafe { $crate::__private::wasm::free(ptr, len) }
        }

        /// # Safety
        /// `out` must point to 8 writable bytes of guest memory.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn silk_package_name(out: *mut u8) {
            // SAFETY: forwarded from this function's contract (docs/wasm-abi.md).
            unsafe { $crate::__private::wasm::package_name($name, out) }
        }

        /// # Safety
        /// `out` must point to 8 writable bytes of guest memory.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn silk_package_tasks(out: *mut u8) {
            // SAFETY: forwarded from this function's contract (docs/wasm-abi.md).
            unsafe { $crate::__private::wasm::package_tasks(SILK_PACKAGE_TASK_LIST, out) }
        }

        /// # Safety
        /// Each `(ptr, len)` pair must be initialised guest memory from `silk_alloc`, and `out`
        /// 8 writable bytes that overlap none of them.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn silk_package_execute(
            name: *const u8,
            name_len: usize,
            context: *const u8,
            context_len: usize,
            inputs: *const u8,
            inputs_len: usize,
            out: *mut u8,
        ) -> u32 {
            // SAFETY: forwarded from this function's contract (docs/wasm-abi.md).
            unsafe {
                $crate::__private::wasm::execute(
                    SILK_PACKAGE_TASKS,
                    name,
                    name_len,
                    context,
                    context_len,
                    inputs,
                    inputs_len,
                    out,
                )
            }
        }
    };
    (init: $init:path) => {
        /// # Safety
        /// `out` must point to 8 writable bytes of guest memory.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn silk_package_init(out: *mut u8) -> u32 {
            // SAFETY: forwarded from this function's contract (docs/wasm-abi.md).
            unsafe { $crate::__private::wasm::init($init, out) }
        }
    };
}
