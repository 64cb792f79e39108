//! The optional plain-HTTP listener: every request gets `308 Permanent Redirect` to the same
//! path on HTTPS, so old bookmarks and typed addresses reach the TLS side.

use crate::state::{host_without_port, AppState};
use crate::wire::responses::{empty, error_page, Reject};
use crate::wire::Body;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub async fn serve_redirect(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder.http1_only());
    crate::listener::accept_until(listener, shutdown, move |tcp| {
        let state = state.clone();
        let builder = builder.clone();
        async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(redirect(&state, &req)) }
            });
            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
        }
    })
    .await;
    Ok(())
}

fn redirect(state: &AppState, req: &Request<Incoming>) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.parse::<http::uri::Authority>().is_ok() && !h.contains('@'));
    let origin = match (state.config().server.public_origin.as_deref(), host) {
        (Some(o), _) => o.trim_end_matches('/').to_string(),
        (None, Some(h)) if state.snapshot().host_allowed(h) => {
            let name = host_without_port(h);
            let name = if name.contains(':') {
                format!("[{name}]")
            } else {
                name.to_string()
            };
            match state.config().server.listen.port() {
                443 => format!("https://{name}"),
                p => format!("https://{name}:{p}"),
            }
        }
        _ => {
            return error_page(Reject::new(
                StatusCode::BAD_REQUEST,
                "redirect_host",
                "Use https:// with a known host name.",
            ))
        }
    };
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = header::HeaderValue::from_str(&format!("{origin}{pq}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
