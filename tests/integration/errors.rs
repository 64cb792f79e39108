//! Upstream failures and the answers a client can trust: 502 for an unreachable or broken
//! upstream, 504 for a slow one (with per-prefix overrides), a truncated transfer (never a
//! clean end) when the upstream dies mid-body, and no replay of anything that was sent.

use crate::common::*;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn unreachable_upstream_gets_a_small_502_page_without_internals() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let side = Sidecar::start(&url, "", "").await;
    for proto in BOTH {
        let (parts, body) = side.client(proto, None).await.get("/").await;
        assert_eq!(parts.status, StatusCode::BAD_GATEWAY, "{proto:?}");
        assert_eq!(parts.headers["content-type"], "text/html; charset=utf-8");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("502 Bad Gateway"));
        assert!(
            !text.contains(&port.to_string())
                && !text.contains("127.0.0.1")
                && !text.contains("refused"),
            "{text}"
        );
    }
    let m = side.metrics();
    assert_eq!(
        metric(&m, "tccc_sidecar_upstream_errors_total{kind=\"connect\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "tccc_sidecar_http_requests_total{class=\"5xx\"}"),
        2.0,
        "{m}"
    );
}

#[tokio::test]
async fn slow_upstream_gets_504_and_prefix_override_waits_longer() {
    let up = Upstream::start(handler(|s| async move {
        if s.uri.path().starts_with("/reports/") {
            // A legacy report: slower than the default timeout, faster than its override.
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            return Response::new(full("report"));
        }
        std::future::pending::<()>().await;
        unreachable!()
    }))
    .await;
    let certs = TempDir::new("certs");
    let ca = write_certs(&certs, &["localhost"]);
    let text = base_toml(&certs, &up.url(), "", "").replace("response_timeout = \"5s\"\n", "")
        + "response_timeout = \"300ms\"\n[upstream.response_timeout_overrides]\n\"/reports/\" = \"20s\"\n";
    let side = Sidecar::start_with(certs, ca, &text).await;
    for proto in BOTH {
        let started = std::time::Instant::now();
        let (parts, body) = side.client(proto, None).await.get("/slow").await;
        assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT, "{proto:?}");
        assert!(String::from_utf8_lossy(&body).contains("504"));
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
    }
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_upstream_errors_total{kind=\"timeout\"}"
        ),
        2.0
    );
    let (parts, body) = side.h1().await.get("/reports/q3").await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, "report");
}

#[tokio::test]
async fn upstream_dying_mid_body_is_a_truncated_transfer_for_the_client() {
    let up = RawUpstream::start(|mut s, _| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                .await;
            let _ = s.flush().await;
            // Dies without the terminating chunk.
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let out = raw_exchange(&side, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("hello"));
    assert!(
        !out.ends_with("0\r\n\r\n"),
        "the client must not see a clean end: {out:?}"
    );

    let mut c = side.h2().await;
    let resp = c.send(get("/")).await.unwrap();
    let result = within("h2 body", resp.into_body().collect()).await;
    assert!(
        result.is_err(),
        "HTTP/2 stream must be reset, not ended cleanly"
    );
}

#[tokio::test]
async fn upstream_dying_mid_content_length_body_is_truncated() {
    let up = RawUpstream::start(|mut s, _| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part")
                .await;
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    let resp = c.send(get("/")).await.unwrap();
    assert_eq!(resp.headers()["content-length"], "100");
    assert!(within("h1 body", resp.into_body().collect()).await.is_err());
}

#[tokio::test]
async fn request_the_upstream_read_and_dropped_is_never_replayed() {
    let up = RawUpstream::start(|mut s, _| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        // Read the whole request, then vanish without an answer.
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    for (i, proto) in BOTH.iter().enumerate() {
        let mut c = side.client(*proto, None).await;
        let req = Request::post("/transfer-money")
            .body(full("amount=100"))
            .unwrap();
        let (parts, _) = read(c.send(req).await.unwrap()).await;
        assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            up.connections.load(Ordering::SeqCst),
            2 * i + 1,
            "the POST was sent exactly once"
        );
        let req = get("/report-that-changes-state");
        let (parts, _) = read(c.send(req).await.unwrap()).await;
        assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            up.connections.load(Ordering::SeqCst),
            2 * i + 2,
            "a GET that was sent is not replayed either"
        );
    }
}

#[tokio::test]
async fn pooled_connection_closed_by_the_upstream_is_replaced_without_error() {
    // Each upstream connection serves exactly one request and closes without saying so.
    let up = RawUpstream::start(|mut s, _| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    for _ in 0..5 {
        let (parts, body) = c.get("/").await;
        assert_eq!(parts.status, 200);
        assert_eq!(body, "ok");
    }
    let n = up.connections.load(Ordering::SeqCst);
    assert!(
        (5..=10).contains(&n),
        "each request used a live connection ({n})"
    );
}

#[tokio::test]
async fn malformed_upstream_response_gets_502() {
    let up = RawUpstream::start(|mut s, _| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n")
                .await;
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let (parts, _) = side.h1().await.get("/").await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn client_body_error_is_answered_as_the_clients_fault() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut s = side.raw().await;
    s.write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n").await.unwrap();
    let out = read_until_close(&mut s).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn an_injected_page_whose_upstream_dies_is_truncated_too() {
    // A page that gets the loader, cut off by the upstream after its head: the rewritten
    // stream must not be finished as if complete.
    let up = RawUpstream::start(|mut s, _| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n2c\r\n<html><head><title>t</title></head><body><p>\r\n")
                .await;
            let _ = s.flush().await;
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let out = raw_exchange(
        &side,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nSec-Fetch-Dest: document\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("data-tccc-loader"),
        "the page was being rewritten: {out}"
    );
    assert!(
        !out.ends_with("0\r\n\r\n"),
        "the client must not see a clean end: {out:?}"
    );
    let mut c = side.h2().await;
    let req = http::Request::get("/")
        .header("sec-fetch-dest", "document")
        .header("accept-encoding", "gzip")
        .body(empty())
        .unwrap();
    let resp = c.send(req).await.unwrap();
    let result = within("h2 body", resp.into_body().collect()).await;
    assert!(
        result.is_err(),
        "HTTP/2 stream must be reset, not ended cleanly"
    );
}
