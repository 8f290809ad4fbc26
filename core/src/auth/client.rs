//! The client side: an interceptor that sends one bearer token on every call of a client, the
//! channel type silk's clients use, and [`ClientSecurity`], which makes those channels (with
//! TLS for `https://` URLs).

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::{AUTHORIZATION, AuthError, BEARER, Token};

/// Adds `authorization: Bearer <token>` to every request (nothing without a token). `Debug`
/// hides the token.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Sends `token` (or nothing).
    #[must_use]
    pub fn new(token: Option<&Token>) -> Self {
        Self(token.map(|t| {
            let mut value = MetadataValue::try_from(format!("{BEARER}{}", t.expose()))
                .expect("a token is visible ASCII");
            value.set_sensitive(true);
            value
        }))
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(<redacted>)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert(AUTHORIZATION, value.clone());
        }
        Ok(request)
    }
}

/// A channel whose every call carries a bearer token.
pub type AuthChannel = InterceptedService<Channel, Bearer>;

/// `channel` sending `token` on every call.
#[must_use]
pub fn with_token(channel: Channel, token: Option<&Token>) -> AuthChannel {
    InterceptedService::new(channel, Bearer::new(token))
}

/// How a process connects to silk services: the token it sends and the TLS it checks servers
/// with. The default sends nothing and connects to `http://` URLs only.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    /// The bearer token sent on every call.
    pub token: Option<Token>,
    /// TLS for `https://` URLs.
    pub tls: Option<ClientTlsConfig>,
}

impl ClientSecurity {
    /// The endpoint of `url`, tuned like every silk client (`TCP_NODELAY`, windows, connect
    /// timeout), with TLS when the URL is `https://`.
    ///
    /// # Errors
    /// [`AuthError::Endpoint`] for an invalid URL, an `https://` URL without TLS settings, or
    /// TLS settings with an `http://` URL (a plaintext client of a TLS server, or the reverse,
    /// would fail on every call).
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, AuthError> {
        let bad = |reason: String| AuthError::Endpoint {
            url: url.to_owned(),
            reason,
        };
        let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| bad(e.to_string()))?;
        let endpoint = crate::wire::tune(endpoint);
        let https = endpoint.uri().scheme_str() == Some("https");
        match (&self.tls, https) {
            (Some(tls), true) => endpoint
                .tls_config(tls.clone())
                .map_err(|e| bad(e.to_string())),
            (None, false) => Ok(endpoint),
            (None, true) => Err(bad(
                "an https:// URL needs TLS settings (client_tls.ca_file, or --ca-file / SILK_CA_FILE)"
                    .into(),
            )),
            (Some(_), false) => Err(bad(
                "TLS is configured but the URL is http://; use https://".into(),
            )),
        }
    }

    /// A lazily connected (and reconnecting) channel to `url` sending the token.
    ///
    /// # Errors
    /// As [`ClientSecurity::endpoint`].
    pub fn lazy_channel(&self, url: &str) -> Result<AuthChannel, AuthError> {
        Ok(with_token(
            self.endpoint(url)?.connect_lazy(),
            self.token.as_ref(),
        ))
    }

    /// The interceptor sending the token.
    #[must_use]
    pub fn bearer(&self) -> Bearer {
        Bearer::new(self.token.as_ref())
    }
}

/// Why a call failed in the TLS layer, in words for an operator, if it did: a TLS client
/// talking to a plaintext server, or a certificate the client does not trust. Such a failure
/// is permanent (a retry meets the same server), unlike a refused or broken connection.
#[must_use]
pub fn tls_failure(status: &tonic::Status) -> Option<&'static str> {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        text.push_str(&format!(" {e} {e:?}"));
        source = e.source();
    }
    if text.contains("InvalidContentType") {
        Some("the server does not speak TLS at this address: use an http:// address")
    } else if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") {
        Some(
            "the server's certificate is not trusted: check the CA file and that the address's host is a name in the certificate",
        )
    } else {
        None
    }
}

/// A hint for a plaintext call that broke off at once: the server may require TLS.
#[must_use]
pub fn plaintext_hint(status: &tonic::Status, url: &str) -> Option<&'static str> {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        text.push_str(&format!(" {e}"));
        source = e.source();
    }
    (url.starts_with("http://") && (text.contains("broken pipe") || text.contains("reset")))
        .then_some("if the server uses TLS, connect with an https:// address and a CA file")
}
