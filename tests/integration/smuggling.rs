//! Request smuggling and malformed requests, sent as raw bytes: each is refused with the
//! right status and nothing reaches the upstream, or (CL + TE) is handled by TE alone with
//! the connection closed afterwards.

use crate::common::*;

async fn setup() -> (Upstream, Sidecar) {
    let up = Upstream::start(handler(|s| async move {
        http::Response::new(full(format!("len={}", s.body.len())))
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    (up, side)
}

fn status_of(out: &str) -> &str {
    out.get(9..12).unwrap_or("")
}

#[tokio::test]
async fn content_length_then_chunked_is_framed_by_chunked_and_closed() {
    let (up, side) = setup().await;
    let out = raw_exchange(
        &side,
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert_smuggle_defused(&up, &out);
}

#[tokio::test]
async fn chunked_then_content_length_is_framed_by_chunked_and_closed() {
    let (up, side) = setup().await;
    let out = raw_exchange(
        &side,
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert_smuggle_defused(&up, &out);
}

/// Either refused outright, or one request framed by its chunked body with the CL stripped,
/// and the connection closed so the trailing bytes are never read as a second request.
fn assert_smuggle_defused(up: &Upstream, out: &str) {
    let seen = up.requests();
    assert!(
        seen.iter().all(|s| s.uri.path() != "/smuggled"),
        "smuggled request reached the upstream"
    );
    match status_of(out) {
        "400" => assert!(seen.is_empty()),
        "200" => {
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].body, "hello");
            assert!(
                !seen[0].headers.contains_key("content-length")
                    || seen[0].headers["content-length"] == "5"
            );
            assert_eq!(
                out.matches("HTTP/1.1 ").count(),
                1,
                "only one answer: {out}"
            );
            assert!(
                out.to_ascii_lowercase().contains("connection: close"),
                "{out}"
            );
        }
        other => panic!("unexpected status {other}: {out}"),
    }
}

#[tokio::test]
async fn differing_duplicate_content_lengths_are_refused() {
    let (up, side) = setup().await;
    let out = raw_exchange(&side, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!").await;
    assert_eq!(status_of(&out), "400", "{out}");
    let out = raw_exchange(
        &side,
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 6\r\n\r\nhello!",
    )
    .await;
    assert_eq!(status_of(&out), "400", "{out}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn signed_or_malformed_content_lengths_are_refused() {
    let (up, side) = setup().await;
    for cl in ["+5", "-1", "5x", "0x5", " ", "99999999999999999999999"] {
        let req =
            format!("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: {cl}\r\n\r\nhello");
        let out = raw_exchange(&side, req.as_bytes()).await;
        assert_eq!(status_of(&out), "400", "CL {cl:?}: {out}");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn transfer_coding_not_ending_in_chunked_is_refused() {
    let (up, side) = setup().await;
    for te in ["identity", "gzip", "chunked, gzip", "chunked, identity"] {
        let req = format!("POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        let out = raw_exchange(&side, req.as_bytes()).await;
        assert_eq!(status_of(&out), "400", "TE {te:?}: {out}");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn unknown_transfer_coding_before_chunked_gets_501() {
    let (up, side) = setup().await;
    let out = raw_exchange(
        &side,
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&out), "501", "{out}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn transfer_encoding_on_http10_is_refused() {
    let (up, side) = setup().await;
    let out = raw_exchange(&side, b"POST / HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(status_of(&out), "400", "{out}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn invalid_chunk_size_gets_400_and_no_complete_request_upstream() {
    let (up, side) = setup().await;
    let out = raw_exchange(&side, b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(status_of(&out), "400", "{out}");
    let out = raw_exchange(&side, b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(status_of(&out), "400", "{out}");
    // The upstream may have seen a request head, but never a complete request it could act on.
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn obs_folded_and_malformed_headers_are_refused() {
    let (up, side) = setup().await;
    for req in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Bad\x00: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n X-Leading-Space: a\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: local host\r\n\r\n",
    ] {
        let out = raw_exchange(&side, req).await;
        assert_eq!(
            status_of(&out),
            "400",
            "{:?}: {out}",
            String::from_utf8_lossy(req)
        );
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn oversize_header_block_gets_431_and_too_many_headers_are_refused() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "max_header_bytes = 16384\nmax_headers = 20", "").await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let out = raw_exchange(&side, big.as_bytes()).await;
    assert_eq!(status_of(&out), "431", "{}", &out[..out.len().min(200)]);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..30 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let out = raw_exchange(&side, many.as_bytes()).await;
    assert!(matches!(status_of(&out), "431" | "400"), "{out}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn connect_is_refused_and_asterisk_targets_are_options_only() {
    let (up, side) = setup().await;
    let out = raw_exchange(
        &side,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&out), "405", "{out}");
    // Asterisk-form is OPTIONS's alone, and asks about the sidecar itself: answered here.
    let out = raw_exchange(
        &side,
        b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&out), "200", "{out}");
    assert!(out.to_ascii_lowercase().contains("allow: get"), "{out}");
    let out = raw_exchange(
        &side,
        b"DELETE * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&out), "400", "{out}");
    assert_eq!(up.count(), 0);
}
