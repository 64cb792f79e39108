//! Framing and streaming: bodyless responses keep their framing, large bodies stream both
//! ways, server-sent events are not buffered, WebSocket upgrades pass through, and
//! `Expect: 100-continue` works.

use crate::common::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn head_keeps_the_upstream_content_length_and_sends_no_body() {
    let up = RawUpstream::start(|mut s, _| async move {
        while read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n",
                )
                .await;
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let out = raw_exchange(
        &side,
        b"HEAD /page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 1234"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert_eq!(body, "", "a HEAD answer has no body");

    let mut c = side.h2().await;
    let resp = c
        .send(Request::head("/page").body(empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = read(resp).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["content-length"], "1234");
    assert!(body.is_empty());
}

#[tokio::test]
async fn no_content_and_not_modified_pass_through_without_a_body() {
    let up = RawUpstream::start(|mut s, _| async move {
        while let Some(head) = read_head(&mut s).await {
            let resp: &[u8] = if head.starts_with("GET /204") {
                b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"
            } else {
                b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 5000\r\n\r\n"
            };
            let _ = s.write_all(resp).await;
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let out = raw_exchange(
        &side,
        b"GET /204 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /304 HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: \"v1\"\r\nConnection: close\r\n\r\n",
    )
    .await;
    // Both answers arrive on one connection: neither carried a body that could desync the framing.
    let first_end = out.find("\r\n\r\n").unwrap() + 4;
    let (first, second) = out.split_at(first_end);
    assert!(first.starts_with("HTTP/1.1 204"), "{out}");
    let lower = first.to_ascii_lowercase();
    assert!(
        !lower.contains("content-length") && !lower.contains("transfer-encoding"),
        "{first}"
    );
    assert!(second.starts_with("HTTP/1.1 304"), "{out}");
    assert!(
        second.ends_with("\r\n\r\n"),
        "no body after the 304: {second:?}"
    );
    assert!(second.contains("\"v1\""));

    let mut c = side.h2().await;
    for path in ["/204", "/304"] {
        let (parts, body) = c.get(path).await;
        assert!(parts.status == 204 || parts.status == 304);
        assert!(body.is_empty(), "{path} over h2");
    }
}

#[tokio::test]
async fn chunked_upstream_body_is_chunked_for_h1_and_lengthless_for_h2() {
    let up = Upstream::start(handler(|_| async move {
        let (tx, body) = channel_body();
        tokio::spawn(async move {
            for part in ["a", "bc", "def"] {
                if tx.send(Bytes::from(part)).await.is_err() {
                    return;
                }
            }
        });
        Response::new(body)
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let out = raw_exchange(
        &side,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{out}"
    );
    assert!(out.ends_with("0\r\n\r\n"), "terminating chunk: {out:?}");
    let (parts, body) = side.h2().await.get("/").await;
    assert!(!parts.headers.contains_key("content-length"));
    assert_eq!(body, "abcdef");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn large_bodies_stream_intact_in_both_directions() {
    let up = Upstream::start(handler(|s| async move {
        let digest = hex::encode(Sha256::digest(&s.body));
        let mut resp = Response::new(full(pattern(8 * 1024 * 1024)));
        resp.headers_mut()
            .insert("x-upload-sha256", digest.parse().unwrap());
        resp
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let upload = pattern(6 * 1024 * 1024 + 7);
    let want_up = hex::encode(Sha256::digest(&upload));
    let want_down = hex::encode(Sha256::digest(pattern(8 * 1024 * 1024)));
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        let req = Request::put("/upload").body(full(upload.clone())).unwrap();
        let (parts, body) = read(c.send(req).await.unwrap()).await;
        assert_eq!(parts.status, 200);
        assert_eq!(
            parts.headers["x-upload-sha256"],
            want_up.as_str(),
            "{proto:?} upload"
        );
        assert_eq!(
            hex::encode(Sha256::digest(&body)),
            want_down,
            "{proto:?} download"
        );
    }
}

#[tokio::test]
async fn server_sent_events_arrive_before_the_stream_ends() {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let release_rx = Arc::new(release_rx);
    let up = Upstream::start(handler(move |_| {
        let mut release = (*release_rx).clone();
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from("data: first\n\n")).await;
                // The rest only after the client proved it already got the first event.
                let _ = release.wait_for(|r| *r).await;
                let _ = tx.send(Bytes::from("data: second\n\n")).await;
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(body)
                .unwrap()
        }
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    for proto in BOTH {
        let _ = release_tx.send(false);
        let mut c = side.client(proto, None).await;
        let resp = c.send(get("/events")).await.unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut body = resp.into_body();
        let started = std::time::Instant::now();
        let first = within("first event", body.frame())
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(first, "data: first\n\n", "{proto:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "event was held back"
        );
        release_tx.send(true).unwrap();
        let second = within("second event", body.frame())
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(second, "data: second\n\n");
    }
}

#[tokio::test]
async fn websocket_upgrade_passes_text_binary_and_close_frames() {
    let up = Upstream::ok("not a websocket").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let tls = side.raw().await;
    let (mut ws, resp) = within(
        "websocket handshake",
        tokio_tungstenite::client_async(
            format!("wss://localhost:{}/socket?room=1", side.addr.port()),
            tls,
        ),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("héllo")).await.unwrap();
    assert_eq!(
        within("echo", ws.next()).await.unwrap().unwrap(),
        Message::text("héllo")
    );
    let blob: Vec<u8> = pattern(200_000);
    ws.send(Message::binary(blob.clone())).await.unwrap();
    assert_eq!(
        within("echo", ws.next()).await.unwrap().unwrap(),
        Message::binary(blob)
    );
    ws.close(None).await.unwrap();
    let last = within("close", ws.next()).await;
    assert!(
        matches!(last, Some(Ok(Message::Close(_))) | None),
        "{last:?}"
    );

    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.uri, "/socket?room=1");
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert!(seen.headers["connection"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("upgrade"));
    assert!(seen.headers.contains_key("sec-websocket-key"));
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn upgrade_switch_to_another_protocol_than_requested_is_refused() {
    let up = RawUpstream::start(|mut s, _| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n")
                .await;
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let out = raw_exchange(
        &side,
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
}

#[tokio::test]
async fn expect_100_continue_gets_continue_then_the_answer() {
    let up = Upstream::start(handler(|s| async move {
        Response::new(full(format!("got {}", s.body.len())))
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut s = side.raw().await;
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let interim = within("100 continue", read_head(&mut s)).await.unwrap();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    s.write_all(b"hello").await.unwrap();
    let rest = read_until_close(&mut s).await;
    assert!(
        rest.starts_with("HTTP/1.1 200") && rest.ends_with("got 5"),
        "{rest}"
    );
    assert_eq!(up.requests()[0].body, "hello");
}

#[tokio::test]
async fn expect_100_continue_with_an_early_refusal_reaches_the_client() {
    let up = RawUpstream::start(|mut s, _| async move {
        // Refuses on the head alone, without reading the body.
        if read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\nConnection: close\r\n\r\ndenied")
                .await;
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut s = side.raw().await;
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut head = within("first answer", read_head(&mut s)).await.unwrap();
    if head.starts_with("HTTP/1.1 100") {
        s.write_all(b"hello").await.unwrap();
        head = within("final answer", read_head(&mut s)).await.unwrap();
    }
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
}
