//! Test certificates made with rcgen: a CA, a server certificate for `localhost` and
//! `127.0.0.1`, and a client certificate, written as PEM files.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// PEM files of one test PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate (`localhost`, `127.0.0.1`).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// A client certificate signed by the CA.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

/// Makes a CA and certificates signed by it, written into `dir` with `prefix`.
pub fn make(dir: &Path, prefix: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let issue = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue(vec!["localhost".into(), "127.0.0.1".into()]);
    let (client_cert, client_key) = issue(vec!["client".into()]);
    let file = |name: &str, text: &str| {
        let path = dir.join(format!("{prefix}{name}"));
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: file("ca.pem", &ca.pem()),
        server_cert: file("server.pem", &server_cert),
        server_key: file("server.key", &server_key),
        client_cert: file("client.pem", &client_cert),
        client_key: file("client.key", &client_key),
    }
}
