//! # silk-tdl — the Task Definition Library
//!
//! What a silk task package is written against. A package is an ordinary Rust library: mark
//! free functions with [`#[task]`](macro@task) and list them once in [`package!`]. The same source
//! builds as a native shared library (`cdylib`, run by `silk-executor-native` for trusted
//! packages) and as a `wasm32-wasip1` module (run sandboxed by the wasm executor).
//!
//! This crate sits at the bottom of silk: it has no runtime dependencies (no tokio, no I/O) and
//! also compiles for `wasm32-wasip1`.
//!
//! ```
//! use silk_tdl::{task, TaskContext, TdlError};
//!
//! /// Adds two numbers (two inputs, one output).
//! #[task]
//! fn add(_ctx: TaskContext, a: i64, b: i64) -> Result<i64, TdlError> {
//!     Ok(a + b)
//! }
//!
//! /// Splits a number (one input, two outputs); the name is set explicitly.
//! #[task(name = "math::divmod")]
//! fn divmod(_ctx: &TaskContext, a: i64, b: i64) -> Result<(i64, i64), TdlError> {
//!     if b == 0 {
//!         return Err(TdlError::Execution("division by zero".into()));
//!     }
//!     Ok((a / b, a % b))
//! }
//!
//! silk_tdl::package! { name: "math", tasks: [add, divmod] }
//!
//! // The functions stay ordinary functions...
//! assert_eq!(add(TaskContext::standalone(), 2, 3), Ok(5));
//! // ...and each also has a `Task` impl that works on framed MessagePack values.
//! use silk_tdl::{frame::FrameWriter, Task};
//! let mut inputs = FrameWriter::new();
//! inputs.push(&7i64).unwrap();
//! inputs.push(&2i64).unwrap();
//! let out = <divmod as Task>::call(TaskContext::standalone(), &inputs.finish()).unwrap();
//! let values = silk_tdl::frame::decode(&out).unwrap();
//! assert_eq!(silk_tdl::frame::value::<i64>(values[1], 1).unwrap(), 1);
//! assert_eq!(<divmod as Task>::NAME, "math::divmod");
//! ```
//!
//! ## Rules `#[task]` enforces at compile time
//!
//! The first parameter is the [`TaskContext`] (by value or by reference); the other parameters
//! are the task's inputs, each any serde type; the return type is `Result<T, TdlError>` where `T`
//! is a tuple (that many outputs, written literally as a tuple), `()` (no outputs) or any other
//! type (one output).
//!
//! ```compile_fail
//! // No context parameter.
//! #[silk_tdl::task]
//! fn f(a: i64) -> Result<i64, silk_tdl::TdlError> { Ok(a) }
//! ```
//! ```compile_fail
//! // The first parameter is not the context.
//! #[silk_tdl::task]
//! fn f(a: i64, ctx: silk_tdl::TaskContext) -> Result<i64, silk_tdl::TdlError> { Ok(a) }
//! ```
//! ```compile_fail
//! // Not a Result.
//! #[silk_tdl::task]
//! fn f(_ctx: silk_tdl::TaskContext) -> i64 { 1 }
//! ```
//! ```compile_fail
//! // Unknown attribute argument.
//! #[silk_tdl::task(nmae = "x")]
//! fn f(_ctx: silk_tdl::TaskContext) -> Result<(), silk_tdl::TdlError> { Ok(()) }
//! ```
//! ```compile_fail
//! // Duplicate task names in one package.
//! #[silk_tdl::task(name = "same")]
//! fn a(_ctx: silk_tdl::TaskContext) -> Result<(), silk_tdl::TdlError> { Ok(()) }
//! #[silk_tdl::task(name = "same")]
//! fn b(_ctx: silk_tdl::TaskContext) -> Result<(), silk_tdl::TdlError> { Ok(()) }
//! silk_tdl::package! { name: "dup", tasks: [a, b] }
//! ```
//! ```compile_fail
//! // A package name that is not a file-name-safe identifier.
//! #[silk_tdl::task]
//! fn a(_ctx: silk_tdl::TaskContext) -> Result<(), silk_tdl::TdlError> { Ok(()) }
//! silk_tdl::package! { name: "../evil", tasks: [a] }
//! ```

pub mod abi;
mod context;
mod error;
pub mod frame;
mod ids;
mod mismatch;
#[cfg(not(target_family = "wasm"))]
pub mod native;
mod task;
#[cfg(target_family = "wasm")]
#[doc(hidden)]
pub mod wasm;

pub use context::{TaskContext, TaskId};
pub use error::TdlError;
pub use ids::{JobId, ResourceGroupId, TaskInstanceId};
pub use silk_tdl_macros::task;
pub use task::{Task, TaskFn};

/// Items used by the expansion of `#[task]` and `package!`. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::frame::FrameWriter;
    #[cfg(not(target_family = "wasm"))]
    pub use crate::native;
    pub use crate::task::{
        assert_context, assert_unique_names, dispatch, input, output, split_inputs,
        task_list_bytes, task_list_len, task_list_str,
    };
    #[cfg(target_family = "wasm")]
    pub use crate::wasm;

    /// Compile-time check of a package name.
    pub const fn assert_package_name(name: &str) {
        assert!(
            crate::abi::is_valid_package_name(name),
            "silk_tdl::package!: a package name is 1-128 ASCII letters, digits, `_` or `-`"
        );
    }
}

/// Declares the package: its name, an optional init hook and its tasks, and emits the package
/// ABI (the native C exports, or the wasm exports of `docs/wasm-abi.md` when built for wasm).
///
/// Besides the dispatch table it emits the package's task list (`silk_package_tasks`, JSON built
/// at compile time from the `#[task]` signatures; format in [`abi`]), which tools such as
/// `silk package inspect` read without running any task or the init hook.
///
/// ```ignore
/// silk_tdl::package! {
///     name: "fixtures",
///     init: init_hook,            // optional: fn() -> Result<(), TdlError>, run once before the first task
///     tasks: [fibonacci, always_fail],
/// }
/// ```
///
/// Use it once per crate, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! package {
    (name: $name:literal, init: $init:path, tasks: [$($task:path),* $(,)?] $(,)?) => {
        $crate::package!(@emit $name, [$($task),*]);
        #[cfg(not(target_family = "wasm"))]
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn silk_package_init() -> $crate::__private::native::CallResult {
            $crate::__private::native::init($init)
        }
        #[cfg(target_family = "wasm")]
        $crate::__silk_wasm_exports!(init: $init);
    };
    (name: $name:literal, tasks: [$($task:path),* $(,)?] $(,)?) => {
        $crate::package!(@emit $name, [$($task),*]);
    };
    (@emit $name:literal, [$($task:path),*]) => {
        const _: () = $crate::__private::assert_package_name($name);
        const _: () = $crate::__private::assert_unique_names(&[$(<$task as $crate::Task>::NAME),*]);

        /// The package's dispatch table: task name to entry point.
        #[doc(hidden)]
        pub static SILK_PACKAGE_TASKS: &[(&str, $crate::TaskFn)] =
            &[$((<$task as $crate::Task>::NAME, <$task as $crate::Task>::call)),*];

        /// The package's name.
        #[doc(hidden)]
        pub const SILK_PACKAGE_NAME: &str = $name;

        /// The package's task list (JSON, see `silk_tdl::abi`), built at compile time.
        #[doc(hidden)]
        pub static SILK_PACKAGE_TASK_LIST: &str = {
            const SIGNATURES: &[&str] = &[$(<$task as $crate::Task>::SIGNATURE),*];
            const BYTES: [u8; $crate::__private::task_list_len(SIGNATURES)] =
                $crate::__private::task_list_bytes(SIGNATURES);
            $crate::__private::task_list_str(&BYTES)
        };

        #[cfg(target_family = "wasm")]
        $crate::__silk_wasm_exports!(package: $name);

        #[cfg(not(target_family = "wasm"))]
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn silk_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        #[cfg(not(target_family = "wasm"))]
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn silk_package_name() -> $crate::__private::native::BytesRef {
            $crate::__private::native::name_ref($name)
        }

        #[cfg(not(target_family = "wasm"))]
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn silk_package_tasks() -> $crate::__private::native::BytesRef {
            $crate::__private::native::name_ref(SILK_PACKAGE_TASK_LIST)
        }

        /// # Safety
        /// Each argument must point to `len` readable bytes for the duration of the call.
        #[cfg(not(target_family = "wasm"))]
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn silk_package_execute(
            name: $crate::__private::native::BytesRef,
            context: $crate::__private::native::BytesRef,
            inputs: $crate::__private::native::BytesRef,
        ) -> $crate::__private::native::CallResult {
            // SAFETY: the executor passes slices valid for the call (this function's contract).
            unsafe { $crate::__private::native::execute(SILK_PACKAGE_TASKS, name, context, inputs) }
        }

        /// # Safety
        /// `buf` must be a buffer returned by this package's init or execute, freed only once.
        #[cfg(not(target_family = "wasm"))]
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn silk_package_free(buf: $crate::__private::native::OwnedBuf) {
            // SAFETY: forwarded from this function's contract.
            unsafe { $crate::__private::native::free(buf) }
        }
    };
}
