//! The optional plain-HTTP listener: every request gets `308 Permanent Redirect` to the same
//! path on HTTPS, so old bookmarks and typed addresses reach the TLS side.

use crate::state::{host_without_port, AppState};
use crate::wire::responses::{empty, error_page, Reject};
use crate::wire::Body;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub async fn serve_redirect(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    crate::listener::accept::serve_plain_http(listener, shutdown, move |req| {
        let state = state.clone();
        async move { redirect(&state, &req) }
    })
    .await
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
