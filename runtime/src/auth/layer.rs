//! The tower layer in front of every silk gRPC server: reads the RPC's path and bearer
//! credential, applies the RPC's row of [`RULES`](super::rules::RULES) and either answers with
//! the refusal itself (the service never sees the call) or passes the call on with its
//! [`Caller`] in the request's extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::codegen::http;

use super::AUTHORIZATION;
use super::caller::{Authority, Caller};
use super::rules;

/// Checks credentials in front of a service; `None` lets everything through as
/// [`Caller::Unchecked`] (in-process tests and benches).
#[derive(Debug, Clone, Default)]
pub struct AuthLayer {
    authority: Option<Arc<Authority>>,
}

impl AuthLayer {
    /// A layer enforcing `authority`.
    #[must_use]
    pub fn new(authority: Authority) -> Self {
        Self {
            authority: Some(Arc::new(authority)),
        }
    }

    /// A layer that checks nothing.
    #[must_use]
    pub fn unchecked() -> Self {
        Self { authority: None }
    }

    /// Whether this layer checks credentials.
    #[must_use]
    pub fn is_checked(&self) -> bool {
        self.authority.is_some()
    }

    /// The caller of a request to `path` with `headers`, or the refusal.
    ///
    /// # Errors
    /// `UNIMPLEMENTED` for a path without a rule; else as [`Caller::admit`].
    pub fn admit(&self, path: &str, headers: &http::HeaderMap) -> Result<Caller, Status> {
        let Some(authority) = &self.authority else {
            return Ok(Caller::Unchecked);
        };
        let Some(rule) = rules::rule(path) else {
            return Err(Status::unimplemented(format!("unknown method {path}")));
        };
        let caller = authority.identify(headers.get(AUTHORIZATION).map(|v| v.as_bytes()));
        caller.admit(rule)?;
        Ok(caller)
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service [`AuthLayer`] wraps around a server's routes.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    layer: AuthLayer,
    inner: S,
}

type Reply<E> =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send + 'static>>;

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Reply<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.layer.admit(request.uri().path(), request.headers()) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}
