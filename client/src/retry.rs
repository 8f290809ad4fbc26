//! Retries of unary calls: silk's one retry rule (`silk_core::retry`: transport failures are
//! repeated, verdicts and TLS failures are not; 50 ms doubling to 2 s), narrowed to
//! `UNAVAILABLE`, until [`RetryPolicy::max_elapsed`] has passed since the first attempt.
//!
//! Which calls retry: every call that is safe to repeat (reads, `OpenResourceGroup`, `StartJob`
//! and `CancelJob`, whose repeats the client recognises) retries on `UNAVAILABLE`.
//! Registering a job (`RegisterJobStream`) is not idempotent: an `UNAVAILABLE` after the request
//! went out may mean storage registered the job and the reply was lost, and a blind retry would
//! create a second job. So registering retries only when the connection could not be
//! established at all (the request never left the client); any other transport error is
//! returned to the caller.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::Status;

/// How long a call keeps retrying while storage is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total time from the first attempt after which the last error is returned (default 30 s;
    /// zero means a single attempt).
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_elapsed: Duration::from_secs(30),
        }
    }
}

/// Whether a call may be repeated after `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeat {
    /// Safe to repeat whenever storage was unavailable.
    Idempotent,
    /// Repeat only when the request was never sent (connection not established).
    OnlyUnsent,
}

impl Repeat {
    /// Within silk's retry rule, the client repeats only `UNAVAILABLE` (storage down, not yet
    /// up, or overloaded): another transport failure at once — a reset, an h2 protocol error —
    /// is what a server that does not speak the client's protocol answers, and repeating it
    /// would only hold the error back for the whole deadline. Its caller, a person or a
    /// program, decides. (The services, which must outlast each other's restarts, repeat
    /// every transport failure.)
    fn allows(self, status: &Status) -> bool {
        let unavailable =
            status.code() == tonic::Code::Unavailable && silk_core::retry::is_transient(status);
        match self {
            Self::Idempotent => unavailable,
            Self::OnlyUnsent => unavailable && never_sent(status),
        }
    }
}

/// Whether the call failed while connecting, i.e. before the request could be sent: tonic
/// reports that as `UNAVAILABLE` with a `tcp connect error` (or a connect timeout) in the source
/// chain.
pub(super) fn never_sent(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        let text = e.to_string();
        if text.contains("tcp connect error") || text.contains("connect timeout") {
            return true;
        }
        source = e.source();
    }
    false
}

/// Exponential backoff bounded by a deadline.
#[derive(Debug)]
pub(super) struct Backoff {
    deadline: Instant,
    delay: Duration,
}

impl Backoff {
    pub(super) fn new(policy: RetryPolicy) -> Self {
        Self {
            deadline: Instant::now() + policy.max_elapsed,
            delay: silk_core::retry::FIRST_DELAY,
        }
    }

    /// Sleeps before the next attempt; `false` (without sleeping) once the deadline passed.
    pub(super) async fn wait(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.delay.min(self.deadline - now)).await;
        self.delay = silk_core::retry::next_delay(self.delay);
        true
    }
}

/// Runs `call` until it succeeds, fails with a status `repeat` does not allow, or the policy's
/// deadline passes; returns the last status then.
pub(super) async fn with_retry<T, F, Fut>(
    policy: RetryPolicy,
    repeat: Repeat,
    mut call: F,
) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = Backoff::new(policy);
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(s) if repeat.allows(&s) => {
                tracing::debug!(code = ?s.code(), message = s.message(), "storage unavailable; retrying");
                if !backoff.wait().await {
                    return Err(s);
                }
            }
            Err(s) => return Err(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tonic::Code;

    use super::*;

    fn policy(ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_elapsed: Duration::from_millis(ms),
        }
    }

    #[tokio::test]
    async fn retries_unavailable_until_success() {
        let n = AtomicU32::new(0);
        let r = with_retry(policy(30_000), Repeat::Idempotent, || async {
            if n.fetch_add(1, Ordering::Relaxed) < 3 {
                Err(Status::unavailable("down"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline_and_never_retries_other_codes() {
        let start = Instant::now();
        let n = AtomicU32::new(0);
        let r: Result<(), _> = with_retry(policy(300), Repeat::Idempotent, || async {
            n.fetch_add(1, Ordering::Relaxed);
            Err(Status::unavailable("down"))
        })
        .await;
        assert_eq!(r.unwrap_err().code(), Code::Unavailable);
        assert!(start.elapsed() >= Duration::from_millis(300));
        // Sleeps of 50, 100 and the 150 ms left: four attempts (fewer only if a sleep overran).
        let attempts = n.load(Ordering::Relaxed);
        assert!((2..=4).contains(&attempts), "{attempts} attempts");

        let m = AtomicU32::new(0);
        let r: Result<(), _> = with_retry(policy(300), Repeat::Idempotent, || async {
            m.fetch_add(1, Ordering::Relaxed);
            Err(Status::not_found("job"))
        })
        .await;
        assert_eq!(r.unwrap_err().code(), Code::NotFound);
        assert_eq!(m.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn unsent_only_calls_do_not_retry_a_plain_unavailable() {
        let n = AtomicU32::new(0);
        let r: Result<(), _> = with_retry(policy(1_000), Repeat::OnlyUnsent, || async {
            n.fetch_add(1, Ordering::Relaxed);
            Err(Status::unavailable("connection reset"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(n.load(Ordering::Relaxed), 1);
    }
}
