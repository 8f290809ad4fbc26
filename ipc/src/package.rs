//! What both executors (native and wasm) say about a package, by one rule each: what an
//! inspection reports ([`PackageInfo`]), why an inspection stopped ([`InspectError`], by class),
//! and how a package's init hook answered ([`TaskFailure::from_init_answer`], with the messages
//! of a failing init hook).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use silk_tdl::TdlError;
use silk_tdl::abi::{ABI_VERSION, STATUS_OK, STATUS_PANICKED, STATUS_TASK_ERROR};

use crate::TaskFailure;
use crate::failure::cut_bytes;

/// A package's identity and task list, read through its exports without running its init hook
/// (`silk-executor-native --inspect`, `WasmHost::inspect_file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    /// The name the package declares.
    pub name: String,
    /// The ABI version it was built for (always one this executor speaks).
    pub abi_version: u32,
    /// The task list JSON of its `silk_package_tasks` export (format in `silk_tdl::abi`), as
    /// exported; `None` when the package does not export one (built before the export existed,
    /// without the TDL, or hand-written).
    pub task_list: Option<String>,
}

/// Why a file is not a usable package, by class: the classes `silk package inspect` reports
/// (and exits with), the same for native libraries and wasm modules.
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
    /// Not a silk package: not a loadable library or wasm module, or no `silk_abi_version`
    /// export (of the right type).
    #[error("{origin}: {reason}")]
    NotAPackage {
        /// The package (its path, or what the caller called it).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A silk package built for another ABI version.
    #[error(
        "{origin}: package ABI version {found} is not supported (this executor speaks version {})",
        ABI_VERSION
    )]
    AbiVersion {
        /// The package.
        origin: String,
        /// The version it declares.
        found: u32,
    },
    /// A silk package of this ABI version that breaks it: a forbidden import, a missing or
    /// ill-typed export or symbol, an invalid name or task list, a trap while probing.
    #[error("{origin}: {reason}")]
    Invalid {
        /// The package.
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

impl TaskFailure {
    /// Reads what package `package`'s init hook answered, native or wasm: a status code of
    /// `silk_tdl::abi` and its buffer. Every failure is a [`TaskFailure::Package`] (a package
    /// whose init fails cannot run any task), with its message cut to
    /// [`MAX_FAILURE_TEXT_BYTES`](crate::MAX_FAILURE_TEXT_BYTES).
    ///
    /// # Errors
    /// `package `p`: init failed: <error>` for an error (or `undecodable error (...)`),
    /// [`TaskFailure::init_panicked`] for a panic, and
    /// `package `p`: init returned unknown status N` for any other status.
    pub fn from_init_answer(package: &str, status: u32, bytes: &[u8]) -> Result<(), Self> {
        match status {
            STATUS_OK => Ok(()),
            STATUS_TASK_ERROR => {
                let err = TdlError::from_msgpack(bytes)
                    .map_or_else(|e| format!("undecodable error ({e})"), |e| e.to_string());
                Err(Self::package(format!(
                    "package `{package}`: init failed: {err}"
                )))
            }
            STATUS_PANICKED => Err(Self::init_panicked(package, &cut_bytes(bytes))),
            other => Err(Self::package(format!(
                "package `{package}`: init returned unknown status {other}"
            ))),
        }
    }

    /// Package `package`'s init hook panicked with `message` (answered with the panic status, or
    /// a wasm trap classified as a panic).
    #[must_use]
    pub fn init_panicked(package: &str, message: &str) -> Self {
        Self::package(format!("package `{package}`: init panicked: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailureKind;

    fn message(r: Result<(), TaskFailure>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), FailureKind::PackageError, "{e}");
        e.to_string()
    }

    #[test]
    fn init_answers() {
        // Ok, whatever the buffer holds.
        assert_eq!(TaskFailure::from_init_answer("p", STATUS_OK, b""), Ok(()));
        assert_eq!(TaskFailure::from_init_answer("p", STATUS_OK, b"x"), Ok(()));
        // An error the package returned.
        let err = TdlError::Custom("no".into()).to_msgpack();
        assert_eq!(
            message(TaskFailure::from_init_answer("p", STATUS_TASK_ERROR, &err)),
            "package `p`: init failed: no"
        );
        // A panic.
        assert_eq!(
            message(TaskFailure::from_init_answer("p", STATUS_PANICKED, b"boom")),
            "package `p`: init panicked: boom"
        );
        assert_eq!(
            TaskFailure::init_panicked("p", "boom").to_string(),
            "package `p`: init panicked: boom"
        );
        // Malformed: an undecodable error, an unknown status.
        let undecodable = message(TaskFailure::from_init_answer(
            "p",
            STATUS_TASK_ERROR,
            &[0xc1],
        ));
        assert!(
            undecodable.starts_with("package `p`: init failed: undecodable error ("),
            "{undecodable}"
        );
        assert_eq!(
            message(TaskFailure::from_init_answer("p", 7, b"")),
            "package `p`: init returned unknown status 7"
        );
    }

    #[test]
    fn long_init_panics_are_cut() {
        let text = message(TaskFailure::from_init_answer(
            "p",
            STATUS_PANICKED,
            &vec![b'x'; 1 << 20],
        ));
        assert!(
            text.len() <= crate::MAX_FAILURE_TEXT_BYTES,
            "{}",
            text.len()
        );
    }

    #[test]
    fn inspect_errors_say_their_origin() {
        let abi = InspectError::AbiVersion {
            origin: "m".into(),
            found: 7,
        };
        assert!(
            abi.to_string()
                .starts_with("m: package ABI version 7 is not supported"),
            "{abi}"
        );
        let failure = TaskFailure::from(InspectError::Invalid {
            origin: "m".into(),
            reason: "bad".into(),
        });
        assert_eq!(failure.kind(), FailureKind::PackageError);
        assert_eq!(failure.to_string(), "m: bad");
    }
}
