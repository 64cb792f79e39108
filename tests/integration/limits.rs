//! Limits an operator relies on, each answered the way a client can tell: connections per
//! client address (closed at accept; trusted proxies and other addresses unaffected, a freed
//! slot reused), the request target's length (414), and the login endpoint's body (413).

use crate::common::*;
use crate::login_common::*;
use http::{Method, Request, StatusCode};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn addr(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

/// A TLS handshake from `from`: `Ok` with a stream that answers a request, or `Err`.
async fn try_tls(side: &Sidecar, from: Option<IpAddr>) -> Result<Client, String> {
    let tcp = tcp_from(side.addr, from).await;
    let connector =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(side.tls_config(&[b"http/1.1"])));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    match within("handshake", connector.connect(name, tcp)).await {
        Ok(mut tls) => {
            tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 12];
            match within("answer", tls.read_exact(&mut buf)).await {
                Ok(_) if &buf == b"HTTP/1.1 200" => {}
                other => return Err(format!("no answer: {other:?}")),
            }
            drop(tls);
            Ok(Client::connect(side.addr, &side.ca_pem, Proto::H1, from).await)
        }
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn connections_per_client_address_are_limited_at_accept() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "max_connections_per_client = 3", "").await;
    let untrusted = addr("127.0.0.2");
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Client::connect(side.addr, &side.ca_pem, Proto::H1, untrusted).await);
    }
    for c in held.iter_mut() {
        let (p, body) = c.get("/").await;
        assert_eq!((p.status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    }
    let refused = try_tls(&side, untrusted).await;
    assert!(
        refused.is_err(),
        "the fourth from 127.0.0.2 is closed at accept"
    );
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_connections_refused_total{reason=\"per_client_limit\"}"
        ),
        1.0
    );
    // Another address, and the trusted proxy (127.0.0.1 in the test config), are not affected.
    assert!(try_tls(&side, addr("127.0.0.3")).await.is_ok());
    let mut proxy = Vec::new();
    for _ in 0..5 {
        proxy.push(Client::connect(side.addr, &side.ca_pem, Proto::H2, addr("127.0.0.1")).await);
    }
    for c in proxy.iter_mut() {
        assert_eq!(c.get("/").await.0.status, StatusCode::OK);
    }
    // The held connections still work, and a closed one frees its slot.
    assert_eq!(held[0].get("/").await.0.status, StatusCode::OK);
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = try_tls(&side, untrusted).await;
    while again.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        again = try_tls(&side, untrusted).await;
    }
    assert!(again.is_ok(), "a freed slot is reused: {:?}", again.err());
    assert_eq!(
        up.count(),
        3 + 1 + 5 + 1 + 1,
        "only the accepted connections' requests"
    );
}

#[tokio::test]
async fn an_overlong_request_target_gets_414_over_both_protocols() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "max_uri_bytes = 1024", "").await;
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        let long = format!("/search?q={}", "a".repeat(1100));
        let (p, body) = c.get(&long).await;
        assert_eq!(p.status, StatusCode::URI_TOO_LONG, "{proto:?}");
        assert!(String::from_utf8_lossy(&body).contains("too long"));
        let ok = format!("/search?q={}", "a".repeat(900));
        assert_eq!(c.get(&ok).await.0.status, StatusCode::OK, "{proto:?}");
    }
    assert_eq!(up.count(), 2, "the long ones never reached the upstream");
}

#[tokio::test]
async fn the_login_endpoint_refuses_a_request_body() {
    let e = Env::start(Opts::default()).await;
    let mut c = e.side.h1().await;
    let big = Request::builder()
        .method(Method::POST)
        .uri("/loginTCCC")
        .header("sec-fetch-site", "same-origin")
        .header("x-tccc-loader", "1")
        .header("x-remote-user", "alice")
        .body(full(vec![b'x'; 4096]))
        .unwrap();
    let (status, _, v) = send_json(&mut c, big).await;
    assert_error(status, &v, 413, "payload_too_large");
    assert_eq!(e.issued(ALICE_SEAT), 0, "no token for it");
    // The loader's own request (no body) is served on a new connection.
    let mut c = e.side.h1().await;
    let (status, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_token(status, &v);
}
