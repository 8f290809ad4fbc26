//! The HTTP endpoint: `GET /metrics` answers the exposition (any other path 404, any other
//! method 405). HTTP/1.1 by hyper; a connection lives at most [`CONNECTION_LIFETIME`] and at most
//! [`MAX_CONNECTIONS`] are served at once (a scraper needs one), so a client that opens
//! connections and never finishes a request cannot pile them up.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// The exposition's content type (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Longest life of one connection.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;

/// Serves `metrics` on `addr` (a `metrics_listen` key) until `cancel`; returns the bound
/// address. An empty `addr` turns the endpoint off. An address that cannot be bound is logged
/// and the service runs on without an endpoint: metrics never stop a service from serving.
pub async fn spawn_endpoint(
    addr: &str,
    metrics: Metrics,
    cancel: CancellationToken,
) -> Option<SocketAddr> {
    if addr.trim().is_empty() {
        tracing::info!("metrics endpoint off (metrics_listen is empty)");
        return None;
    }
    let bound = match TcpListener::bind(addr).await {
        Ok(listener) => listener.local_addr().map(|a| (listener, a)),
        Err(e) => Err(e),
    };
    match bound {
        Ok((listener, local)) => {
            tracing::info!(address = %local, "metrics endpoint listening");
            tokio::spawn(serve(listener, metrics, cancel));
            Some(local)
        }
        Err(e) => {
            tracing::warn!(address = addr, error = %e, "metrics endpoint cannot listen; serving without it (set metrics_listen)");
            None
        }
    }
}

/// Serves `metrics` on `listener` until `cancel`.
pub async fn serve(listener: TcpListener, metrics: Metrics, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = cancel.cancelled() => return,
            p = slots.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { return };
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let metrics = metrics.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(respond(&metrics, &request)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = cancel.cancelled() => {}
                _ = tokio::time::timeout(CONNECTION_LIFETIME, connection) => {}
            }
            drop(permit);
        });
    }
}

fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, metrics.encode()),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "metrics are at /metrics\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
