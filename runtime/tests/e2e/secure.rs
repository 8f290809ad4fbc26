//! The credentials and certificates of one e2e cluster: token files (mode 0600) for the cluster,
//! admin and group-token key, and a test PKI (rcgen) whose server certificate storage and the
//! scheduler serve TLS with. The services' config tables come from here, and
//! [`Secrets::all`] lists every secret so a test can check that none reaches a log.

use std::path::{Path, PathBuf};

use silk_runtime::auth::{ClientSecurity, Token, write_secret_file};

use super::support::certs::{self, Pki};

/// One cluster's secrets.
#[derive(Debug)]
pub struct Secrets {
    cluster: (Token, PathBuf),
    admin: (Token, PathBuf),
    key: (Token, PathBuf),
    pki: Pki,
}

fn token_file(dir: &Path, name: &str) -> (Token, PathBuf) {
    let token = Token::generate().unwrap();
    let path = dir.join(name);
    write_secret_file(&path, token.expose()).unwrap();
    (token, path)
}

fn quoted(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

impl Secrets {
    /// Fresh tokens and certificates in `dir`.
    pub fn make(dir: &Path) -> Self {
        Self {
            cluster: token_file(dir, "cluster-token"),
            admin: token_file(dir, "admin-token"),
            key: token_file(dir, "group-token-key"),
            pki: certs::make(dir, "tls-"),
        }
    }

    fn server_tls(&self) -> String {
        format!(
            "[tls]\ncert_file = {}\nkey_file = {}\n",
            quoted(&self.pki.server_cert),
            quoted(&self.pki.server_key)
        )
    }

    fn client_tls(&self) -> String {
        format!("[client_tls]\nca_file = {}\n", quoted(&self.pki.ca))
    }

    fn peer_auth(&self) -> String {
        format!("[auth]\ncluster_token_file = {}\n", quoted(&self.cluster.1))
    }

    /// Storage's `[auth]` and `[tls]` tables.
    pub fn storage_toml(&self) -> String {
        format!(
            "[auth]\ncluster_token_file = {}\nadmin_token_file = {}\ngroup_token_key_file = {}\n{}",
            quoted(&self.cluster.1),
            quoted(&self.admin.1),
            quoted(&self.key.1),
            self.server_tls()
        )
    }

    /// The scheduler's `[auth]`, `[tls]` and `[client_tls]` tables.
    pub fn scheduler_toml(&self) -> String {
        format!(
            "{}{}{}",
            self.peer_auth(),
            self.server_tls(),
            self.client_tls()
        )
    }

    /// An execution manager's `[auth]` and `[client_tls]` tables.
    pub fn em_toml(&self) -> String {
        format!("{}{}", self.peer_auth(), self.client_tls())
    }

    /// What a job client connects with: the CA and the admin token.
    pub fn admin_client(&self) -> ClientSecurity {
        ClientSecurity {
            token: Some(self.admin.0.clone()),
            tls: Some(
                silk_runtime::auth::config::ClientTls {
                    ca_file: Some(self.pki.ca.clone()),
                    ..Default::default()
                }
                .load()
                .unwrap(),
            ),
        }
    }

    /// Every secret of the cluster: the three tokens.
    pub fn all(&self) -> Vec<String> {
        [&self.cluster.0, &self.admin.0, &self.key.0]
            .iter()
            .map(|t| t.expose().to_owned())
            .collect()
    }
}
