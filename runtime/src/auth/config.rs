//! The security keys of the services' config files (see `docs/config.md`): which token files
//! a service reads (`[auth]`) and its TLS certificates (`[tls]` for a server, `[client_tls]`
//! for the connections it makes), and how they load into [`ServerSecurity`] and
//! [`ClientSecurity`]. Every path names a file; the files' contents never reach a log.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
pub use silk_core::auth::ClientTls;
use silk_core::auth::read_file as read;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use super::caller::Authority;
use super::group_token::GroupTokens;
use super::server::ServerSecurity;
use super::{AuthError, ClientSecurity, Token};

/// `[auth]` of storage: the three token files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageAuth {
    /// The cluster token, shared by storage, schedulers and execution managers.
    pub cluster_token_file: PathBuf,
    /// The admin token: creates resource groups, lists every group's jobs.
    pub admin_token_file: PathBuf,
    /// The key group tokens are signed with (replacing it revokes every group token).
    pub group_token_key_file: PathBuf,
}

/// `[auth]` of a scheduler or an execution manager: the cluster token file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerAuth {
    /// The cluster token, shared by storage, schedulers and execution managers.
    pub cluster_token_file: PathBuf,
}

/// `[tls]` of a server: its certificate and key, and optionally the CA whose client
/// certificates it requires (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// PEM certificate chain of the server.
    pub cert_file: PathBuf,
    /// PEM private key of the server.
    pub key_file: PathBuf,
    /// PEM CA certificate(s): when set, every client must present a certificate it signed.
    pub client_ca_file: Option<PathBuf>,
}

impl StorageAuth {
    /// Reads the three tokens.
    ///
    /// # Errors
    /// An unreadable or unfit token file, named.
    pub fn load(&self) -> Result<Authority, AuthError> {
        Ok(Authority {
            cluster: Some(Token::from_file(&self.cluster_token_file)?),
            admin: Some(Token::from_file(&self.admin_token_file)?),
            groups: Some(GroupTokens::new(Token::from_file(
                &self.group_token_key_file,
            )?)),
        })
    }
}

impl PeerAuth {
    /// The cluster token a scheduler or an execution manager sends.
    ///
    /// # Errors
    /// An unreadable or unfit token file, named.
    pub fn token(&self) -> Result<Token, AuthError> {
        Token::from_file(&self.cluster_token_file)
    }

    /// What a scheduler accepts: the cluster token.
    ///
    /// # Errors
    /// As [`PeerAuth::token`].
    pub fn authority(&self) -> Result<Authority, AuthError> {
        Ok(Authority {
            cluster: Some(self.token()?),
            ..Authority::default()
        })
    }
}

impl ServerTls {
    /// tonic's server TLS settings from these files.
    ///
    /// # Errors
    /// An unreadable file, named (a malformed PEM fails when the server starts).
    pub fn load(&self) -> Result<ServerTlsConfig, AuthError> {
        let identity = Identity::from_pem(read(&self.cert_file)?, read(&self.key_file)?);
        let mut tls = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca_file {
            tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(tls)
    }
}

/// A server's [`ServerSecurity`] from its config keys.
///
/// # Errors
/// As [`ServerTls::load`].
pub fn server_security(
    authority: Option<Authority>,
    tls: Option<&ServerTls>,
) -> Result<ServerSecurity, AuthError> {
    Ok(ServerSecurity {
        authority,
        tls: tls.map(ServerTls::load).transpose()?,
    })
}

/// A client's [`ClientSecurity`] from its config keys.
///
/// # Errors
/// As [`PeerAuth::token`] and [`ClientTls::load`].
pub fn client_security(
    auth: Option<&PeerAuth>,
    tls: Option<&ClientTls>,
) -> Result<ClientSecurity, AuthError> {
    Ok(ClientSecurity {
        token: auth.map(PeerAuth::token).transpose()?,
        tls: tls.map(ClientTls::load).transpose()?,
    })
}
