//! The admin listener (plain HTTP, meant for the pod address or loopback): `/healthz` (the
//! process is alive), `/readyz` (not shutting down, and the upstream accepts
//! connections) and `/metrics` (Prometheus text format).

use crate::state::AppState;
use crate::wire::responses::full;
use crate::wire::Body;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub async fn serve_admin(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    crate::listener::accept::serve_plain_http(listener, shutdown, move |req| {
        let state = state.clone();
        async move { route(&state, req).await }
    })
    .await
}

async fn route(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match readiness(state).await {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => {
            let mut resp = text(StatusCode::OK, state.metrics.encode());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Ready (the TLS listener cannot run without a certificate) when a TCP connection to the upstream opens within a second.
async fn readiness(state: &AppState) -> Result<(), &'static str> {
    if state.terminating.load(std::sync::atomic::Ordering::Relaxed) {
        return Err("shutting down");
    }
    let u = &state.config().upstream.url;
    let addr = (u.host.as_str(), u.port);
    match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err("upstream not reachable"),
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}
