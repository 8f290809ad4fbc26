//! Which database errors are transient, and the one loop that retries them. Every [`super::Db`]
//! call of both backends runs its statements (or its whole transaction) through [`retry`], so a
//! deadlock or a lock-wait timeout is retried the same way on every write path.
//!
//! **The rule** ([`refusal`]): an error is retried here when the database refused the statement
//! and asked for it to be run again, having undone it —
//!
//! * MySQL/MariaDB 1213 (deadlock: the transaction was rolled back) and 1205 (lock wait timeout:
//!   the statement was rolled back; the retry starts a fresh transaction);
//! * SQLite `SQLITE_BUSY` and `SQLITE_LOCKED` (and their extended codes): nothing was written;
//! * a pool that had no free connection in time (nothing was sent).
//!
//! Everything else is permanent here and fails at once. A lost connection is not retried at this
//! level (a statement may have landed); it still counts as unavailable
//! ([`super::DbError::is_transient`]) for callers that retry idempotent work themselves.

use std::future::Future;
use std::time::Duration;

use super::{DbError, DbResult};
pub use crate::metrics::storage::DbStats;

/// How a refused database call is retried: at most `attempts` tries, sleeping between them with
/// exponential backoff from `first_backoff` up to `max_backoff` (plus up to 50 % jitter, so two
/// transactions that deadlocked do not meet again in lockstep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most tries of one call (at least 1).
    pub attempts: u32,
    /// Sleep after the first refusal.
    pub first_backoff: Duration,
    /// Longest sleep between tries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(1_000),
        }
    }
}

impl RetryPolicy {
    /// The sleep after the `attempt`-th refusal (1-based), jitter included.
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .first_backoff
            .saturating_mul(1_u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_backoff);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        base + base.mul_f64(f64::from(nanos % 500) / 1_000.0)
    }
}

/// Why the database asked for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// MySQL/MariaDB 1213.
    Deadlock,
    /// MySQL/MariaDB 1205.
    LockWaitTimeout,
    /// SQLite busy or locked.
    Busy,
    /// No pooled connection became free in time.
    PoolTimedOut,
}

impl Refusal {
    /// Short text for messages and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deadlock => "deadlock",
            Self::LockWaitTimeout => "lock wait timeout",
            Self::Busy => "database busy",
            Self::PoolTimedOut => "no free database connection",
        }
    }
}

impl Refusal {
    /// The metrics label (`silk_storage_db_retries_total{reason}`).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Deadlock => "deadlock",
            Self::LockWaitTimeout => "lock_wait_timeout",
            Self::Busy => "busy",
            Self::PoolTimedOut => "pool_timed_out",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// MySQL/MariaDB: deadlock found when trying to get lock.
const ER_LOCK_DEADLOCK: u16 = 1213;
/// MySQL/MariaDB: lock wait timeout exceeded.
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// SQLite primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;

/// The rule: whether (and why) the database asked for `e`'s statement to be run again.
#[must_use]
pub fn refusal(e: &sqlx::Error) -> Option<Refusal> {
    match e {
        sqlx::Error::PoolTimedOut => Some(Refusal::PoolTimedOut),
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                return match my.number() {
                    ER_LOCK_DEADLOCK => Some(Refusal::Deadlock),
                    ER_LOCK_WAIT_TIMEOUT => Some(Refusal::LockWaitTimeout),
                    _ => None,
                };
            }
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let code = db.code().and_then(|c| c.parse::<i64>().ok())?;
                return matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED).then_some(Refusal::Busy);
            }
            None
        }
        _ => None,
    }
}

/// MySQL/MariaDB: got a packet bigger than `max_allowed_packet`.
const ER_NET_PACKET_TOO_LARGE: u16 = 1153;
/// MySQL/MariaDB: a result row or value larger than `max_allowed_packet`.
const ER_WARN_ALLOWED_PACKET_OVERFLOWED: u16 = 1301;
/// SQLite: string or blob too big.
const SQLITE_TOOBIG: i64 = 18;

/// Whether the database refused a statement for its size: permanent, the same bytes are refused
/// every time.
#[must_use]
pub fn too_large(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(
            my.number(),
            ER_NET_PACKET_TOO_LARGE | ER_WARN_ALLOWED_PACKET_OVERFLOWED
        );
    }
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| c & 0xff == SQLITE_TOOBIG)
}

/// Runs `call` until it succeeds, fails permanently, or was refused `policy.attempts` times
/// (then [`DbError::Refused`], naming `op`). Each refusal is logged with the attempt number and
/// counted in `stats`, as is the failure.
///
/// # Errors
/// The permanent error of a try, or [`DbError::Refused`].
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    stats: &DbStats,
    op: &'static str,
    mut call: F,
) -> DbResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = DbResult<T>>,
{
    let attempts = policy.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let e = match call().await {
            Ok(v) => return Ok(v),
            Err(DbError::Sql(e)) => e,
            Err(other) => return Err(other),
        };
        let Some(reason) = refusal(&e) else {
            stats.failed("permanent");
            return Err(DbError::Sql(e));
        };
        if attempt >= attempts {
            stats.failed("refused");
            tracing::warn!(op, attempt, %reason, error = %e, "database refused the call; giving up");
            return Err(DbError::Refused {
                op,
                reason,
                attempts: attempt,
                source: e,
            });
        }
        stats.retried(reason.label());
        let sleep = policy.backoff(attempt);
        tracing::warn!(op, attempt, %reason, backoff_ms = sleep.as_millis() as u64, error = %e, "database refused the call; retrying");
        tokio::time::sleep(sleep).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            attempts: 10,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
        };
        let first = p.backoff(1);
        assert!(first >= Duration::from_millis(10) && first < Duration::from_millis(15));
        let third = p.backoff(3);
        assert!(third >= Duration::from_millis(40) && third < Duration::from_millis(60));
        let late = p.backoff(30);
        assert!(late >= Duration::from_millis(100) && late < Duration::from_millis(150));
    }

    #[tokio::test]
    async fn permanent_errors_fail_once_refusals_are_bounded() {
        let p = RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        };
        let stats = DbStats::default();
        let mut calls = 0;
        let r: DbResult<()> = retry(&p, &stats, "permanent", || {
            calls += 1;
            async { Err(DbError::Sql(sqlx::Error::RowNotFound)) }
        })
        .await;
        assert!(matches!(r, Err(DbError::Sql(sqlx::Error::RowNotFound))));
        assert_eq!(calls, 1, "a permanent error is not retried");

        let mut calls = 0;
        let r: DbResult<()> = retry(&p, &stats, "pool", || {
            calls += 1;
            async { Err(DbError::Sql(sqlx::Error::PoolTimedOut)) }
        })
        .await;
        assert_eq!(calls, 3, "a refusal is retried up to the attempt limit");
        let e = r.unwrap_err();
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "database refused pool 3 times (no free database connection); try again"
        );

        let mut calls = 0;
        let r = retry(&p, &stats, "flaky", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(DbError::Sql(sqlx::Error::PoolTimedOut))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
        // Two refusals of "pool" before it gave up, two of "flaky" before it succeeded.
        assert_eq!(stats.retries(), 4);
        let mut registry = prometheus_client::registry::Registry::default();
        crate::metrics::storage::register(
            &mut registry,
            &crate::metrics::storage::StorageCounters::default(),
            &stats,
            crate::metrics::storage::Snapshot::default,
        );
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        for line in [
            "silk_storage_db_retries_total{reason=\"pool_timed_out\"} 4\n",
            "silk_storage_db_errors_total{reason=\"permanent\"} 1\n",
            "silk_storage_db_errors_total{reason=\"refused\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
