//! The schema migrations of both backends, embedded in the binary: one list of
//! `runtime/migrations/{sqlite,mysql}/<version>_<description>.sql`, read at compile time.
//!
//! Each migration is recorded in the database's `_sqlx_migrations` table with its version and the
//! SHA-384 of its text, exactly as sqlx's `migrate!` macro recorded them, so databases created by
//! earlier builds open without a migration error. (The macro is not used: it built sqlx's whole
//! database stack a second time, for the compiler.)

use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration: its version, its description (the file name's words) and the SQL of each
/// backend.
struct Step {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    mysql: &'static str,
}

macro_rules! step {
    ($version:literal, $file:literal, $description:literal) => {
        Step {
            version: $version,
            description: $description,
            sqlite: include_str!(concat!("../../../migrations/sqlite/", $file)),
            mysql: include_str!(concat!("../../../migrations/mysql/", $file)),
        }
    };
}

/// Every migration, oldest first. A new one is a new file in both directories and a line here.
const STEPS: &[Step] = &[
    step!(1, "0001_storage.sql", "storage"),
    step!(2, "0002_job_listing.sql", "job listing"),
    step!(3, "0003_retention_index.sql", "retention index"),
    step!(4, "0004_compact_graph.sql", "compact graph"),
    step!(5, "0005_job_parts.sql", "job parts"),
];

/// Which backend's SQL to take.
#[derive(Debug, Clone, Copy)]
pub(super) enum Backend {
    Sqlite,
    MySql,
}

/// The migrator for `backend`.
pub(super) fn migrator(backend: Backend) -> Migrator {
    Migrator::with_migrations(
        STEPS
            .iter()
            .map(|step| {
                let sql = match backend {
                    Backend::Sqlite => step.sqlite,
                    Backend::MySql => step.mysql,
                };
                Migration::new(
                    step.version,
                    step.description.into(),
                    MigrationType::Simple,
                    sqlx::AssertSqlSafe(sql).into_sql_str(),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of both directories is in [`STEPS`], under the version and description its
    /// name gives, and nothing else is.
    #[test]
    fn steps_match_the_migration_directories() {
        let expected: Vec<(i64, String)> = STEPS
            .iter()
            .map(|s| (s.version, s.description.to_owned()))
            .collect();
        for dir in ["sqlite", "mysql"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let mut found: Vec<(i64, String)> = std::fs::read_dir(&path)
                .unwrap()
                .map(|entry| {
                    let name = entry.unwrap().file_name().into_string().unwrap();
                    let stem = name.strip_suffix(".sql").unwrap();
                    let (version, words) = stem.split_once('_').unwrap();
                    (version.parse().unwrap(), words.replace('_', " "))
                })
                .collect();
            found.sort();
            assert_eq!(found, expected, "{}", path.display());
        }
    }

    /// What databases created by earlier builds recorded for each migration (SQLite, MySQL): the
    /// SHA-384 of the file's text. A migration once released never changes — a database that ran
    /// it would refuse to open — so a change here is a new migration instead.
    const RECORDED: &[(&str, &str)] = &[
        (
            "67316a2a302ac971d209a3aa8b8e8a4f9f0dfb266aa093034e8acb4bc81a8a0c31c67882d4c0394a4f4832de4d174cae",
            "526deba25ab985c9e7769f2fe59f8a58baae83b23e54923e0c00c72eb62784223c88749b8f6abb71431b198d225f37c0",
        ),
        (
            "cd2a728696f0703152a44cb95ca386a08bf8750af18a183eaeb5db21ad38b89db6b8803602b19a4a053726bb38934019",
            "824feb118e7e0269495575afe9c22257e780ebeefbab2d61caba65c14282185b87159d9633acae828ed98f1db555d8f1",
        ),
        (
            "f284f976101c33d32e1c5730014c2c10472a182c0e45e5c198e662cce85a6cef6d8a0539f3361e805f4cd5b393c20b9e",
            "ed4d915837461b8b80e3002a70c91ed1a81f0aed528977bdf3450164edcefe919bb4a8787236be3d57ab88d29fca62e3",
        ),
        (
            "848b7677aaea2f1ad486c87e8ddd4970732256c18a050d4b49bc78fbe76ca8ab710dc5cc35797b1a8d0b001af298ec21",
            "5798068d3d776511893a339de237508acc96dc8abb8c36ec71c4426180e3bb45bc50d0a0a43bfe046c59bf8bbd316205",
        ),
        (
            "b7b5612777346fe01b016a1c67b50d18dc9674c158cdf5dc2b203e310e1eacd22cff6de37d11370fdc402718962496b9",
            "26dfc29e2406c3111af8dd196e448df1c0f57837fb6da5ec54c6fd1e322577243c63336761c6af42e9968112fb11fb72",
        ),
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn released_migrations_keep_their_checksums() {
        let sqlite = migrator(Backend::Sqlite);
        let mysql = migrator(Backend::MySql);
        assert_eq!(sqlite.migrations.len(), RECORDED.len());
        assert_eq!(mysql.migrations.len(), RECORDED.len());
        for (i, (lite, my)) in RECORDED.iter().enumerate() {
            assert_eq!(
                hex(&sqlite.migrations[i].checksum),
                *lite,
                "sqlite migration {}",
                i + 1
            );
            assert_eq!(
                hex(&mysql.migrations[i].checksum),
                *my,
                "mysql migration {}",
                i + 1
            );
            assert!(!sqlite.migrations[i].no_tx && !mysql.migrations[i].no_tx);
        }
    }
}
