//! `TdlError`: the error a task returns, and the one the TDL glue reports when it cannot decode a
//! task's context or inputs. It crosses the package boundary as MessagePack.

use serde::{Deserialize, Serialize};

/// An error raised by a task or by the TDL glue around it.
///
/// Every variant carries a human-readable message. The variant says who is at fault: the caller
/// (`TaskNotFound`, `Deserialization`, `InvalidContext`), the task's own output (`Serialization`)
/// or the task's logic (`Execution`, `Custom`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TdlError {
    /// The package has no task of that name.
    #[error("task not found: {0}")]
    TaskNotFound(String),
    /// The task's inputs (or the context) could not be decoded into the declared types.
    #[error("deserialization error: {0}")]
    Deserialization(String),
    /// The task's outputs could not be encoded.
    #[error("serialization error: {0}")]
    Serialization(String),
    /// The task ran and failed.
    #[error("execution error: {0}")]
    Execution(String),
    /// The task context is not valid for this task (for example job outputs on a regular task).
    #[error("invalid task context: {0}")]
    InvalidContext(String),
    /// A task-defined error.
    #[error("{0}")]
    Custom(String),
}

impl TdlError {
    /// The variant's name, as used in logs and job errors.
    #[must_use]
    pub fn variant_name(&self) -> &'static str {
        match self {
            Self::TaskNotFound(_) => "TaskNotFound",
            Self::Deserialization(_) => "Deserialization",
            Self::Serialization(_) => "Serialization",
            Self::Execution(_) => "Execution",
            Self::InvalidContext(_) => "InvalidContext",
            Self::Custom(_) => "Custom",
        }
    }

    /// Encodes the error as MessagePack (the form that crosses the package boundary).
    #[must_use]
    pub fn to_msgpack(&self) -> Vec<u8> {
        // Encoding a plain enum of strings into a Vec cannot fail.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    /// Decodes an error encoded by [`TdlError::to_msgpack`].
    ///
    /// # Errors
    /// Returns the decoder's message when the bytes are not a MessagePack `TdlError`.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self, String> {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_round_trip_keeps_every_variant() {
        let all = [
            TdlError::TaskNotFound("a".into()),
            TdlError::Deserialization("b".into()),
            TdlError::Serialization("c".into()),
            TdlError::Execution("d".into()),
            TdlError::InvalidContext("e".into()),
            TdlError::Custom("f".into()),
        ];
        for e in all {
            assert_eq!(TdlError::from_msgpack(&e.to_msgpack()).unwrap(), e);
        }
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(TdlError::from_msgpack(&[0xc1]).is_err());
    }
}
