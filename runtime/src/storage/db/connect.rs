//! Opening the two backends: [`SqliteDb`] and [`MySqlDb`] with their [`DbOptions`] (how long a
//! statement waits for a lock, how refused calls are retried, the largest row written). A
//! MySQL/MariaDB server whose `max_allowed_packet` is below the largest write is raised when the
//! user may, or refused at startup with a message naming the setting — never found out by a
//! group commit failing later.

use std::path::Path;
use std::time::Duration;

use sqlx::Connection;
use sqlx::mysql::{MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::migrations::{Backend, migrator};
use super::retry::{self, RetryPolicy};
use super::{DbError, DbResult};

/// Bytes a write statement carries besides its values' bytes (other columns, the per-row and
/// per-parameter headers of a 256-row insert, protocol headers), with a wide margin.
const STATEMENT_OVERHEAD_BYTES: u64 = 64 << 10;
/// Most output bytes in one multi-row insert (a larger single row gets a statement of its own).
const MAX_BYTES_PER_INSERT: u64 = 4 << 20;
/// The largest `max_allowed_packet` MySQL and MariaDB accept.
const MAX_PACKET_BYTES: u64 = 1 << 30;

/// How a backend talks to its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbOptions {
    /// How refused calls (deadlock, lock wait timeout, busy) are retried.
    pub retry: RetryPolicy,
    /// How long one statement waits for a lock another transaction holds: SQLite's busy timeout,
    /// MySQL/MariaDB's session `innodb_lock_wait_timeout` (whole seconds, at least 1).
    pub lock_wait_timeout: Duration,
    /// The largest value storage writes in one row (a task's outputs, a job's outputs frame).
    /// Larger values are refused by storage before they reach the database.
    pub max_write_bytes: u64,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            lock_wait_timeout: Duration::from_secs(10),
            max_write_bytes: 64 << 20,
        }
    }
}

impl DbOptions {
    /// Most output bytes in one multi-row insert of completions.
    pub(super) fn insert_bytes(&self) -> usize {
        usize::try_from(MAX_BYTES_PER_INSERT.min(self.max_write_bytes)).unwrap_or(usize::MAX)
    }

    /// The `max_allowed_packet` storage's largest statement needs: a multi-row insert carries at
    /// most 4 MiB (or `max_write_bytes`, if smaller) of values, a single row at most
    /// `max_write_bytes`.
    #[must_use]
    pub fn packet_needed(&self) -> u64 {
        let bytes = self
            .max_write_bytes
            .saturating_add(STATEMENT_OVERHEAD_BYTES);
        bytes.div_ceil(1024).saturating_mul(1024)
    }
}

/// SQLite backend: one database file in WAL mode, `synchronous = FULL` (a completion that was
/// acknowledged survives power loss; group commit keeps that affordable).
#[derive(Debug, Clone)]
pub struct SqliteDb {
    pub(super) pool: SqlitePool,
    pub(super) options: DbOptions,
    pub(super) stats: retry::DbStats,
}

impl SqliteDb {
    /// Opens (creating if missing) the database file with default options and runs the
    /// migrations.
    ///
    /// # Errors
    /// The connection or migration error.
    pub async fn open(path: &Path) -> DbResult<Self> {
        Self::open_with(path, DbOptions::default()).await
    }

    /// Opens (creating if missing) the database file and runs the migrations.
    ///
    /// # Errors
    /// The connection or migration error.
    pub async fn open_with(path: &Path, options: DbOptions) -> DbResult<Self> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.lock_wait_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect)
            .await?;
        let stats = retry::DbStats::default();
        retry::retry(&options.retry, &stats, "migrate", || async {
            Ok(migrator(Backend::Sqlite).run(&pool).await?)
        })
        .await?;
        Ok(Self {
            pool,
            options,
            stats,
        })
    }
}

/// MySQL / MariaDB backend.
#[derive(Debug, Clone)]
pub struct MySqlDb {
    pub(super) pool: MySqlPool,
    pub(super) options: DbOptions,
    pub(super) stats: retry::DbStats,
}

impl MySqlDb {
    /// Connects with default options; see [`Self::connect_with`].
    ///
    /// # Errors
    /// As [`Self::connect_with`].
    pub async fn connect(url: &str) -> DbResult<Self> {
        Self::connect_with(url, DbOptions::default()).await
    }

    /// Connects to `mysql://user:password@host:port/database`, makes sure the server's
    /// `max_allowed_packet` fits the largest write (raising it when the user may), and runs the
    /// migrations.
    ///
    /// # Errors
    /// [`DbError::PacketLimit`] when `max_allowed_packet` is too small and cannot be raised;
    /// the connection or migration error.
    pub async fn connect_with(url: &str, options: DbOptions) -> DbResult<Self> {
        ensure_packet_size(url, &options).await?;
        let lock_wait_s = options.lock_wait_timeout.as_millis().div_ceil(1000).max(1);
        let pool = MySqlPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SET SESSION innodb_lock_wait_timeout = {lock_wait_s}"
                    )))
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        migrator(Backend::MySql).run(&pool).await?;
        Ok(Self {
            pool,
            options,
            stats: retry::DbStats::default(),
        })
    }
}

/// Checks the server's `max_allowed_packet` against [`DbOptions::packet_needed`] and raises the
/// global value when it is lower and the user may (new connections get it).
async fn ensure_packet_size(url: &str, options: &DbOptions) -> DbResult<()> {
    let needed = options.packet_needed();
    let mut conn = MySqlConnection::connect(url).await?;
    let actual: u64 = sqlx::query_scalar("SELECT @@global.max_allowed_packet")
        .fetch_one(&mut conn)
        .await?;
    let limit = DbError::PacketLimit {
        actual,
        needed,
        max_write: options.max_write_bytes,
    };
    if actual >= needed {
        conn.close().await?;
        return Ok(());
    }
    if needed > MAX_PACKET_BYTES {
        return Err(limit);
    }
    let raised = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET GLOBAL max_allowed_packet = {needed}"
    )))
    .execute(&mut conn)
    .await;
    conn.close().await?;
    match raised {
        Ok(_) => {
            tracing::warn!(
                from = actual,
                to = needed,
                "raised the database server's max_allowed_packet to fit db_max_write_bytes"
            );
            Ok(())
        }
        Err(e) => {
            tracing::error!(actual, needed, error = %e, "max_allowed_packet too small and not raisable");
            Err(limit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_needed_covers_the_largest_write_and_a_statement() {
        let o = DbOptions {
            max_write_bytes: 20 << 20,
            ..DbOptions::default()
        };
        assert_eq!(o.packet_needed(), (20 << 20) + (64 << 10));
        assert_eq!(o.insert_bytes(), 4 << 20);
        let small = DbOptions {
            max_write_bytes: 1000,
            ..DbOptions::default()
        };
        assert_eq!(small.packet_needed(), 65 << 10, "rounded up to whole KiB");
        assert_eq!(small.insert_bytes(), 1000, "a multi-row insert fits too");
    }
}
