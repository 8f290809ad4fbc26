//! The EM ↔ executor protocol: one [`Request`] in, one [`Response`] out, strictly in turn.

use serde::{Deserialize, Serialize};

use crate::failure::TaskFailure;

/// A message from the EM to an executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Run one task.
    Execute(Execute),
    /// Finish and exit with status 0.
    Shutdown,
}

/// A borrowed [`Request`] that encodes to the same bytes, so the EM can send an [`Execute`] it
/// does not own without cloning it (see [`ClientTransport::send_execute`](crate::ClientTransport::send_execute)).
#[derive(Debug, Clone, Copy, Serialize)]
pub enum RequestRef<'a> {
    /// As [`Request::Execute`].
    Execute(&'a Execute),
    /// As [`Request::Shutdown`].
    Shutdown,
}

/// Run `function` of `package` with a MessagePack `TaskContext` and an input frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execute {
    /// The package name (letters, digits, `_`, `-`).
    pub package: String,
    /// The task name within the package.
    pub function: String,
    /// The MessagePack `silk_tdl::TaskContext`.
    #[serde(with = "serde_bytes")]
    pub context: Vec<u8>,
    /// The input frame.
    #[serde(with = "serde_bytes")]
    pub inputs: Vec<u8>,
}

/// A [`Request`] decoded in place: its names and bytes borrow the buffer it was received in, so
/// an executor takes a request without allocating or copying (see
/// [`ServerTransport::recv`](crate::ServerTransport::recv)). Decodes the bytes a [`Request`]
/// encodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RequestView<'a> {
    /// As [`Request::Execute`].
    #[serde(borrow)]
    Execute(ExecuteView<'a>),
    /// As [`Request::Shutdown`].
    Shutdown,
}

/// An [`Execute`] borrowing its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ExecuteView<'a> {
    /// As [`Execute::package`].
    pub package: &'a str,
    /// As [`Execute::function`].
    pub function: &'a str,
    /// As [`Execute::context`].
    pub context: &'a [u8],
    /// As [`Execute::inputs`].
    pub inputs: &'a [u8],
}

impl ExecuteView<'_> {
    /// An owned copy.
    #[must_use]
    pub fn to_execute(&self) -> Execute {
        Execute {
            package: self.package.to_owned(),
            function: self.function.to_owned(),
            context: self.context.to_vec(),
            inputs: self.inputs.to_vec(),
        }
    }
}

/// A message from an executor to the EM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The outcome of the last `Execute`.
    Result {
        /// The output frame, or why there is none.
        outcome: Outcome,
        /// Time spent inside the executor on this task (package call, including the package's own
        /// input decoding and output encoding), measured by the executor.
        elapsed_ns: u64,
    },
}

/// What an `Execute` produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The task's output frame.
    Success(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The task failed.
    Failure(TaskFailure),
}
