//! What [`WasmHost::inspect_file`](crate::WasmHost::inspect_file) reports about a module without
//! registering it or running its init hook: [`PackageInfo`], or an [`InspectError`] that says
//! which class of problem stopped it (the same checks as a load, see `docs/wasm-abi.md`).

use std::path::PathBuf;

use silk_ipc::TaskFailure;
use silk_tdl::abi::ABI_VERSION;

/// A package's identity and task list, read through its exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    /// The name the package declares.
    pub name: String,
    /// The ABI version it was built for (always one this host speaks).
    pub abi_version: u32,
    /// The task list JSON of its `silk_package_tasks` export (format in `silk_tdl::abi`), as
    /// exported; `None` when the package does not export one (older or hand-written packages).
    pub task_list: Option<String>,
}

/// Why a module is not a usable package, by class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// The file cannot be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// Not a silk package: not a wasm module, or no `silk_abi_version` export of the right type.
    #[error("{origin}: {reason}")]
    NotAPackage {
        /// The module (its path, or what the caller called it).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A silk package built for another ABI version.
    #[error(
        "{origin}: package ABI version {found} is not supported (this host speaks version {})",
        ABI_VERSION
    )]
    AbiVersion {
        /// The module.
        origin: String,
        /// The version it declares.
        found: u32,
    },
    /// A silk package of this ABI version that breaks it: a forbidden import, a missing or
    /// ill-typed export, an invalid name or task list, a trap while probing.
    #[error("{origin}: {reason}")]
    Invalid {
        /// The module.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

impl From<InspectError> for TaskFailure {
    fn from(e: InspectError) -> Self {
        Self::package(e.to_string())
    }
}
