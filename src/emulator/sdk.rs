//! The stand-in Web SDK's origin: its own TLS listener (another origin than the sidecar's),
//! serving `tccc-sdk.js?token=…` with CORS (the loader fetches it `crossorigin="anonymous"`),
//! and the WebSocket the SDK holds while ready. Single use is enforced when the script is
//! fetched: a used, expired or unknown token gets a script that fires `tokenExpired`.

use super::state::{Emulator, TokenUse};
use crate::wire::responses::full;
use crate::wire::Body;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

const SCRIPT: &str = include_str!("standin-sdk.js");

pub async fn serve_sdk(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    em: Arc<Emulator>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    crate::listener::accept_until(listener, shutdown, move |tcp| {
        let acceptor = acceptor.clone();
        let em = em.clone();
        async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await
            else {
                return;
            };
            let svc = service_fn(move |req| {
                let em = em.clone();
                async move { Ok::<_, Infallible>(route(&em, req)) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await;
        }
    })
    .await;
}

fn token_of(req: &Request<Incoming>) -> String {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("token="))
        .unwrap_or("")
        .to_string()
}

fn cors(r: &mut Response<Body>) {
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

fn route(em: &Arc<Emulator>, req: Request<Incoming>) -> Response<Body> {
    let mut resp = match (req.method(), req.uri().path()) {
        (&Method::OPTIONS, _) => {
            let mut r = Response::new(full(""));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r.headers_mut().insert(
                "access-control-allow-methods",
                HeaderValue::from_static("GET"),
            );
            r
        }
        (&Method::GET, "/tccc-sdk.js") => script(em, &req),
        (&Method::GET, "/ws") => websocket(em, req),
        _ => {
            let mut r = Response::new(full("not found\n"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    cors(&mut resp);
    resp
}

fn script(em: &Emulator, req: &Request<Incoming>) -> Response<Body> {
    let token = token_of(req);
    let (state, seat) = match em.use_token(&token) {
        TokenUse::Fresh { seat } => ("fresh", seat),
        TokenUse::Used => ("used", String::new()),
        TokenUse::Expired => ("expired", String::new()),
        TokenUse::Unknown => ("unknown", String::new()),
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("127.0.0.1");
    let config = serde_json::json!({
        "seat": seat,
        "state": state,
        "ws": format!("wss://{host}/ws?token={token}"),
    })
    .to_string()
    // JSON inside a script: `<` and U+2028/9 can never end or break it.
    .replace('<', "\\u003c")
    .replace('\u{2028}', "\\u2028")
    .replace('\u{2029}', "\\u2029");
    let mut r = Response::new(full(SCRIPT.replace("__CONFIG__", &config)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    r
}

fn websocket(em: &Arc<Emulator>, mut req: Request<Incoming>) -> Response<Body> {
    let bad = |status: StatusCode| {
        let mut r = Response::new(full(""));
        *r.status_mut() = status;
        r
    };
    let Some(seat) = em.seat_of_used_token(&token_of(&req)) else {
        return bad(StatusCode::FORBIDDEN);
    };
    let key = match req.headers().get("sec-websocket-key") {
        Some(k)
            if req
                .headers()
                .get("sec-websocket-version")
                .is_some_and(|v| v == "13") =>
        {
            k.clone()
        }
        _ => return bad(StatusCode::BAD_REQUEST),
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on = hyper::upgrade::on(&mut req);
    let em = em.clone();
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(up),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        em.seat_event(&seat, |s| s.websocket_connects += 1);
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if v["type"] == "call" {
                em.seat_event(&seat, |s| s.calls_started += 1);
                let session = super::api::new_request_id();
                let reply = serde_json::json!({ "id": v["id"], "sessionId": session });
                if ws.send(Message::text(reply.to_string())).await.is_err() {
                    break;
                }
            }
        }
        em.seat_event(&seat, |s| s.websocket_disconnects += 1);
    });
    let mut r = bad(StatusCode::SWITCHING_PROTOCOLS);
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    r
}
