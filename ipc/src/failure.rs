//! How a task can fail, with one kind per cause. The kinds stay distinct everywhere (job errors,
//! logs, exit codes): "the task returned an error" is never confused with "the sandbox trapped",
//! "the executor died" or "it timed out".
//!
//! Every text a failure carries (error and panic messages, crash statuses) comes from code that
//! is not trusted and is cut to [`MAX_FAILURE_TEXT_BYTES`] by one rule, [`cut_text`], before it
//! is logged, reported or stored: [`TaskFailure::from_package_answer`] cuts what a package
//! answered (native and wasm), and [`TaskFailure::bounded`] cuts a failure that arrived from
//! elsewhere (an executor process).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use silk_tdl::TdlError;
use silk_tdl::abi::{STATUS_OK, STATUS_PANICKED, STATUS_TASK_ERROR};

/// Longest text a failure carries, marker included.
pub const MAX_FAILURE_TEXT_BYTES: usize = 64 << 10;

/// Room kept at the end of a cut text for the marker (`… [N bytes cut]`).
const MARKER_ROOM: usize = 48;

/// `text` cut to at most [`MAX_FAILURE_TEXT_BYTES`] bytes, on a character boundary, ending with
/// a marker that says how many bytes were cut; unchanged if it fits.
#[must_use]
pub fn cut_text(text: String) -> String {
    cut_with(text, 0)
}

/// [`cut_text`] of `bytes` read as UTF-8 (lossily); only the bytes that can be kept are decoded.
#[must_use]
pub fn cut_bytes(bytes: &[u8]) -> String {
    let kept = &bytes[..bytes.len().min(MAX_FAILURE_TEXT_BYTES)];
    cut_with(
        String::from_utf8_lossy(kept).into_owned(),
        bytes.len() - kept.len(),
    )
}

/// Cuts `text`, which is what is left of a text of which `already_cut` bytes were dropped.
fn cut_with(mut text: String, already_cut: usize) -> String {
    if already_cut == 0 && text.len() <= MAX_FAILURE_TEXT_BYTES {
        return text;
    }
    let mut end = text.len().min(MAX_FAILURE_TEXT_BYTES - MARKER_ROOM);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end + already_cut;
    text.truncate(end);
    let _ = write!(text, "… [{cut} bytes cut]");
    text
}

fn cut_tdl(e: TdlError) -> TdlError {
    match e {
        TdlError::TaskNotFound(m) => TdlError::TaskNotFound(cut_text(m)),
        TdlError::Deserialization(m) => TdlError::Deserialization(cut_text(m)),
        TdlError::Serialization(m) => TdlError::Serialization(cut_text(m)),
        TdlError::Execution(m) => TdlError::Execution(cut_text(m)),
        TdlError::InvalidContext(m) => TdlError::InvalidContext(cut_text(m)),
        TdlError::Custom(m) => TdlError::Custom(cut_text(m)),
    }
}

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

    /// A package failure with `message` (cut to [`MAX_FAILURE_TEXT_BYTES`]).
    pub fn package(message: impl Into<String>) -> Self {
        Self::Package {
            message: cut_text(message.into()),
        }
    }

    /// A task stopped from outside because it is no longer wanted (its job was cancelled or
    /// failed): the executor running it was stopped, so it counts as `Crashed`.
    #[must_use]
    pub fn stopped() -> Self {
        Self::Crashed {
            status: "stopped: the task is no longer wanted (its job was cancelled or failed)"
                .into(),
        }
    }

    /// The same failure with every text cut to [`MAX_FAILURE_TEXT_BYTES`] ([`cut_text`]).
    #[must_use]
    pub fn bounded(self) -> Self {
        match self {
            Self::Task(e) => Self::Task(cut_tdl(e)),
            Self::Panicked { message } => Self::Panicked {
                message: cut_text(message),
            },
            Self::Crashed { status } => Self::Crashed {
                status: cut_text(status),
            },
            Self::MemoryLimit {
                limit_bytes,
                message,
            } => Self::MemoryLimit {
                limit_bytes,
                message: cut_text(message),
            },
            Self::Trap { code, message } => Self::Trap {
                code: cut_text(code),
                message: cut_text(message),
            },
            Self::OutputTooLarge {
                what,
                size_bytes,
                limit_bytes,
                limit,
            } => Self::OutputTooLarge {
                what: cut_text(what),
                size_bytes,
                limit_bytes,
                limit: cut_text(limit),
            },
            Self::Package { message } => Self::Package {
                message: cut_text(message),
            },
            f @ (Self::Timeout { .. } | Self::OutOfFuel { .. }) => f,
        }
    }

    /// Reads what a package's `execute` answered, native or wasm: a status code of
    /// `silk_tdl::abi` and its buffer. Error and panic messages are cut to
    /// [`MAX_FAILURE_TEXT_BYTES`].
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
                Ok(e) => Self::Task(cut_tdl(e)),
                Err(e) => Self::package(format!(
                    "package `{package}` returned an undecodable error: {e}"
                )),
            }),
            STATUS_PANICKED => Err(Self::Panicked {
                message: cut_bytes(&bytes),
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
    fn long_messages_are_cut_with_a_marker() {
        let mib = 1 << 20;
        let check = |text: &str, original: usize| {
            assert!(text.len() <= MAX_FAILURE_TEXT_BYTES, "{}", text.len());
            let kept = text.find('…').unwrap();
            let cut = original - kept;
            assert!(
                text.ends_with(&format!("… [{cut} bytes cut]")),
                "{}",
                &text[kept..]
            );
            assert!(kept > MAX_FAILURE_TEXT_BYTES - 100);
        };
        let Err(TaskFailure::Panicked { message }) =
            TaskFailure::from_package_answer("p", STATUS_PANICKED, vec![b'p'; 20 * mib])
        else {
            panic!("a panic");
        };
        check(&message, 20 * mib);
        let err = TdlError::Execution("e".repeat(20 * mib)).to_msgpack();
        let Err(TaskFailure::Task(TdlError::Execution(message))) =
            TaskFailure::from_package_answer("p", STATUS_TASK_ERROR, err)
        else {
            panic!("a task error");
        };
        check(&message, 20 * mib);
        // Multi-byte characters are cut on a boundary.
        let text = cut_text("é".repeat(mib));
        check(&text, 2 * mib);
        // Short texts are untouched, and every text of a failure from elsewhere is cut.
        assert_eq!(cut_text("short".into()), "short");
        let crashed = TaskFailure::Crashed {
            status: "s".repeat(mib),
        }
        .bounded();
        assert!(
            crashed.to_string().len() <= MAX_FAILURE_TEXT_BYTES + 100,
            "{}",
            crashed.to_string().len()
        );
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
