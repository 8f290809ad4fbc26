//! Helpers for tests that need a fresh storage database: a SQLite file in a directory, or a new
//! MySQL/MariaDB database on the server named by `SILK_TEST_MYSQL_URL` (one database per call, so
//! tests sharing a server never see each other's rows). Used by this crate's tests and by
//! workspace end-to-end tests.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::db::{DbResult, MySqlDb, SqliteDb};

/// The environment variable naming the MySQL/MariaDB test server.
pub const MYSQL_URL_VAR: &str = "SILK_TEST_MYSQL_URL";

/// The MySQL test server URL, or `None` after printing a skip notice naming `test`.
#[must_use]
pub fn mysql_url(test: &str) -> Option<String> {
    if let Ok(url) = std::env::var(MYSQL_URL_VAR) {
        Some(url)
    } else {
        eprintln!("skipping MySQL part of {test}: {MYSQL_URL_VAR} is not set");
        None
    }
}

/// A fresh SQLite database in `dir`.
///
/// # Errors
/// As [`SqliteDb::open`].
pub async fn fresh_sqlite(dir: &Path) -> DbResult<SqliteDb> {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    SqliteDb::open(&dir.join(format!("storage-{n}.db"))).await
}

/// Creates a new, uniquely named database (`<base>_<pid>_<n>_<nanos>`) on the server of
/// `server_url` (whose path names the base database) and returns its URL and name. The first
/// call of a process also drops databases left by test processes that are gone.
///
/// # Errors
/// The connection or `CREATE DATABASE` error.
pub async fn create_mysql_database(server_url: &str) -> DbResult<(String, String)> {
    use sqlx::Connection;
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let (prefix, base) = server_url
        .rsplit_once('/')
        .filter(|(p, b)| p.contains("://") && !b.is_empty())
        .unwrap_or((server_url, "silk_test"));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("{base}_{}_{n}_{nanos}", std::process::id());
    let mut conn = sqlx::MySqlConnection::connect(server_url).await?;
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SWEPT.swap(true, Ordering::Relaxed) {
        drop_leftovers(&mut conn, base).await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok((format!("{prefix}/{name}"), name))
}

/// Drops database `name` (made by [`create_mysql_database`]) on the server of `server_url`.
///
/// # Errors
/// The connection or `DROP DATABASE` error.
pub async fn drop_mysql_database(server_url: &str, name: &str) -> DbResult<()> {
    use sqlx::Connection;
    let mut conn = sqlx::MySqlConnection::connect(server_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS `{name}`"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// A fresh MySQL database ([`create_mysql_database`]), connected.
///
/// # Errors
/// As [`create_mysql_database`] and [`MySqlDb::connect`].
pub async fn fresh_mysql(server_url: &str) -> DbResult<MySqlDb> {
    let (url, _name) = create_mysql_database(server_url).await?;
    MySqlDb::connect(&url).await
}

/// Drops test databases of `base` left by test processes that are gone (their pid is part of
/// the name), so a developer's server does not fill up.
async fn drop_leftovers(conn: &mut sqlx::MySqlConnection, base: &str) -> DbResult<()> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE ?",
    )
    .bind(format!("{base}\\_%"))
    .fetch_all(&mut *conn)
    .await?;
    for name in names {
        let pid = name[base.len() + 1..]
            .split('_')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        let gone = pid
            .is_some_and(|p| p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists());
        if gone {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{name}`"
            )))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
