//! TLS to MySQL/MariaDB, chosen in the database URL (`ssl-mode`, `ssl-ca`): storage connects to
//! a private MariaDB serving a test certificate and the session really is encrypted; a server
//! certificate from another CA fails `verify_ca`; `ssl-mode=required` against a server without
//! TLS fails instead of falling back to plaintext.

use silk_runtime::storage::db::AnyDb;
use sqlx::Connection;

use crate::certs;
use crate::private_mariadb::PrivateMariaDb;

/// The cipher of the session `url` opens (empty: plaintext).
async fn cipher(url: &str) -> String {
    let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
    let row: (String, String) = sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    row.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_reaches_mariadb_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, other) = (certs::make(dir.path(), "a-"), certs::make(dir.path(), "b-"));
    let options = [
        format!("--ssl-cert={}", pki.server_cert.display()),
        format!("--ssl-key={}", pki.server_key.display()),
        format!("--ssl-ca={}", pki.ca.display()),
    ];
    let Some(db) = PrivateMariaDb::start_with(
        "storage_reaches_mariadb_over_verified_tls",
        128 << 20,
        &options,
    ) else {
        return;
    };
    let verified = format!(
        "{}?ssl-mode=verify_identity&ssl-ca={}",
        db.admin_url(),
        pki.ca.display()
    );
    assert!(
        !cipher(&verified).await.is_empty(),
        "the session is encrypted"
    );
    let plain = format!("{}?ssl-mode=disabled", db.admin_url());
    assert_eq!(
        cipher(&plain).await,
        "",
        "ssl-mode=disabled stays plaintext"
    );
    // Storage's own connection (pool, migrations, max_allowed_packet check) over it.
    let storage = AnyDb::connect(&verified).await;
    assert!(storage.is_ok(), "{:?}", storage.err());
    // A server certificate from a CA the URL does not name.
    let wrong = format!(
        "{}?ssl-mode=verify_ca&ssl-ca={}",
        db.admin_url(),
        other.ca.display()
    );
    let Err(e) = AnyDb::connect(&wrong).await else {
        panic!("a server certificate of another CA was accepted");
    };
    assert!(
        !e.to_string().contains(":admin@"),
        "the password is not shown: {e}"
    );
}

#[tokio::test]
async fn required_tls_does_not_fall_back_to_plaintext() {
    // The shared test server serves no TLS.
    let Some(url) =
        silk_runtime::storage::testing::mysql_url("required_tls_does_not_fall_back_to_plaintext")
    else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let Err(e) = AnyDb::connect(&format!("{url}{sep}ssl-mode=required")).await else {
        // A shared server configured with TLS: nothing to show here.
        assert!(
            !cipher(&format!("{url}{sep}ssl-mode=required"))
                .await
                .is_empty()
        );
        return;
    };
    let text = e.to_string().to_lowercase();
    assert!(text.contains("tls") || text.contains("ssl"), "{e}");
}
