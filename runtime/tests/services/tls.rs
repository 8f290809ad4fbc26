//! TLS of silk's gRPC servers, on real sockets: a client trusting the server's CA gets through;
//! a certificate from another CA fails the handshake; a plaintext client of a TLS server and a
//! TLS client of a plaintext server fail at once with an error, not a hang; with mutual TLS a
//! client without a certificate is refused. Certificates are made by rcgen for each test.

use std::net::SocketAddr;
use std::time::Duration;

use silk_proto::storage as pb;
use silk_proto::storage::session_client::SessionClient;
use silk_runtime::auth::config::{ClientTls, ServerTls};
use silk_runtime::auth::{Authority, ClientSecurity, ServerSecurity, Token};
use silk_runtime::storage::db::SqliteDb;
use silk_runtime::storage::{Storage, StorageConfig, grpc};
use tokio_util::sync::CancellationToken;

use crate::support;

use support::certs::{self, Pki};

/// A watchdog over each call: far above a handshake, far below a hang.
const WATCHDOG: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    token: Token,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Storage with the cluster token on, TLS per `tls`.
async fn storage(tls: Option<ServerTls>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDb::open(&dir.path().join("s.db")).await.unwrap();
    let storage = Storage::open(db, StorageConfig::default()).await.unwrap();
    let token = Token::generate().unwrap();
    let security = ServerSecurity {
        authority: Some(Authority {
            cluster: Some(token.clone()),
            ..Authority::default()
        }),
        tls: tls.map(|t| t.load().unwrap()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move { grpc::serve_secured(storage, listener, &security, stop.cancelled_owned()).await }
    });
    Server {
        addr,
        token,
        stop,
        _dir: dir,
    }
}

fn server_tls(pki: &Pki, mutual: bool) -> ServerTls {
    ServerTls {
        cert_file: pki.server_cert.clone(),
        key_file: pki.server_key.clone(),
        client_ca_file: mutual.then(|| pki.ca.clone()),
    }
}

/// `GetSession` over `url` with `tls`, sending the server's token.
async fn get_session(url: &str, token: &Token, tls: Option<ClientTls>) -> Result<u64, String> {
    let security = ClientSecurity {
        token: Some(token.clone()),
        tls: tls.map(|t| t.load().unwrap()),
    };
    let channel = security.lazy_channel(url).map_err(|e| e.to_string())?;
    let mut client = SessionClient::new(channel);
    let call = client.get_session(pb::Void {});
    match tokio::time::timeout(WATCHDOG, call).await {
        Err(_) => panic!("{url}: no answer within {WATCHDOG:?}: the call hangs"),
        Ok(Ok(r)) => Ok(r.into_inner().session_id),
        Ok(Err(status)) => Err(format!("{status}")),
    }
}

fn trusting(pki: &Pki) -> ClientTls {
    ClientTls {
        ca_file: Some(pki.ca.clone()),
        ..ClientTls::default()
    }
}

#[tokio::test]
async fn a_client_trusting_the_ca_gets_through_and_others_fail_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, other) = (certs::make(dir.path(), "a-"), certs::make(dir.path(), "b-"));
    let s = storage(Some(server_tls(&pki, false))).await;
    let https = format!("https://127.0.0.1:{}", s.addr.port());
    assert!(
        get_session(&https, &s.token, Some(trusting(&pki)))
            .await
            .is_ok()
    );
    // The name in the certificate is checked too: `localhost` is in it, `silk.invalid` is not.
    let localhost = format!("https://localhost:{}", s.addr.port());
    assert!(
        get_session(&localhost, &s.token, Some(trusting(&pki)))
            .await
            .is_ok()
    );
    let wrong_name = ClientTls {
        domain_name: Some("silk.invalid".into()),
        ..trusting(&pki)
    };
    let e = get_session(&https, &s.token, Some(wrong_name))
        .await
        .unwrap_err();
    assert!(
        e.contains("transport error") || e.contains("certificate"),
        "{e}"
    );
    // A server certificate from a CA the client does not trust.
    let e = get_session(&https, &s.token, Some(trusting(&other)))
        .await
        .unwrap_err();
    assert!(
        e.contains("transport error") || e.contains("certificate"),
        "{e}"
    );
}

#[tokio::test]
async fn plaintext_and_tls_do_not_mix_and_say_so_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = certs::make(dir.path(), "");
    let tls = storage(Some(server_tls(&pki, false))).await;
    let plain = storage(None).await;
    // A plaintext client of the TLS server: refused, not left waiting.
    let url = format!("http://127.0.0.1:{}", tls.addr.port());
    let e = get_session(&url, &tls.token, None).await.unwrap_err();
    assert!(!e.contains("timed out"), "{e}");
    // A TLS client of the plaintext server.
    let url = format!("https://127.0.0.1:{}", plain.addr.port());
    let e = get_session(&url, &plain.token, Some(trusting(&pki)))
        .await
        .unwrap_err();
    assert!(!e.contains("timed out"), "{e}");
    // The Rust client says what is wrong, at once (a TLS mismatch is not retried).
    let client = silk_client::Client::connect_with(
        &url,
        &ClientSecurity {
            token: None,
            tls: Some(trusting(&pki).load().unwrap()),
        },
    )
    .unwrap();
    let e = tokio::time::timeout(WATCHDOG, client.list(Default::default()))
        .await
        .expect("the client retried a TLS mismatch")
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not speak TLS"), "{e}");
    let client = silk_client::Client::connect(&format!("127.0.0.1:{}", tls.addr.port())).unwrap();
    let e = tokio::time::timeout(WATCHDOG, client.list(Default::default()))
        .await
        .expect("the client hung")
        .unwrap_err()
        .to_string();
    assert!(e.contains("if the server uses TLS"), "{e}");
    // Settings that cannot fit the URL are refused before any connection.
    let e = get_session(
        &url.replace("https", "http"),
        &plain.token,
        Some(trusting(&pki)),
    )
    .await
    .unwrap_err();
    assert!(e.contains("use https://"), "{e}");
    let e = get_session(&url, &plain.token, None).await.unwrap_err();
    assert!(e.contains("needs TLS settings"), "{e}");
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, other) = (certs::make(dir.path(), "a-"), certs::make(dir.path(), "b-"));
    let s = storage(Some(server_tls(&pki, true))).await;
    let url = format!("https://127.0.0.1:{}", s.addr.port());
    assert!(
        get_session(&url, &s.token, Some(trusting(&pki)))
            .await
            .is_err()
    );
    let with_cert = |p: &Pki| ClientTls {
        cert_file: Some(p.client_cert.clone()),
        key_file: Some(p.client_key.clone()),
        ..trusting(&pki)
    };
    assert!(
        get_session(&url, &s.token, Some(with_cert(&pki)))
            .await
            .is_ok()
    );
    // A client certificate from another CA.
    assert!(
        get_session(&url, &s.token, Some(with_cert(&other)))
            .await
            .is_err()
    );
    // The certificate does not replace the token.
    let e = get_session(&url, &Token::generate().unwrap(), Some(with_cert(&pki)))
        .await
        .unwrap_err();
    assert!(
        e.contains("Unauthenticated") || e.contains("credential"),
        "{e}"
    );
}

/// `deploy/make-certs` (openssl) makes what the services load: storage serves with its
/// certificate and token files, and a client trusting its CA gets through as `localhost` and
/// `127.0.0.1`.
#[tokio::test]
async fn the_deploy_script_makes_certificates_and_tokens_silk_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/make-certs");
    let out = std::process::Command::new(script)
        .arg(&secrets)
        .env("SILK_UID", nix_uid())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = |name: &str| secrets.join(name);
    for private in [
        "ca.key",
        "storage.key",
        "cluster-token",
        "admin-token",
        "group-token-key",
    ] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file(private))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{private}");
    }
    let auth = silk_runtime::auth::config::StorageAuth {
        cluster_token_file: file("cluster-token"),
        admin_token_file: file("admin-token"),
        group_token_key_file: file("group-token-key"),
    };
    let authority = auth.load().unwrap();
    let token = authority.cluster.clone().unwrap();
    let security = ServerSecurity {
        authority: Some(authority),
        tls: Some(
            ServerTls {
                cert_file: file("storage.pem"),
                key_file: file("storage.key"),
                client_ca_file: None,
            }
            .load()
            .unwrap(),
        ),
    };
    let db = SqliteDb::open(&dir.path().join("s.db")).await.unwrap();
    let storage = Storage::open(db, StorageConfig::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move { grpc::serve_secured(storage, listener, &security, stop.cancelled_owned()).await }
    });
    let ca = ClientTls {
        ca_file: Some(file("ca.pem")),
        ..ClientTls::default()
    };
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{port}");
        assert!(
            get_session(&url, &token, Some(ca.clone())).await.is_ok(),
            "{url}"
        );
    }
    stop.cancel();
}

/// The uid running the test (files stay readable to it when the script runs as root).
fn nix_uid() -> String {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `DevCluster` with TLS: storage and the scheduler serve `https://localhost`, the scheduler
/// and the EM check them against the CA, and a job runs end to end; a client that does not
/// trust the CA is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_cluster_with_tls_runs_a_job() {
    use silk_client::{Client, JobOutcome};
    use silk_core::graph::TaskGraph;
    use silk_runtime::dev::{DevCluster, DevOptions, DevTls};

    let dir = tempfile::tempdir().unwrap();
    let pki = certs::make(dir.path(), "dev-");
    let cluster = DevCluster::start(DevOptions {
        port_base: 0,
        slots: Some(1),
        trust: vec!["fixtures".into()],
        executor_bin: Some(support::executor_bin()),
        em_poll_ms: 200,
        tls: Some(DevTls {
            server: server_tls(&pki, false),
            client: trusting(&pki),
        }),
        ..DevOptions::new(support::packages_dir())
    })
    .await
    .unwrap();
    assert!(cluster.storage_url().starts_with("https://localhost:"));
    let run = async {
        let client = Client::connect_with(&cluster.storage_url(), &cluster.client_security())?;
        let group = client.open_group("tls", b"pw").await?;
        let graph = TaskGraph::from_json(
            r#"{"schema_version":"1.0","tasks":[{"package":"fixtures","function":"fibonacci","inputs":["int64"],"outputs":["int64"]}]}"#,
        )?;
        let job = client
            .submit(group, &graph, &[rmpv::Value::from(7)])
            .await?;
        client.wait(job).await
    };
    let outcome = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the job ends")
        .unwrap();
    let JobOutcome::Succeeded(outputs) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(outputs, [rmpv::Value::from(13)]);
    let untrusted = certs::make(dir.path(), "other-");
    let refused = get_session(
        &cluster.storage_url(),
        cluster.admin_token(),
        Some(trusting(&untrusted)),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    cluster.stop().await.unwrap();
}
