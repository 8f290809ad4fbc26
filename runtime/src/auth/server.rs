//! What a silk gRPC server enforces: the credentials it accepts (the auth layer in front of its
//! routes) and, when configured, TLS.

use tonic::transport::ServerTlsConfig;

use super::caller::Authority;
use super::layer::AuthLayer;

/// A server's security settings. The default checks nothing and serves plaintext: only for
/// servers inside one process (tests, benches); `silk storage`, `silk scheduler` and `silk dev`
/// always check credentials.
#[derive(Debug, Clone, Default)]
pub struct ServerSecurity {
    /// The credentials accepted; `None`: none are checked.
    pub authority: Option<Authority>,
    /// TLS of the listener; `None`: plaintext HTTP/2.
    pub tls: Option<ServerTlsConfig>,
}

impl ServerSecurity {
    /// Checking `authority`, without TLS.
    #[must_use]
    pub fn checking(authority: Authority) -> Self {
        Self {
            authority: Some(authority),
            tls: None,
        }
    }

    /// The layer enforcing the credentials.
    #[must_use]
    pub fn layer(&self) -> AuthLayer {
        self.authority
            .clone()
            .map_or_else(AuthLayer::unchecked, AuthLayer::new)
    }

    /// `server` with this TLS (if any).
    ///
    /// # Errors
    /// tonic's error for an unusable certificate or key.
    pub fn apply_tls<L>(
        &self,
        server: tonic::transport::Server<L>,
    ) -> Result<tonic::transport::Server<L>, tonic::transport::Error> {
        match &self.tls {
            Some(tls) => server.tls_config(tls.clone()),
            None => Ok(server),
        }
    }
}
