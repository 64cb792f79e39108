//! The emulator's API listener (plain HTTP, loopback in tests and the demo): the API on `/`,
//! `GET /__emulator/stats`, and `CONNECT` tunnels to itself for SDKs that reach it as a proxy.

use super::api;
use super::state::Emulator;
use crate::wire::responses::full;
use crate::wire::Body;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Largest request body accepted, as the real service's 10 MB limit scaled to this one API.
const MAX_BODY: usize = 1024 * 1024;

pub async fn serve_api(
    listener: TcpListener,
    em: Arc<Emulator>,
    shutdown: impl Future<Output = ()>,
) {
    crate::listener::accept_until(listener, shutdown, move |tcp| {
        serve_connection(TokioIo::new(tcp), em.clone())
    })
    .await;
}

/// Serves the API on one connection (a TCP stream, or a tunnel opened with CONNECT).
async fn serve_connection<I>(io: I, em: Arc<Emulator>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let em = em.clone();
        async move { Ok::<_, Infallible>(route(&em, req).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, svc)
        .await;
}

/// `CONNECT ccc.tencentcloudapi.com:80` opens a tunnel to the emulator itself. SDKs whose
/// proxy setting tunnels (tencentcloud-sdk-nodejs) can so keep the real endpoint name, which
/// they sign and from which they derive the service name, and still reach the emulator.
fn tunnel(em: &Arc<Emulator>, mut req: Request<Incoming>) -> Response<Body> {
    let host = req.uri().host().unwrap_or("").to_ascii_lowercase();
    let mut r = Response::new(full(""));
    if !(host.starts_with("ccc.") && host.ends_with(".tencentcloudapi.com")) {
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let on = hyper::upgrade::on(&mut req);
    let em = em.clone();
    tokio::spawn(async move {
        if let Ok(upgraded) = on.await {
            serve_connection(upgraded, em).await;
        }
    });
    r
}

async fn route(em: &Arc<Emulator>, req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return tunnel(em, req);
    }
    if req.uri().path() == "/__emulator/stats" {
        return json(em.stats_json());
    }
    let method = req.method().clone();
    if method != Method::POST && method != Method::GET {
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return r;
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            em.count_answer("RequestSizeLimitExceeded");
            let body = serde_json::json!({ "Response": {
                "Error": { "Code": "RequestSizeLimitExceeded", "Message": "请求包超过限制大小。" },
                "RequestId": api::new_request_id() } });
            return json(body.to_string());
        }
    };
    let delay = em.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    json(api::handle(em, &method, &query, &parts.headers, &body).body)
}

fn json(body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    // Exactly this value: the Python SDK ignores error envelopes under any other.
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
