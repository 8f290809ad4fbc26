//! The package ABI shared by the native (`.so`) and wasm builds: its version, the exported
//! symbol names and the status codes of a call.
//!
//! The wasm guest ABI uses the same version, statuses and symbol names plus an allocator pair and
//! a panic import; it is specified in `docs/wasm-abi.md` and implemented by `crate::wasm`.
//!
//! The native C ABI (see `crate::native` for the types that cross it):
//!
//! | symbol | signature | notes |
//! |---|---|---|
//! | `silk_abi_version` | `() -> u32` | checked by the executor before any other symbol |
//! | `silk_package_name` | `() -> BytesRef` | UTF-8, static |
//! | `silk_package_tasks` | `() -> BytesRef` | optional; the task list (JSON, UTF-8), static |
//! | `silk_package_init` | `() -> CallResult` | optional; run once, before the first task |
//! | `silk_package_execute` | `(name, context, inputs: BytesRef) -> CallResult` | dispatch by task name |
//! | `silk_package_free` | `(OwnedBuf)` | frees a buffer returned by init or execute |
//!
//! A `native::CallResult` carries a status and a buffer owned by the
//! package: on [`STATUS_OK`] the output frame, on [`STATUS_TASK_ERROR`] a MessagePack
//! [`TdlError`](crate::TdlError), on [`STATUS_PANICKED`] the panic message as UTF-8. The
//! executor copies the buffer and hands it back to `silk_package_free`, so the package's
//! allocator is never mixed with the executor's.
//!
//! ## The task list
//!
//! `silk_package_tasks` (in both ABIs) describes the package's tasks as one JSON object, built at
//! compile time by `package!` from the `#[task]` signatures:
//!
//! ```json
//! {"version":1,"tasks":[{"name":"fibonacci","inputs":[{"name":"n","type":"u64"}],"outputs":["u64"]}]}
//! ```
//!
//! `version` is [`TASK_LIST_VERSION`]. Per task: its name, its inputs in order (parameter name
//! and Rust type as written, context excluded) and the Rust types of its outputs in order (one
//! per tuple element, none for `()`). The export is optional and additive: packages built before
//! it existed, or written without the TDL, still load and run under [`ABI_VERSION`] 1; tools then
//! report that the task list is not exported.

/// Version of the package ABI. An executor refuses a package built for another version.
pub const ABI_VERSION: u32 = 1;

/// The call succeeded; the buffer is the output frame.
pub const STATUS_OK: u32 = 0;
/// The task returned an error; the buffer is a MessagePack `TdlError`.
pub const STATUS_TASK_ERROR: u32 = 1;
/// The task panicked; the buffer is the panic message.
pub const STATUS_PANICKED: u32 = 2;

/// Exported symbol: the ABI version.
pub const SYM_ABI_VERSION: &str = "silk_abi_version";
/// Exported symbol: the package name.
pub const SYM_PACKAGE_NAME: &str = "silk_package_name";
/// Exported symbol (optional): the package's task list, JSON (see the module docs).
pub const SYM_PACKAGE_TASKS: &str = "silk_package_tasks";
/// Version of the task list format (its `version` field).
pub const TASK_LIST_VERSION: u32 = 1;
/// Exported symbol (optional): the init hook.
pub const SYM_INIT: &str = "silk_package_init";
/// Exported symbol: run a task by name.
pub const SYM_EXECUTE: &str = "silk_package_execute";
/// Exported symbol: free a returned buffer.
pub const SYM_FREE: &str = "silk_package_free";

/// Wasm export: allocate `len` bytes in guest memory, `(i32) -> i32`.
pub const WASM_SYM_ALLOC: &str = "silk_alloc";
/// Wasm export: free a buffer from `silk_alloc` or a call result, `(ptr: i32, len: i32) -> ()`.
pub const WASM_SYM_FREE: &str = "silk_free";
/// Wasm export: the guest's linear memory.
pub const WASM_SYM_MEMORY: &str = "memory";
/// Wasm export (optional): the WASI reactor initialiser, called once per instance first.
pub const WASM_SYM_INITIALIZE: &str = "_initialize";
/// Wasm import module the host provides to guests (optional for a guest to import).
pub const WASM_IMPORT_MODULE: &str = "silk";
/// Wasm import `silk.panic(ptr: i32, len: i32) -> ()`: hands the host a panic message before the
/// guest traps (Rust guests on wasm abort on panic, so the message cannot be returned).
pub const WASM_IMPORT_PANIC: &str = "panic";

/// Whether `name` is a valid package name: 1 to 128 ASCII letters, digits, `_` or `-`.
///
/// Package names become file names, so nothing else (no `/`, no `.`) is allowed.
#[must_use]
pub const fn is_valid_package_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 128 {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

/// Turns a panic payload into its message.
#[must_use]
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        for ok in ["fixtures", "a", "my-pkg_2", &"x".repeat(128)] {
            assert!(is_valid_package_name(ok), "{ok}");
        }
        for bad in ["", "../etc", "a/b", "a.b", "a b", "é", &"x".repeat(129)] {
            assert!(!is_valid_package_name(bad), "{bad}");
        }
    }
}
