//! The admin listener (`/healthz`, `/readyz`, `/metrics`) and the plain-HTTP redirect listener.

use crate::common::*;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

async fn plain_get(
    addr: std::net::SocketAddr,
    path: &str,
    host: &str,
) -> (http::response::Parts, String) {
    let tcp = within("connect", TcpStream::connect(addr)).await.unwrap();
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", host)
        .body(empty())
        .unwrap();
    let resp = within("admin answer", s.send_request(req)).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = within("body", body.collect()).await.unwrap().to_bytes();
    (parts, String::from_utf8_lossy(&body).into_owned())
}

async fn start_admin(side: &Sidecar) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(tccc_sidecar::listener::admin::serve_admin(
        l,
        side.state.clone(),
        std::future::pending(),
    ));
    addr
}

#[tokio::test]
async fn healthz_readyz_and_metrics() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let admin = start_admin(&side).await;
    let (p, b) = plain_get(admin, "/healthz", "x").await;
    assert_eq!((p.status.as_u16(), b.as_str()), (200, "ok\n"));
    let (p, _) = plain_get(admin, "/readyz", "x").await;
    assert_eq!(p.status, 200);
    side.h1().await.get("/").await;
    let (p, m) = plain_get(admin, "/metrics", "x").await;
    assert_eq!(p.status, 200);
    assert!(p.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert_eq!(
        metric(&m, "tccc_sidecar_http_requests_total{class=\"2xx\"}"),
        1.0,
        "{m}"
    );
    assert!(m.contains("tccc_sidecar_http_request_duration_seconds_bucket"));
    assert!(m.contains("tccc_sidecar_open_connections"));
    let (p, _) = plain_get(admin, "/nope", "x").await;
    assert_eq!(p.status, 404);
}

#[tokio::test]
async fn readyz_fails_while_the_upstream_is_down() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let side = Sidecar::start(&format!("http://127.0.0.1:{port}"), "", "").await;
    let admin = start_admin(&side).await;
    let (p, b) = plain_get(admin, "/readyz", "x").await;
    assert_eq!(p.status, 503);
    assert!(b.contains("upstream not reachable"));
    let (p, _) = plain_get(admin, "/healthz", "x").await;
    assert_eq!(p.status, 200, "liveness does not depend on the upstream");
}

#[tokio::test]
async fn redirect_listener_answers_308_to_https() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "server_names = [\"oa.example.com\"]", "").await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(tccc_sidecar::listener::redirect::serve_redirect(
        l,
        side.state.clone(),
        std::future::pending(),
    ));
    let (p, _) = plain_get(addr, "/a/b?c=1", "oa.example.com:8080").await;
    assert_eq!(p.status, 308);
    // The configured TLS listener is port 0 in tests; production is 443 → no port in the URL.
    assert_eq!(p.headers["location"], "https://oa.example.com:0/a/b?c=1");
    let (p, _) = plain_get(addr, "/", "evil.example.com").await;
    assert_eq!(p.status, 400, "unknown hosts are not redirected anywhere");
    assert_eq!(up.count(), 0);
}
