//! The upstream connection pool, seen from the upstream: connections are kept and reused
//! whatever the shape of the response, an idle one is closed after `pool_idle_timeout`, and
//! one whose response was cut short is never used again.

use crate::common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Serves requests on each connection until the sidecar closes it; the answer depends on the
/// path. `closed` counts connections the sidecar closed.
async fn keep_alive_upstream(closed: Arc<AtomicUsize>) -> RawUpstream {
    RawUpstream::start(move |mut s, _| {
        let closed = closed.clone();
        async move {
            while let Some(head) = read_head(&mut s).await {
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let head_only = head.starts_with("HEAD ");
                let answer: Vec<u8> = match path.as_str() {
                    "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n".to_vec(),
                    "/empty" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                    "/large" => {
                        let mut v = b"HTTP/1.1 200 OK\r\nContent-Length: 4000000\r\n\r\n".to_vec();
                        v.extend(std::iter::repeat_n(b'x', 4_000_000));
                        v
                    }
                    _ if head_only => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n".to_vec(),
                    _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                };
                if s.write_all(&answer).await.is_err() {
                    break;
                }
            }
            closed.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await
}

/// Waits (bounded) until the upstream has seen a connection closed; returns how long.
async fn wait_until_closed(closed: &AtomicUsize) -> Duration {
    let step = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    while closed.load(Ordering::SeqCst) == 0 && waited < Duration::from_secs(10) {
        tokio::time::sleep(step).await;
        waited += step;
    }
    waited
}

#[tokio::test]
async fn one_upstream_connection_serves_sequential_requests_of_every_shape() {
    let closed = Arc::new(AtomicUsize::new(0));
    let up = keep_alive_upstream(closed.clone()).await;
    let side = Sidecar::start(&up.url(), "", "").await;
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        for _ in 0..5 {
            let (parts, body) = c.get("/").await;
            assert_eq!((parts.status.as_u16(), &body[..]), (200, &b"ok"[..]));
            let (parts, body) = c.get("/chunked").await;
            assert_eq!((parts.status.as_u16(), &body[..]), (200, &b"abcdef"[..]));
            let (parts, body) = c.get("/empty").await;
            assert_eq!((parts.status.as_u16(), body.len()), (204, 0));
            let req = http::Request::head("/").body(full("")).unwrap();
            let (parts, body) = read(c.send(req).await.unwrap()).await;
            assert_eq!((parts.status.as_u16(), body.len()), (200, 0));
            assert_eq!(parts.headers["content-length"], "2");
        }
    }
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        1,
        "40 requests one after another, over HTTP/1.1 and HTTP/2, need one upstream connection"
    );
    assert_eq!(closed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_idle_upstream_connection_is_closed_after_the_idle_timeout() {
    let closed = Arc::new(AtomicUsize::new(0));
    let up = keep_alive_upstream(closed.clone()).await;
    let side = Sidecar::start(&up.url(), "", "pool_idle_timeout = \"300ms\"").await;
    let (parts, _) = side.h1().await.get("/").await;
    assert_eq!(parts.status, 200);
    let waited = wait_until_closed(&closed).await;
    assert_eq!(
        closed.load(Ordering::SeqCst),
        1,
        "the sidecar closed its idle upstream connection"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "not before the timeout ({waited:?})"
    );
    // The next request opens a new one and is answered normally.
    let (parts, body) = side.h1().await.get("/").await;
    assert_eq!((parts.status.as_u16(), &body[..]), (200, &b"ok"[..]));
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_response_the_client_abandoned_does_not_leave_its_connection_in_the_pool() {
    let closed = Arc::new(AtomicUsize::new(0));
    let up = keep_alive_upstream(closed.clone()).await;
    let side = Sidecar::start(&up.url(), "", "").await;
    {
        let mut c = side.h1().await;
        let resp = c.send(get("/large")).await.unwrap();
        assert_eq!(resp.headers()["content-length"], "4000000");
        // Dropped with most of the 4 MB unread.
    }
    wait_until_closed(&closed).await;
    assert_eq!(
        closed.load(Ordering::SeqCst),
        1,
        "the half-read upstream connection was closed, not pooled"
    );
    let (parts, body) = side.h1().await.get("/").await;
    assert_eq!((parts.status.as_u16(), &body[..]), (200, &b"ok"[..]));
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}
