//! The one retry rule of silk's gRPC callers (the client, the execution manager, the
//! scheduler): which failed calls are worth repeating, and how long to wait between tries.
//!
//! A call is worth repeating when it failed in transport — the peer was unreachable, the
//! connection broke, the deadline passed — not when the peer answered with a verdict about what
//! the call carries (`INVALID_ARGUMENT`, `NOT_FOUND`, a message over a size cap, …), which a
//! repeat would meet again. A TLS failure (a plaintext server, an untrusted certificate) is
//! permanent too. Between tries the delay doubles from [`FIRST_DELAY`] up to [`MAX_DELAY`].

use std::time::Duration;

use tonic::{Code, Status};

/// The first delay before a repeat.
pub const FIRST_DELAY: Duration = Duration::from_millis(50);
/// The longest delay between two tries.
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// The delay after `previous` (give [`Duration::ZERO`] before the first repeat): doubled,
/// within [`FIRST_DELAY`]..=[`MAX_DELAY`].
#[must_use]
pub fn next_delay(previous: Duration) -> Duration {
    (previous * 2).clamp(FIRST_DELAY, MAX_DELAY)
}

/// Whether a call that failed with `status` is worth repeating (see the module docs).
#[must_use]
pub fn is_transient(status: &Status) -> bool {
    let transport_code = matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Cancelled
            | Code::Internal
    );
    transport_code
        && !status.message().contains("message length too large")
        && crate::auth::tls_failure(status).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_transient_verdicts_are_not() {
        for s in [
            Status::unavailable("connection refused"),
            Status::deadline_exceeded("timeout"),
            Status::internal("h2 protocol error: http2 error"),
            Status::cancelled("reset"),
        ] {
            assert!(is_transient(&s), "{s:?}");
        }
        for s in [
            Status::out_of_range("encoded message length too large"),
            Status::internal(
                "Error, encoded message length too large: found 80 bytes, the limit is: 64 bytes",
            ),
            Status::invalid_argument("bad"),
            Status::not_found("job 7"),
            Status::resource_exhausted("full"),
            Status::unavailable("received corrupt message of type InvalidContentType"),
        ] {
            assert!(!is_transient(&s), "{s:?}");
        }
    }

    #[test]
    fn delays_double_within_bounds() {
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..8 {
            d = next_delay(d);
            seen.push(d.as_millis());
        }
        assert_eq!(seen, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
    }
}
