//! How a task can fail, with one kind per cause. The kinds stay distinct everywhere (job errors,
//! logs, exit codes): "the task returned an error" is never confused with "the sandbox trapped",
//! "the executor died" or "it timed out".

use serde::{Deserialize, Serialize};
use silk_tdl::TdlError;
use silk_tdl::abi::{STATUS_OK, STATUS_PANICKED, STATUS_TASK_ERROR};

/// The kind of a [`TaskFailure`], for logs, metrics and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureKind {
    /// The task returned an error.
    TaskError,
    /// The task panicked (caught at the package boundary).
    Panicked,
    /// The native executor process died (abort, segfault, killed).
    Crashed,
    /// The task ran past its hard timeout.
    Timeout,
    /// A wasm task used up its fuel.
    OutOfFuel,
    /// A wasm task hit its memory limit.
    MemoryLimit,
    /// A wasm task trapped.
    Trap,
    /// The package is missing, invalid, of another ABI version, or its init failed.
    PackageError,
    /// What the task returned (outputs, or the inputs it needs) is larger than a byte limit on
    /// its way: the package's output limit, a message cap, the database's packet size. Never
    /// retried: the same task would return the same bytes.
    OutputTooLarge,
}

impl FailureKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::TaskError,
        Self::Panicked,
        Self::Crashed,
        Self::Timeout,
        Self::OutOfFuel,
        Self::MemoryLimit,
        Self::Trap,
        Self::PackageError,
        Self::OutputTooLarge,
    ];

    /// The kind's name as shown to users.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskError => "TaskError",
            Self::Panicked => "Panicked",
            Self::Crashed => "Crashed",
            Self::Timeout => "Timeout",
            Self::OutOfFuel => "OutOfFuel",
            Self::MemoryLimit => "MemoryLimit",
            Self::Trap => "Trap",
            Self::PackageError => "PackageError",
            Self::OutputTooLarge => "OutputTooLarge",
        }
    }
}

impl FailureKind {
    /// Whether running the task again may give another result. An output too large for a
    /// limit is the same output next time: such a failure spends no retries, it ends the task.
    #[must_use]
    pub fn worth_retrying(self) -> bool {
        self != Self::OutputTooLarge
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task did not produce outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TaskFailure {
    /// The task returned an error.
    #[error("{0}")]
    Task(TdlError),
    /// The task panicked.
    #[error("task panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The executor process died while running the task.
    #[error("executor crashed: {status}")]
    Crashed {
        /// How it ended, e.g. "killed by signal 6 (SIGABRT)".
        status: String,
    },
    /// The task ran past its hard timeout and was stopped.
    #[error("task exceeded its hard timeout of {after_ms} ms")]
    Timeout {
        /// The hard timeout that expired.
        after_ms: u64,
    },
    /// A wasm task used up its fuel.
    #[error("task ran out of fuel (limit {fuel})")]
    OutOfFuel {
        /// The fuel it was given.
        fuel: u64,
    },
    /// A wasm task hit its memory limit.
    #[error("task exceeded its memory limit of {limit_bytes} bytes: {message}")]
    MemoryLimit {
        /// The limit.
        limit_bytes: u64,
        /// What the runtime reported.
        message: String,
    },
    /// A wasm task trapped.
    #[error("task trapped ({code}): {message}")]
    Trap {
        /// The trap code, e.g. `StackOverflow`.
        code: String,
        /// The runtime's message.
        message: String,
    },
    /// What the task returned is larger than a byte limit on its way.
    #[error("{what} of {size_bytes} bytes exceeds the {limit_bytes}-byte limit ({limit})")]
    OutputTooLarge {
        /// What was too large, e.g. "task output".
        what: String,
        /// Its size.
        size_bytes: u64,
        /// The limit it broke.
        limit_bytes: u64,
        /// The limit's name, e.g. the config key that sets it.
        limit: String,
    },
    /// The package could not be used.
    #[error("{message}")]
    Package {
        /// What is wrong with it.
        message: String,
    },
}

impl TaskFailure {
    /// The failure's kind.
    #[must_use]
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Task(_) => FailureKind::TaskError,
            Self::Panicked { .. } => FailureKind::Panicked,
            Self::Crashed { .. } => FailureKind::Crashed,
            Self::Timeout { .. } => FailureKind::Timeout,
            Self::OutOfFuel { .. } => FailureKind::OutOfFuel,
            Self::MemoryLimit { .. } => FailureKind::MemoryLimit,
            Self::Trap { .. } => FailureKind::Trap,
            Self::Package { .. } => FailureKind::PackageError,
            Self::OutputTooLarge { .. } => FailureKind::OutputTooLarge,
        }
    }

    /// A package failure with `message`.
    pub fn package(message: impl Into<String>) -> Self {
        Self::Package {
            message: message.into(),
        }
    }

    /// Reads what a package's `execute` answered, native or wasm: a status code of
    /// `silk_tdl::abi` and its buffer.
    ///
    /// # Errors
    /// [`TaskFailure::Task`] for a task error, [`TaskFailure::Panicked`] for a panic, and
    /// [`TaskFailure::Package`] for an answer that breaks the ABI.
    pub fn from_package_answer(
        package: &str,
        status: u32,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, Self> {
        match status {
            STATUS_OK => Ok(bytes),
            STATUS_TASK_ERROR => Err(match TdlError::from_msgpack(&bytes) {
                Ok(e) => Self::Task(e),
                Err(e) => Self::package(format!(
                    "package `{package}` returned an undecodable error: {e}"
                )),
            }),
            STATUS_PANICKED => Err(Self::Panicked {
                message: String::from_utf8_lossy(&bytes).into_owned(),
            }),
            other => Err(Self::package(format!(
                "package `{package}` returned unknown status {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_answers() {
        assert_eq!(
            TaskFailure::from_package_answer("p", STATUS_OK, vec![1]),
            Ok(vec![1])
        );
        let err = TdlError::Execution("x".into());
        assert_eq!(
            TaskFailure::from_package_answer("p", STATUS_TASK_ERROR, err.to_msgpack()),
            Err(TaskFailure::Task(err))
        );
        assert_eq!(
            TaskFailure::from_package_answer("p", STATUS_PANICKED, b"boom".to_vec()),
            Err(TaskFailure::Panicked {
                message: "boom".into()
            })
        );
        for (status, bytes) in [(STATUS_TASK_ERROR, vec![0xc1]), (7, vec![])] {
            let e = TaskFailure::from_package_answer("p", status, bytes).unwrap_err();
            assert_eq!(e.kind(), FailureKind::PackageError, "{e}");
        }
    }

    #[test]
    fn kinds_are_distinct_and_named() {
        let names: std::collections::HashSet<_> =
            FailureKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), FailureKind::ALL.len());
        assert_eq!(
            TaskFailure::Timeout { after_ms: 200 }.kind(),
            FailureKind::Timeout
        );
        assert_eq!(
            TaskFailure::Task(TdlError::Custom("x".into())).kind(),
            FailureKind::TaskError
        );
        assert_eq!(
            TaskFailure::Timeout { after_ms: 200 }.to_string(),
            "task exceeded its hard timeout of 200 ms"
        );
    }
}
