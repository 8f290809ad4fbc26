//! `[client_tls]`: how a process checks the servers it connects to over `https://`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::AuthError;

/// `[client_tls]`: how this process checks the servers it connects to over `https://`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTls {
    /// PEM CA certificate(s) the server's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that require mutual TLS (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the URL's host).
    pub domain_name: Option<String>,
}

impl ClientTls {
    /// tonic's client TLS settings from these files.
    ///
    /// # Errors
    /// An unreadable file; a certificate without its key (or the reverse); no CA file.
    pub fn load(&self) -> Result<ClientTlsConfig, AuthError> {
        let ca = self.ca_file.as_ref().ok_or_else(|| AuthError::Tls {
            reason: "client_tls needs ca_file (the CA that signed the servers' certificates)"
                .into(),
        })?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_file(ca)?));
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read_file(cert)?, read_file(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(AuthError::Tls {
                    reason: "client_tls: cert_file and key_file go together".into(),
                });
            }
        }
        if let Some(name) = &self.domain_name {
            tls = tls.domain_name(name.clone());
        }
        Ok(tls)
    }
}

/// The bytes of `path`, or [`AuthError::Read`] naming it.
///
/// # Errors
/// See above.
pub fn read_file(path: &Path) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path).map_err(|source| AuthError::Read {
        path: path.to_owned(),
        source,
    })
}
