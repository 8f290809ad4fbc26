//! A call, once received, runs to its end: [`RunToEnd`] runs each call's handler on a task of
//! its own, so a caller that goes away — its deadline passed, its connection reset, its process
//! killed — no longer cuts the handler off between two steps. Without it, a success report dropped while its completion was being
//! written left the task succeeded in memory with its children never released: the job hung.
//!
//! The caller still gets `DEADLINE_EXCEEDED` or a broken connection; what the handler changes,
//! it changes completely, as if the answer had been lost on the way back (which every caller
//! already handles).
//!
//! Long-polls are not wrapped: they take nothing until they answer, so cutting one off loses
//! nothing, while one left running after its caller went would take work for no one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::codegen::http;

/// A gRPC service each call of which runs on its own task, to its end.
#[derive(Debug, Clone)]
pub struct RunToEnd<S> {
    inner: S,
}

impl<S> RunToEnd<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        Self { inner: service }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for RunToEnd<S> {
    const NAME: &'static str = S::NAME;
}

type Reply<E> =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send + 'static>>;

impl<S, B> tower::Service<http::Request<B>> for RunToEnd<S>
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = tokio::spawn(self.inner.call(request));
        Box::pin(async move {
            match call.await {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::error!(error = %e, "gRPC handler panicked");
                    Ok(Status::internal("the call's handler failed").into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use tower::Service;

    use super::*;

    /// A handler that takes 50 ms, then records that it finished (or panics).
    #[derive(Clone)]
    struct Slow {
        finished: Arc<AtomicBool>,
        panics: bool,
    }

    impl Service<http::Request<()>> for Slow {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = Reply<Infallible>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let (finished, panics) = (self.finished.clone(), self.panics);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert!(!panics, "handler bug");
                finished.store(true, Ordering::SeqCst);
                Ok(http::Response::new(tonic::body::Body::empty()))
            })
        }
    }

    fn slow(panics: bool) -> (RunToEnd<Slow>, Arc<AtomicBool>) {
        let finished = Arc::new(AtomicBool::new(false));
        let inner = Slow {
            finished: finished.clone(),
            panics,
        };
        (RunToEnd::new(inner), finished)
    }

    #[tokio::test]
    async fn a_dropped_call_still_runs_to_its_end() {
        let (mut service, finished) = slow(false);
        let call = service.call(http::Request::new(()));
        let cut = tokio::time::timeout(Duration::from_millis(5), call).await;
        assert!(
            cut.is_err(),
            "the call was dropped before its handler ended"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(finished.load(Ordering::SeqCst), "the handler was cut off");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_internal() {
        let (mut service, _) = slow(true);
        let reply = service.call(http::Request::new(())).await.unwrap();
        let status = Status::from_header_map(reply.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::Internal);
    }
}
