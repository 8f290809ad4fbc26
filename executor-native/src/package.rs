//! Loading a native package (`lib<name>.so`) and calling into it over the C ABI of
//! `silk_tdl::abi`. All of the package ABI's unsafe code lives here, behind [`Package`].
//!
//! Packages are trusted code: loading one runs its initialisers, and a package can do anything
//! the executor process can. The checks here protect against mistakes (wrong file, other ABI
//! version, wrong name), not against malice; untrusted packages run in the wasm sandbox.
//!
//! [`inspect`] runs the same checks as a load (minus the expected name), skips the init hook and
//! reads the optional task list; it is meant for a short-lived process (`--inspect`), never for
//! the `silk` CLI itself.

use std::path::{Path, PathBuf};

use libloading::{Library, Symbol};
use silk_ipc::{InspectError, PackageInfo, TaskFailure};
use silk_tdl::abi::{self, ABI_VERSION};
use silk_tdl::native::{BytesRef, CallResult, OwnedBuf};

type AbiVersionFn = unsafe extern "C" fn() -> u32;
type NameFn = unsafe extern "C" fn() -> BytesRef;
type InitFn = unsafe extern "C" fn() -> CallResult;
type ExecuteFn = unsafe extern "C" fn(BytesRef, BytesRef, BytesRef) -> CallResult;
type FreeFn = unsafe extern "C" fn(OwnedBuf);
type TasksFn = unsafe extern "C" fn() -> BytesRef;

/// Why a library is not a usable package, by class (the checks before the init hook).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// `dlopen` refused the file (not a shared library, wrong architecture, missing dependency).
    #[error("cannot load {path}: {message}")]
    Load {
        /// The library.
        path: PathBuf,
        /// The loader's error, with its causes.
        message: String,
    },
    /// A symbol of the ABI is missing. Without `silk_abi_version` the file is not a silk package.
    #[error("{path}: missing symbol `{symbol}`: {message}")]
    MissingSymbol {
        /// The library.
        path: PathBuf,
        /// The symbol.
        symbol: &'static str,
        /// The loader's error.
        message: String,
    },
    /// The package was built for another ABI version.
    #[error(
        "{path}: package ABI version {found} is not supported (this executor speaks version {})",
        ABI_VERSION
    )]
    AbiVersion {
        /// The library.
        path: PathBuf,
        /// The version it declares.
        found: u32,
    },
    /// The declared name is not UTF-8, or not a valid package name.
    #[error("{path}: invalid package name: {message}")]
    InvalidName {
        /// The library.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The exported task list is not UTF-8.
    #[error("{path}: task list is not UTF-8")]
    TaskListNotUtf8 {
        /// The library.
        path: PathBuf,
    },
}

impl OpenError {
    /// Whether the file is not a silk package at all (not loadable, or no `silk_abi_version`),
    /// as opposed to a silk package of another ABI version or one that breaks the ABI.
    #[must_use]
    pub fn is_not_a_package(&self) -> bool {
        match self {
            Self::Load { .. } => true,
            Self::MissingSymbol { symbol, .. } => *symbol == abi::SYM_ABI_VERSION,
            _ => false,
        }
    }
}

impl From<OpenError> for InspectError {
    /// The shared class of `e`, with the same text (a library `dlopen` refused reads
    /// `<path>: cannot load: <why>`).
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Load { path, message } => Self::NotAPackage {
                origin: path.display().to_string(),
                reason: format!("cannot load: {message}"),
            },
            OpenError::AbiVersion { path, found } => Self::AbiVersion {
                origin: path.display().to_string(),
                found,
            },
            OpenError::MissingSymbol {
                ref path,
                ref symbol,
                ref message,
            } => {
                let origin = path.display().to_string();
                let reason = format!("missing symbol `{symbol}`: {message}");
                if e.is_not_a_package() {
                    Self::NotAPackage { origin, reason }
                } else {
                    Self::Invalid { origin, reason }
                }
            }
            OpenError::InvalidName { path, message } => Self::Invalid {
                origin: path.display().to_string(),
                reason: format!("invalid package name: {message}"),
            },
            OpenError::TaskListNotUtf8 { path } => Self::Invalid {
                origin: path.display().to_string(),
                reason: "task list is not UTF-8".into(),
            },
        }
    }
}

impl From<OpenError> for TaskFailure {
    fn from(e: OpenError) -> Self {
        Self::package(e.to_string())
    }
}

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

fn symbol<T: Copy>(lib: &Library, path: &Path, name: &'static str) -> Result<T, OpenError> {
    // SAFETY: every caller names a symbol of the silk ABI and asks for the exact function type
    // that `silk_tdl::package!` exports under that name; the ABI version was checked first.
    let sym: Result<Symbol<'_, T>, _> = unsafe { lib.get(name.as_bytes()) };
    sym.map(|s| *s).map_err(|e| OpenError::MissingSymbol {
        path: path.to_path_buf(),
        symbol: name,
        message: e.to_string(),
    })
}

/// Copies a static string a package export points to.
///
/// # Safety
/// `view` must point into `lib`'s mapped image (a static of the package), and `lib` must stay
/// loaded for the call.
unsafe fn copy_static(_lib: &Library, view: BytesRef) -> Vec<u8> {
    // SAFETY: the caller guarantees the view points to a static of the still-loaded library.
    unsafe { view.as_slice() }.to_vec()
}

/// Loads `path` and checks its ABI version (before any other symbol), then reads its name.
fn open(path: &Path) -> Result<(Library, String), OpenError> {
    // SAFETY: loading runs the library's initialisers. Native packages are trusted code by
    // policy (only allow-listed packages run natively, and `--inspect` is run by a user on a file
    // they chose), and this runs in the executor child process, never in the EM or the CLI.
    let lib = unsafe { Library::new(path) }.map_err(|e| OpenError::Load {
        path: path.to_path_buf(),
        message: error_chain(&e),
    })?;

    let version: AbiVersionFn = symbol(&lib, path, abi::SYM_ABI_VERSION)?;
    // SAFETY: `silk_abi_version` takes no arguments and returns a u32 in every ABI version.
    let version = unsafe { version() };
    if version != ABI_VERSION {
        return Err(OpenError::AbiVersion {
            path: path.to_path_buf(),
            found: version,
        });
    }

    let name_fn: NameFn = symbol(&lib, path, abi::SYM_PACKAGE_NAME)?;
    // SAFETY: ABI v1 `silk_package_name` takes nothing and returns a view of a static string.
    let name = unsafe { name_fn() };
    // SAFETY: that string is a static of the library, which stays loaded while `lib` lives.
    let name = unsafe { copy_static(&lib, name) };
    let name = String::from_utf8(name).map_err(|_| OpenError::InvalidName {
        path: path.to_path_buf(),
        message: "not UTF-8".into(),
    })?;
    Ok((lib, name))
}

/// Loads `path`, checks it like [`Package::load`] does (ABI version first, then the required
/// symbols and a valid name) and reads its task list if it exports one. The init hook does not
/// run. The library stays loaded until the process exits.
///
/// # Errors
/// [`InspectError`] of the class of the first check that fails.
pub fn inspect(path: &Path) -> Result<PackageInfo, InspectError> {
    Ok(inspect_open(path)?)
}

fn inspect_open(path: &Path) -> Result<PackageInfo, OpenError> {
    let (lib, name) = open(path)?;
    if !abi::is_valid_package_name(&name) {
        return Err(OpenError::InvalidName {
            path: path.to_path_buf(),
            message: format!("{name:?}: use 1-128 ASCII letters, digits, `_` or `-`"),
        });
    }
    symbol::<ExecuteFn>(&lib, path, abi::SYM_EXECUTE)?;
    symbol::<FreeFn>(&lib, path, abi::SYM_FREE)?;
    let task_list = match symbol::<TasksFn>(&lib, path, abi::SYM_PACKAGE_TASKS) {
        Ok(tasks) => {
            // SAFETY: ABI v1 `silk_package_tasks` takes nothing and returns a view of a static
            // string.
            let view = unsafe { tasks() };
            // SAFETY: that string is a static of the library, which is still loaded.
            let bytes = unsafe { copy_static(&lib, view) };
            Some(
                String::from_utf8(bytes).map_err(|_| OpenError::TaskListNotUtf8 {
                    path: path.to_path_buf(),
                })?,
            )
        }
        Err(_) => None,
    };
    // Never unloaded (see `Package`): the process exits right after.
    std::mem::forget(lib);
    Ok(PackageInfo {
        name,
        abi_version: ABI_VERSION,
        task_list,
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
        let (lib, name) = open(path)?;
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
            TaskFailure::from_init_answer(&package.name, status, &bytes)?;
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
