//! Errors of the client, worded for a command line: each says what failed and, where it helps,
//! what to do about it. Statuses from storage become these in [`ClientError::from_status`], the
//! client's one mapping from `tonic::Code`.

use silk_tdl::JobId;
use tonic::Code;

use silk_core::graph::GraphError;

/// An error of a [`super::Client`] call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Storage could not be reached, or stayed unavailable for the whole retry deadline.
    #[error("cannot reach storage at {address} (is `silk dev` running?): {message}")]
    Unavailable {
        /// The storage address.
        address: String,
        /// The last transport error.
        message: String,
    },
    /// No job with this id (never registered, or deleted after its retention period).
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The graph was rejected before it was sent.
    #[error(transparent)]
    InvalidGraph(#[from] GraphError),
    /// The request was rejected as malformed: a bad address, wrong number of job inputs, a graph
    /// storage refused, ...
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// No credential, an unknown one, an unknown resource group or a wrong secret.
    #[error("not authorised: {0}")]
    Unauthenticated(String),
    /// The credential does not allow the call: a job that is not in the token's resource group
    /// (or does not exist: storage gives one answer for both), or creating a resource group
    /// without the admin token.
    #[error("not allowed: {0}")]
    PermissionDenied(String),
    /// Storage answered with another error (e.g. outputs asked for before the job succeeded).
    #[error("storage refused the request: {message} ({code:?})")]
    Rpc {
        /// The status code.
        code: Code,
        /// The exact kind storage named (e.g. `invalid-transition`, `not-available`; see
        /// `silk_core::wire::ERROR_KIND_KEY`), when it named one.
        kind: Option<String>,
        /// Storage's message.
        message: String,
    },
    /// A reply could not be decoded.
    #[error("cannot decode {what}: {message}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
}

impl ClientError {
    /// Maps a status from storage; `job` is the job the call was about, if any (for
    /// [`ClientError::NotFound`]). `address` names storage in [`ClientError::Unavailable`].
    #[must_use]
    pub fn from_status(status: &tonic::Status, job: Option<JobId>, address: &str) -> Self {
        let message = status.message().to_owned();
        let hint = silk_core::auth::tls_failure(status)
            .or_else(|| silk_core::auth::plaintext_hint(status, address));
        match (status.code(), job) {
            (Code::Unavailable | Code::Unknown, _) if hint.is_some() => Self::Unavailable {
                address: address.to_owned(),
                message: format!(
                    "{} ({})",
                    transport_message(status),
                    hint.unwrap_or_default()
                ),
            },
            (Code::Unavailable, _) => Self::Unavailable {
                address: address.to_owned(),
                message: transport_message(status),
            },
            (Code::NotFound, Some(job)) => Self::NotFound(job),
            (Code::InvalidArgument, _) => Self::InvalidArgument(message),
            (Code::Unauthenticated, _) => Self::Unauthenticated(message),
            (Code::PermissionDenied, _) => Self::PermissionDenied(message),
            (code, _) => Self::Rpc {
                code,
                kind: silk_core::wire::error_kind(status).map(str::to_owned),
                message,
            },
        }
    }

    pub(super) fn decode(what: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Decode {
            what,
            message: e.to_string(),
        }
    }
}

/// The status message followed by its source chain (tonic puts the transport cause, e.g.
/// "Connection refused", in the sources), with repeated parts dropped.
pub(super) fn transport_message(status: &tonic::Status) -> String {
    let mut parts: Vec<String> = vec![status.message().to_owned()];
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.retain(|p| !p.is_empty());
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_variants() {
        let addr = "http://127.0.0.1:1";
        let e = ClientError::from_status(&tonic::Status::unavailable("down"), None, addr);
        assert_eq!(
            e.to_string(),
            "cannot reach storage at http://127.0.0.1:1 (is `silk dev` running?): down"
        );
        let nf = ClientError::from_status(&tonic::Status::not_found("x"), Some(JobId(7)), addr);
        assert_eq!(nf.to_string(), "job 7 not found");
        let other = ClientError::from_status(&tonic::Status::not_found("em 3"), None, addr);
        assert!(matches!(
            other,
            ClientError::Rpc {
                code: Code::NotFound,
                kind: None,
                ..
            }
        ));
        let mut ended = tonic::Status::failed_precondition("Succeeded -> Cancelled");
        ended.metadata_mut().insert(
            silk_core::wire::ERROR_KIND_KEY,
            "invalid-transition".parse().unwrap(),
        );
        let ended = ClientError::from_status(&ended, Some(JobId(7)), addr);
        assert!(
            matches!(&ended, ClientError::Rpc { kind: Some(k), .. } if k == "invalid-transition"),
            "{ended:?}"
        );
        let auth = ClientError::from_status(&tonic::Status::unauthenticated("no"), None, addr);
        assert!(matches!(auth, ClientError::Unauthenticated(m) if m == "no"));
        let bad = ClientError::from_status(&tonic::Status::invalid_argument("bad"), None, addr);
        assert!(matches!(bad, ClientError::InvalidArgument(m) if m == "bad"));
    }
}
