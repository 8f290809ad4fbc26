//! Loading a native package (`lib<name>.so`) and calling into it over the C ABI of
//! `silk_tdl::abi`. All of the executor's unsafe code lives here, behind [`Package`].
//!
//! Packages are trusted code: loading one runs its initialisers, and a package can do anything
//! the executor process can. The checks here protect against mistakes (wrong file, other ABI
//! version, wrong name), not against malice; untrusted packages run in the wasm sandbox.

use std::path::Path;

use libloading::{Library, Symbol};
use silk_ipc::TaskFailure;
use silk_tdl::TdlError;
use silk_tdl::abi::{self, ABI_VERSION, STATUS_OK, STATUS_PANICKED, STATUS_TASK_ERROR};
use silk_tdl::native::{BytesRef, CallResult, OwnedBuf};

type AbiVersionFn = unsafe extern "C" fn() -> u32;
type NameFn = unsafe extern "C" fn() -> BytesRef;
type InitFn = unsafe extern "C" fn() -> CallResult;
type ExecuteFn = unsafe extern "C" fn(BytesRef, BytesRef, BytesRef) -> CallResult;
type FreeFn = unsafe extern "C" fn(OwnedBuf);

/// A loaded, initialised package.
#[derive(Debug)]
pub struct Package {
    name: String,
    execute: ExecuteFn,
    free: FreeFn,
    // Keeps the code the function pointers point into mapped. Never unloaded before the process
    // exits (unloading Rust cdylibs with thread-locals is unsound in practice).
    _lib: Library,
}

fn symbol<T: Copy>(lib: &Library, path: &Path, name: &str) -> Result<T, TaskFailure> {
    // SAFETY: every caller names a symbol of the silk ABI and asks for the exact function type
    // that `silk_tdl::package!` exports under that name; the ABI version was checked first.
    let sym: Result<Symbol<'_, T>, _> = unsafe { lib.get(name.as_bytes()) };
    sym.map(|s| *s).map_err(|e| {
        TaskFailure::package(format!("{}: missing symbol `{name}`: {e}", path.display()))
    })
}

impl Package {
    /// Loads `path`, checks its ABI version (before any other symbol) and its name, and runs its
    /// init hook.
    ///
    /// # Errors
    /// [`TaskFailure::Package`] naming what is wrong: an unloadable file, a missing symbol, another
    /// ABI version, a name other than `expected_name`, or a failing (or panicking) init hook.
    pub fn load(path: &Path, expected_name: &str) -> Result<Self, TaskFailure> {
        // SAFETY: loading runs the library's initialisers. Native packages are trusted code by
        // policy (only allow-listed packages run natively), and this runs in the executor child
        // process, never in the EM.
        let lib = unsafe { Library::new(path) }.map_err(|e| {
            TaskFailure::package(format!(
                "cannot load {}: {}",
                path.display(),
                error_chain(&e)
            ))
        })?;

        let version: AbiVersionFn = symbol(&lib, path, abi::SYM_ABI_VERSION)?;
        // SAFETY: `silk_abi_version` takes no arguments and returns a u32 in every ABI version.
        let version = unsafe { version() };
        if version != ABI_VERSION {
            return Err(TaskFailure::package(format!(
                "{}: package ABI version {version} is not supported (this executor speaks version {ABI_VERSION})",
                path.display()
            )));
        }

        let name_fn: NameFn = symbol(&lib, path, abi::SYM_PACKAGE_NAME)?;
        // SAFETY: ABI v1 `silk_package_name` takes nothing and returns a view of a static string.
        let name = unsafe { name_fn() };
        // SAFETY: that string lives in the library, which stays mapped while `lib` lives; it is
        // copied out at once.
        let name = unsafe { name.as_slice() };
        let name = String::from_utf8(name.to_vec()).map_err(|_| {
            TaskFailure::package(format!("{}: package name is not UTF-8", path.display()))
        })?;
        if name != expected_name {
            return Err(TaskFailure::package(format!(
                "{} declares package `{name}`, expected `{expected_name}`",
                path.display()
            )));
        }

        let execute: ExecuteFn = symbol(&lib, path, abi::SYM_EXECUTE)?;
        let free: FreeFn = symbol(&lib, path, abi::SYM_FREE)?;
        let package = Self {
            name,
            execute,
            free,
            _lib: lib,
        };

        if let Ok(init) = symbol::<InitFn>(&package._lib, path, abi::SYM_INIT) {
            // SAFETY: ABI v1 `silk_package_init` takes nothing and returns a CallResult whose
            // buffer we hand back to the package's own free function.
            let result = unsafe { init() };
            let (status, bytes) = package.take(result);
            match status {
                STATUS_OK => {}
                STATUS_TASK_ERROR => {
                    let err = TdlError::from_msgpack(&bytes)
                        .map_or_else(|e| format!("undecodable error ({e})"), |e| e.to_string());
                    return Err(TaskFailure::package(format!(
                        "package `{}`: init failed: {err}",
                        package.name
                    )));
                }
                STATUS_PANICKED => {
                    return Err(TaskFailure::package(format!(
                        "package `{}`: init panicked: {}",
                        package.name,
                        String::from_utf8_lossy(&bytes)
                    )));
                }
                other => {
                    return Err(TaskFailure::package(format!(
                        "package `{}`: init returned unknown status {other}",
                        package.name
                    )));
                }
            }
        }
        Ok(package)
    }

    /// The package's declared name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs task `function` with a MessagePack context and an input frame.
    ///
    /// # Errors
    /// [`TaskFailure::Task`] when the task (or the TDL glue) returns an error,
    /// [`TaskFailure::Panicked`] when it panics, [`TaskFailure::Package`] for an answer that
    /// breaks the ABI.
    pub fn execute(
        &self,
        function: &str,
        context: &[u8],
        inputs: &[u8],
    ) -> Result<Vec<u8>, TaskFailure> {
        // SAFETY: the three views borrow slices that outlive the call; the returned buffer goes
        // back to the package's free function in `take`.
        let result = unsafe {
            (self.execute)(
                BytesRef::new(function.as_bytes()),
                BytesRef::new(context),
                BytesRef::new(inputs),
            )
        };
        let (status, bytes) = self.take(result);
        TaskFailure::from_package_answer(&self.name, status, bytes)
    }

    /// Copies a returned buffer out and gives it back to the package.
    fn take(&self, result: CallResult) -> (u32, Vec<u8>) {
        let view = BytesRef {
            ptr: result.buf.ptr,
            len: result.buf.len,
        };
        // SAFETY: the package returned this buffer with `len` initialised bytes; it is only freed
        // below, after the copy.
        let bytes = unsafe { view.as_slice() }.to_vec();
        // SAFETY: the buffer came from this package's init/execute and is freed exactly once.
        unsafe { (self.free)(result.buf) };
        (result.status, bytes)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
