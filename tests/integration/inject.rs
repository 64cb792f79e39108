//! Injection through the real proxy, one test per rule and per regression case of
//! `proxy-cases.md`: codings × client `Accept-Encoding`, framing and length, bodyless,
//! conditional and range answers, streaming, charsets, markup, and the request-side gate.
//! Bodies are decoded per the `Content-Encoding` the client received and compared byte for
//! byte; headers are checked, not only statuses.

use crate::common::*;
use bytes::Bytes;
use http::{Request, Response};
use std::io::{Read, Write};
use std::time::Duration;

const TAG: &str = "<script src=\"/__tccc/loader.js\" data-tccc-loader defer></script>";
const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>CRM</title></head><body><h1>Customers</h1><p>客户 ünïcode</p></body></html>";

fn injected(page: &str) -> String {
    page.replacen("</head>", &format!("{TAG}</head>"), 1)
}

fn encode(coding: &str, plain: &[u8]) -> Vec<u8> {
    match coding {
        "identity" => plain.to_vec(),
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        "deflate-raw" => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(plain).unwrap();
            }
            out
        }
        "zstd" => zstd::encode_all(plain, 3).unwrap(),
        other => panic!("unknown coding {other}"),
    }
}

/// Decodes a body per its `Content-Encoding` (one layer: a second would be a defect).
fn decode(headers: &http::HeaderMap, body: &[u8]) -> Vec<u8> {
    let coding = headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_else(|| "identity".into());
    let mut out = Vec::new();
    match coding.as_str() {
        "identity" => out.extend_from_slice(body),
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        "deflate" => {
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(body).unwrap(),
        other => panic!("client received an unexpected coding {other:?}"),
    }
    out
}

/// An upstream that serves `page` as HTML in `coding` (whatever the request asked for, as
/// misconfigured servers do), with a strong ETag and a Content-Length.
async fn html_upstream(coding: &'static str, page: &'static str) -> Upstream {
    Upstream::start(handler(move |_s: Seen| async move {
        let body = encode(coding, page.as_bytes());
        let mut b = Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("etag", "\"v1\"")
            .header("last-modified", "Wed, 25 Nov 2026 10:00:00 GMT")
            .header("accept-ranges", "bytes")
            .header("content-length", body.len());
        let wire = if coding == "deflate-raw" {
            "deflate"
        } else {
            coding
        };
        if coding != "identity" {
            b = b.header("content-encoding", wire);
        }
        b.body(full(body)).unwrap()
    }))
    .await
}

fn nav(path: &str, accept_encoding: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path)
        .header("sec-fetch-dest", "document")
        .header("sec-fetch-mode", "navigate");
    if let Some(ae) = accept_encoding {
        b = b.header("accept-encoding", ae);
    }
    b.body(empty()).unwrap()
}

#[tokio::test]
async fn every_upstream_coding_times_every_client_accept_encoding_gets_one_tag_in_a_coding_it_accepts(
) {
    let want = injected(PAGE);
    for coding in ["identity", "gzip", "deflate", "deflate-raw", "br", "zstd"] {
        let up = html_upstream(coding, PAGE).await;
        let side = Sidecar::start(&up.url(), "", "").await;
        for proto in [Proto::H1, Proto::H2] {
            let mut c = side.client(proto, None).await;
            for ae in [
                None,
                Some("gzip"),
                Some("br"),
                Some("gzip, deflate, br, zstd"),
                Some("identity"),
            ] {
                let (parts, body) = read(c.send(nav("/", ae)).await.unwrap()).await;
                assert_eq!(parts.status, 200);
                let got = String::from_utf8(decode(&parts.headers, &body)).unwrap();
                assert_eq!(got, want, "{coding} → {ae:?} over {proto:?}");
                let sent = parts
                    .headers
                    .get("content-encoding")
                    .map(|v| v.to_str().unwrap().to_string());
                if let Some(sent) = &sent {
                    let accepted = ae.unwrap_or("");
                    assert!(
                        accepted.contains(sent.as_str()),
                        "{sent} sent to a client accepting {ae:?}"
                    );
                }
                assert!(
                    parts.headers.get("content-length").is_none(),
                    "stale length"
                );
                assert_eq!(parts.headers["etag"], "W/\"v1\"");
                assert!(parts.headers.get("accept-ranges").is_none());
                assert!(parts.headers.get("last-modified").is_none());
                let vary: Vec<_> = parts.headers.get_all("vary").iter().collect();
                assert!(vary
                    .iter()
                    .any(|v| v.to_str().unwrap().contains("Accept-Encoding")));
                if proto == Proto::H1 {
                    assert_eq!(parts.headers["transfer-encoding"], "chunked");
                }
            }
        }
        assert_eq!(
            metric(
                &side.metrics(),
                "tccc_sidecar_injections_total{result=\"injected\"}"
            ),
            10.0,
            "{coding}"
        );
    }
}

#[tokio::test]
async fn the_upstream_is_only_asked_for_codings_the_sidecar_can_decode() {
    let up = html_upstream("identity", PAGE).await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    // Each answer is read to the end, so the next request may use the same connection.
    read(
        c.send(nav("/", Some("br, zstd, gzip, compress, sdch")))
            .await
            .unwrap(),
    )
    .await;
    read(c.send(nav("/", Some("compress"))).await.unwrap()).await;
    read(c.send(nav("/", None)).await.unwrap()).await;
    // Assets keep the client's own header: they are never rewritten.
    let img = Request::get("/logo.png")
        .header("sec-fetch-dest", "image")
        .header("accept-encoding", "br, compress")
        .body(empty())
        .unwrap();
    read(c.send(img).await.unwrap()).await;
    let seen = up.requests();
    assert_eq!(seen[0].headers["accept-encoding"], "gzip, br, zstd");
    assert!(seen[1].headers.get("accept-encoding").is_none());
    assert!(seen[2].headers.get("accept-encoding").is_none());
    assert_eq!(seen[3].headers["accept-encoding"], "br, compress");
}

#[tokio::test]
async fn an_undecodable_coding_passes_through_untouched_and_is_counted() {
    let up = Upstream::start(handler(|_s: Seen| async move {
        Response::builder()
            .header("content-type", "text/html")
            .header("content-encoding", "compress")
            .header("content-length", "9")
            .body(full("LZWBYTES!"))
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    let (parts, body) = read(c.send(nav("/", Some("compress"))).await.unwrap()).await;
    assert_eq!(&body[..], b"LZWBYTES!");
    assert_eq!(parts.headers["content-encoding"], "compress");
    assert_eq!(parts.headers["content-length"], "9");
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_injection_skips_total{reason=\"encoding\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn markup_split_one_byte_per_chunk_still_gets_exactly_one_tag() {
    let page = "<html><head><title>t</title></head><body><p>slow</p></body></html>";
    let up = Upstream::start(handler(move |_s: Seen| async move {
        let (tx, body) = channel_body();
        tokio::spawn(async move {
            for b in page.as_bytes() {
                if tx
                    .send(Bytes::copy_from_slice(std::slice::from_ref(b)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Response::builder()
            .header("content-type", "text/html")
            .body(body)
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    for proto in [Proto::H1, Proto::H2] {
        let mut c = side.client(proto, None).await;
        let (_, body) = read(c.send(nav("/", None)).await.unwrap()).await;
        assert_eq!(String::from_utf8(body.to_vec()).unwrap(), injected(page));
    }
}

#[tokio::test]
async fn the_head_reaches_the_client_before_a_slow_upstream_finishes() {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let up = Upstream::start(handler(move |_s: Seen| {
        let mut release = release_rx.clone();
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx
                    .send(Bytes::from_static(
                        b"<html><head><title>t</title></head><body>first",
                    ))
                    .await;
                // The rest only after the test has seen the first part.
                let _ = release.wait_for(|r| *r).await;
                let _ = tx.send(Bytes::from_static(b" second</body></html>")).await;
            });
            Response::builder()
                .header("content-type", "text/html")
                .header("content-encoding", "identity")
                .body(body)
                .unwrap()
        }
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    for ae in [None, Some("gzip"), Some("br")] {
        let _ = release_tx.send(false);
        let mut c = side.h1().await;
        let resp = c.send(nav("/", ae)).await.unwrap();
        let (parts, mut body) = resp.into_parts();
        // Read frames until the decoded prefix holds the tag and what the upstream sent so
        // far, without the upstream finishing.
        let mut wire = Vec::new();
        let prefix = within("the head before the upstream finishes", async {
            loop {
                use http_body_util::BodyExt;
                let f = body.frame().await.unwrap().unwrap();
                if let Ok(d) = f.into_data() {
                    wire.extend_from_slice(&d);
                }
                let plain = decode_prefix(&parts.headers, &wire);
                if plain.contains(TAG) && plain.contains("first") {
                    return plain;
                }
            }
        })
        .await;
        assert!(prefix.contains("first"), "{prefix}");
        assert!(!prefix.contains("second"));
        let _ = release_tx.send(true);
        use http_body_util::BodyExt;
        let rest = within("the rest", body.collect()).await.unwrap().to_bytes();
        wire.extend_from_slice(&rest);
        let all = String::from_utf8(decode(&parts.headers, &wire)).unwrap();
        assert!(all.ends_with("first second</body></html>"), "{all}");
    }
}

/// Decodes what can be decoded of a streamed prefix.
fn decode_prefix(headers: &http::HeaderMap, wire: &[u8]) -> String {
    let coding = headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let mut out = Vec::new();
    match coding.as_str() {
        "gzip" => {
            let _ = flate2::read::GzDecoder::new(wire).read_to_end(&mut out);
        }
        "br" => {
            let _ = brotli::Decompressor::new(wire, 4096).read_to_end(&mut out);
        }
        _ => out.extend_from_slice(wire),
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn head_204_and_304_pass_through_with_their_heads() {
    let up = Upstream::start(handler(|s: Seen| async move {
        match s.uri.path() {
            "/empty" => Response::builder().status(204).body(empty()).unwrap(),
            "/cached" => Response::builder()
                .status(304)
                .header("etag", "\"v1\"")
                .header("content-length", "120")
                .body(empty())
                .unwrap(),
            _ => Response::builder()
                .header("content-type", "text/html")
                .header("content-length", PAGE.len())
                .body(if s.method == http::Method::HEAD {
                    empty()
                } else {
                    full(PAGE)
                })
                .unwrap(),
        }
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    for proto in [Proto::H1, Proto::H2] {
        let mut c = side.client(proto, None).await;
        let head = Request::head("/page")
            .header("sec-fetch-dest", "document")
            .body(empty())
            .unwrap();
        let (parts, body) = read(c.send(head).await.unwrap()).await;
        assert_eq!(parts.status, 200);
        assert!(body.is_empty());
        assert_eq!(
            parts.headers["content-length"],
            PAGE.len().to_string(),
            "HEAD keeps the upstream length"
        );
        let (parts, body) = read(c.send(nav("/empty", None)).await.unwrap()).await;
        assert_eq!(parts.status, 204);
        assert!(body.is_empty());
        let (parts, body) = read(c.send(nav("/cached", None)).await.unwrap()).await;
        assert_eq!(parts.status, 304);
        assert!(body.is_empty());
        assert_eq!(
            parts.headers["etag"], "W/\"v1\"",
            "the 304 names the tag the client holds"
        );
    }
    // The connection is still usable after each bodyless answer.
    let mut c = side.h1().await;
    for _ in 0..3 {
        let (parts, _) = read(c.send(nav("/cached", None)).await.unwrap()).await;
        assert_eq!(parts.status, 304);
    }
}

#[tokio::test]
async fn a_weakened_etag_still_revalidates() {
    let up = Upstream::start(handler(|s: Seen| async move {
        let inm = s
            .headers
            .get("if-none-match")
            .map(|v| v.to_str().unwrap().to_string());
        // RFC 9110 §13.1.2: If-None-Match uses the weak comparison.
        if inm.is_some_and(|v| v.trim_start_matches("W/") == "\"v7\"") {
            return Response::builder()
                .status(304)
                .header("etag", "\"v7\"")
                .body(empty())
                .unwrap();
        }
        Response::builder()
            .header("content-type", "text/html")
            .header("etag", "\"v7\"")
            .body(full(PAGE))
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    let (parts, _) = read(c.send(nav("/", None)).await.unwrap()).await;
    let etag = parts.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, "W/\"v7\"");
    let req = Request::get("/")
        .header("sec-fetch-dest", "document")
        .header("if-none-match", &etag)
        .body(empty())
        .unwrap();
    let (parts, body) = read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 304);
    assert!(body.is_empty());
}

#[tokio::test]
async fn ranges_are_never_mixed_with_injection() {
    let up = Upstream::start(handler(|s: Seen| async move {
        let range = s.headers.get("range").is_some();
        let pdf = s.uri.path().ends_with(".pdf");
        let ct = if pdf { "application/pdf" } else { "text/html" };
        if range {
            return Response::builder()
                .status(206)
                .header("content-type", ct)
                .header("content-range", "bytes 0-9/100")
                .body(full("0123456789"))
                .unwrap();
        }
        Response::builder()
            .header("content-type", ct)
            .body(full(PAGE))
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    // A navigation never asks the upstream for a range: it gets the whole page, injected.
    let req = Request::get("/page")
        .header("sec-fetch-dest", "document")
        .header("range", "bytes=0-9")
        .header("if-range", "\"x\"")
        .body(empty())
        .unwrap();
    let (parts, body) = read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 200);
    assert_eq!(String::from_utf8(body.to_vec()).unwrap(), injected(PAGE));
    assert!(up.requests()[0].headers.get("range").is_none());
    assert!(up.requests()[0].headers.get("if-range").is_none());
    // Any other range request gets the 206 untouched.
    for path in ["/page", "/doc.pdf"] {
        let req = Request::get(path)
            .header("range", "bytes=0-9")
            .body(empty())
            .unwrap();
        let (parts, body) = read(c.send(req).await.unwrap()).await;
        assert_eq!(parts.status, 206);
        assert_eq!(&body[..], b"0123456789");
        assert_eq!(parts.headers["content-range"], "bytes 0-9/100");
    }
}

#[tokio::test]
async fn non_utf8_pages_come_out_byte_identical_apart_from_the_tag() {
    for label in [
        "gbk",
        "gb18030",
        "big5",
        "shift_jis",
        "iso-8859-1",
        "windows-1252",
    ] {
        let enc = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap();
        let text = "<html><head><title>客服 café ｶﾀｶﾅ</title></head><body><a title=\"电话 é\">x</a></body></html>";
        let (bytes, _, _) = enc.encode(text);
        let page: &'static [u8] = Box::leak(bytes.into_owned().into_boxed_slice());
        let label: &'static str = label;
        let up = Upstream::start(handler(move |_s: Seen| async move {
            Response::builder()
                .header("content-type", format!("text/html; charset={label}"))
                .body(full(page))
                .unwrap()
        }))
        .await;
        let side = Sidecar::start(&up.url(), "", "").await;
        let mut c = side.h2().await;
        for ae in [None, Some("gzip")] {
            let (parts, body) = read(c.send(nav("/", ae)).await.unwrap()).await;
            let got = decode(&parts.headers, &body);
            let mut want = page.to_vec();
            let at = want.windows(7).position(|w| w == b"</head>").unwrap();
            want.splice(at..at, TAG.bytes());
            assert_eq!(got, want, "{label}");
            assert_eq!(
                parts.headers["content-type"],
                format!("text/html; charset={label}")
            );
        }
    }
}

fn untouchable(path: &str) -> (&'static str, Vec<u8>) {
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect() };
    match path {
        "/labelled" => (
            "text/html; charset=utf-16le",
            utf16("<html><head></head></html>"),
        ),
        "/bom" => (
            "text/html",
            [0xFF, 0xFE]
                .into_iter()
                .chain(utf16("<html><head></head></html>"))
                .collect(),
        ),
        _ => (
            "application/xhtml+xml",
            b"<html xmlns=\"http://www.w3.org/1999/xhtml\"><head></head><body>&amp;</body></html>"
                .to_vec(),
        ),
    }
}

#[tokio::test]
async fn utf16_pages_and_xhtml_are_skipped_untouched() {
    let up = Upstream::start(handler(|s: Seen| async move {
        let (ct, body) = untouchable(s.uri.path());
        Response::builder()
            .header("content-type", ct)
            .body(full(body))
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    for path in ["/labelled", "/bom", "/xhtml"] {
        let (parts, body) = read(c.send(nav(path, None)).await.unwrap()).await;
        assert_eq!(parts.status, 200);
        assert_eq!(
            body.to_vec(),
            untouchable(path).1,
            "{path} passed through byte for byte"
        );
    }
    let m = side.metrics();
    assert_eq!(
        metric(&m, "tccc_sidecar_injection_skips_total{reason=\"charset\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "tccc_sidecar_injection_skips_total{reason=\"xhtml\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "tccc_sidecar_injections_total{result=\"utf16_passthrough\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn fragments_assets_excluded_paths_and_marked_pages_get_nothing() {
    let up = Upstream::start(handler(|s: Seen| async move {
        let page = if s.uri.path() == "/marked" {
            format!("<html><head>{TAG}</head><body></body></html>")
        } else {
            PAGE.to_string()
        };
        Response::builder()
            .header("content-type", "text/html")
            .body(full(page))
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    let cases = [
        Request::get("/frag")
            .header("x-requested-with", "XMLHttpRequest")
            .body(empty())
            .unwrap(),
        Request::get("/frag")
            .header("sec-fetch-dest", "empty")
            .body(empty())
            .unwrap(),
        Request::get("/api/report")
            .header("sec-fetch-dest", "document")
            .body(empty())
            .unwrap(),
        Request::post("/form")
            .header("sec-fetch-dest", "document")
            .body(empty())
            .unwrap(),
    ];
    for req in cases {
        let (parts, body) = read(c.send(req).await.unwrap()).await;
        assert_eq!(parts.status, 200);
        assert_eq!(String::from_utf8(body.to_vec()).unwrap(), PAGE);
        assert_eq!(parts.headers["content-length"], PAGE.len().to_string());
    }
    let (_, body) = read(c.send(nav("/marked", None)).await.unwrap()).await;
    assert_eq!(
        body.windows(16)
            .filter(|w| *w == b"data-tccc-loader")
            .count(),
        1,
        "no second tag"
    );
    // An iframe document gets the loader too (it decides at run time whether to start).
    let frame = Request::get("/inner")
        .header("sec-fetch-dest", "iframe")
        .body(empty())
        .unwrap();
    let (_, body) = read(c.send(frame).await.unwrap()).await;
    assert_eq!(String::from_utf8(body.to_vec()).unwrap(), injected(PAGE));
    let m = side.metrics();
    for reason in ["xhr", "fetch_dest", "excluded", "method"] {
        assert_eq!(
            metric(
                &m,
                &format!("tccc_sidecar_injection_skips_total{{reason=\"{reason}\"}}")
            ),
            1.0,
            "{reason}"
        );
    }
    assert_eq!(
        metric(
            &m,
            "tccc_sidecar_injections_total{result=\"already_present\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn the_loader_is_served_cacheable_with_its_settings() {
    let up = Upstream::ok("x").await;
    let side = Sidecar::start(&up.url(), "", "\n[login]\npath = \"/api/tccc-login\"\n").await;
    let mut c = side.h2().await;
    let (parts, body) = c.get("/__tccc/loader.js").await;
    assert_eq!(parts.status, 200);
    assert_eq!(
        parts.headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(parts.headers["x-content-type-options"], "nosniff");
    assert!(parts.headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let js = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        js.contains("\"login\":\"/api/tccc-login\""),
        "the configured login path"
    );
    assert!(!js.contains("__CONFIG__"));
    let etag = parts.headers["etag"].clone();
    let req = Request::get("/__tccc/loader.js")
        .header("if-none-match", etag)
        .body(empty())
        .unwrap();
    let (parts, body) = read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 304);
    assert!(body.is_empty());
    let req = Request::post("/__tccc/loader.js").body(empty()).unwrap();
    let (parts, _) = read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 405);
    assert!(
        up.requests().is_empty(),
        "the loader never comes from the CRM"
    );
}

#[tokio::test]
async fn a_corrupt_compressed_page_aborts_instead_of_sending_garbage() {
    let up = Upstream::start(handler(|_s: Seen| async move {
        let mut body = encode("gzip", PAGE.as_bytes());
        let n = body.len();
        body.truncate(n - 8);
        body.extend_from_slice(b"garbage!");
        Response::builder()
            .header("content-type", "text/html")
            .header("content-encoding", "gzip")
            .body(full(body))
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    // The whole page is one chunk here, so the failure comes before the head is flushed and
    // the connection closes; with a longer page the body would be cut instead. Either way
    // the client never gets a complete answer.
    match c.send(nav("/", Some("gzip"))).await {
        Err(_) => {}
        Ok(resp) => {
            use http_body_util::BodyExt;
            let r = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect()).await;
            assert!(
                matches!(r, Ok(Err(_))),
                "the client sees an aborted body, not a complete one"
            );
        }
    }
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_injections_total{result=\"aborted\"}"
        ),
        1.0
    );
}

/// Parses JavaScript as ECMAScript 5 with acorn (installed by the test command).
pub(crate) fn parses_as_es5(js: &str) -> Result<(), String> {
    let dir = TempDir::new("es5");
    let file = dir.path("script.js");
    std::fs::write(&file, js).unwrap();
    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/node");
    let out = std::process::Command::new("node")
        .current_dir(node_dir)
        .arg("-e")
        .arg("require('acorn').parse(require('fs').readFileSync(process.argv[1], 'utf8'), {ecmaVersion: 5})")
        .arg(&file)
        .output()
        .expect("node (installed by scripts/test.sh)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn the_served_loader_is_plain_es5() {
    // The checker itself rejects what ES5 does not have.
    for newer in [
        "let x = 1;",
        "var f = () => 1;",
        "var s = `t`;",
        "class A {}",
    ] {
        assert!(parses_as_es5(newer).is_err(), "{newer} passed as ES5");
    }
    let up = Upstream::ok("x").await;
    let side = Sidecar::start(&up.url(), "", "\n[inject]\nframe_name = \"main\"\n").await;
    let mut c = side.h1().await;
    let (_, body) = c.get("/__tccc/loader.js").await;
    let js = String::from_utf8(body.to_vec()).unwrap();
    assert!(js.contains("\"frame\":\"main\""));
    if let Err(e) = parses_as_es5(&js) {
        panic!("the loader is not ES5: {e}");
    }
}

/// An upstream page with the given CSP header (and optional extra header), body `page`.
async fn csp_upstream(
    csp: &'static str,
    extra: Option<(&'static str, &'static str)>,
    page: &'static str,
) -> Upstream {
    Upstream::start(handler(move |_s: Seen| async move {
        let mut b = Response::builder()
            .header("content-type", "text/html")
            .header("cache-control", "public, max-age=60, s-maxage=600");
        if !csp.is_empty() {
            b = b.header("content-security-policy", csp);
        }
        if let Some((k, v)) = extra {
            b = b.header(k, v);
        }
        b.body(full(page)).unwrap()
    }))
    .await
}

fn tag_nonce(html: &str) -> Option<String> {
    let start = html.find("<script src=\"/__tccc/loader.js\"")?;
    let tag = &html[start..start + html[start..].find('>')?];
    let n = tag.split("nonce=\"").nth(1)?;
    Some(n[..n.find('"')?].to_string())
}

#[tokio::test]
async fn a_strict_nonce_policy_keeps_its_nonce_and_the_loader_carries_it() {
    let up = csp_upstream(
        "script-src 'nonce-pAg3n0nce' 'strict-dynamic'; default-src 'self'",
        None,
        "<html><head><script nonce=\"pAg3n0nce\">var ok=1;</script></head><body></body></html>",
    )
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h2().await;
    let (parts, body) = read(c.send(nav("/", None)).await.unwrap()).await;
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(tag_nonce(&html).as_deref(), Some("pAg3n0nce"), "{html}");
    let csp = parts.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("script-src 'nonce-pAg3n0nce' 'strict-dynamic'; default-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(
        csp.contains("connect-src 'self' https://tccc.qcloud.com https://api.tccc.qcloud.com"),
        "{csp}"
    );
    // The page's nonce was reused: the answer may still be cached as before.
    assert_eq!(
        parts.headers["cache-control"],
        "public, max-age=60, s-maxage=600"
    );
}

/// Whether a CSP source list (one directive's tokens) allows `scheme://host`, as a browser
/// matches host sources (a `*.` wildcard covers subdomains only).
fn csp_allows(sources: &[&str], scheme: &str, host: &str) -> bool {
    sources.iter().any(|s| {
        s.split_once("://").is_some_and(|(sch, pat)| {
            sch == scheme && tccc_sidecar::inject::sdk_hosts::covers(pat, host)
        })
    })
}

#[tokio::test]
async fn every_host_tencent_publishes_is_allowed_by_the_rewritten_policy() {
    use tccc_sidecar::inject::sdk_hosts::{Use, HOSTS};
    let up = csp_upstream(
        "default-src 'self'",
        None,
        "<html><head></head><body></body></html>",
    )
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h2().await;
    let (parts, _) = read(c.send(nav("/", None)).await.unwrap()).await;
    let csp = parts.headers["content-security-policy"].to_str().unwrap();
    let directive = |name: &str| -> Vec<&str> {
        csp.split(';')
            .map(str::trim)
            .find_map(|d| d.strip_prefix(name).map(|r| r.split_whitespace().collect()))
            .unwrap_or_else(|| panic!("no {name} in {csp}"))
    };
    let (script, connect, media) = (
        directive("script-src "),
        directive("connect-src "),
        directive("media-src "),
    );
    for h in HOSTS {
        let host = h.name.replace("*.", "x1.");
        match h.uses {
            Use::Script => assert!(csp_allows(&script, "https", &host), "{host}: {csp}"),
            Use::Https => assert!(csp_allows(&connect, "https", &host), "{host}"),
            Use::Wss => assert!(csp_allows(&connect, "wss", &host), "{host}"),
            Use::Both => {
                assert!(csp_allows(&connect, "https", &host), "{host}");
                assert!(csp_allows(&connect, "wss", &host), "{host}");
            }
            Use::Media => {
                assert!(csp_allows(&connect, "https", &host), "{host}");
                assert!(csp_allows(&media, "https", &host), "{host}");
            }
        }
    }
    // Nothing beyond the published hosts: no wildcard over shared tenant storage.
    for bucket in [
        "evil-1250000000.cos.ap-shanghai.myqcloud.com",
        "x.myqcloud.com",
    ] {
        assert!(!csp_allows(&connect, "https", bucket), "{bucket}: {csp}");
    }
}

#[tokio::test]
async fn a_host_list_policy_gets_a_fresh_nonce_and_the_answer_turns_private() {
    let up = csp_upstream("default-src 'self'", None, PAGE).await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    let (parts, body) = read(c.send(nav("/", None)).await.unwrap()).await;
    let html = String::from_utf8(body.to_vec()).unwrap();
    let nonce = tag_nonce(&html).expect("a nonce on the tag");
    assert!(nonce.len() >= 22, "128 bits: {nonce}");
    let csp = parts.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains(&format!("script-src 'self' 'nonce-{nonce}'")),
        "{csp}"
    );
    assert_eq!(parts.headers["cache-control"], "private, max-age=60");
    // A second request gets another nonce.
    let (_, body2) = read(c.send(nav("/", None)).await.unwrap()).await;
    assert_ne!(
        tag_nonce(std::str::from_utf8(&body2).unwrap()).unwrap(),
        nonce
    );
}

#[tokio::test]
async fn an_unsafe_inline_policy_gets_no_nonce_so_its_inline_scripts_still_run() {
    let up = csp_upstream(
        "script-src 'unsafe-inline' https://cdn.crm.example",
        None,
        "<html><head><script>legacy()</script></head><body onload=\"init()\"></body></html>",
    )
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    let (parts, body) = read(c.send(nav("/", None)).await.unwrap()).await;
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(
        tag_nonce(&html),
        None,
        "a nonce would switch 'unsafe-inline' off"
    );
    let csp = parts.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("script-src 'unsafe-inline' https://cdn.crm.example https://localhost/__tccc/loader.js "),
        "{csp}"
    );
    assert!(!csp.contains("nonce"));
    assert_eq!(
        parts.headers["cache-control"],
        "public, max-age=60, s-maxage=600"
    );
}

#[tokio::test]
async fn meta_policies_are_rewritten_with_the_same_nonce_as_the_tag() {
    let up = csp_upstream(
        "",
        None,
        "<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'self'\"><title>t</title></head><body></body></html>",
    )
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    let (parts, body) = read(c.send(nav("/", None)).await.unwrap()).await;
    let html = String::from_utf8(body.to_vec()).unwrap();
    let nonce = tag_nonce(&html).expect("the meta policy needed a nonce");
    assert!(
        html.contains(&format!("content=\"script-src 'self' 'nonce-{nonce}' ")),
        "{html}"
    );
    assert!(
        parts.headers.get("content-security-policy").is_none(),
        "no header policy is invented"
    );
}

#[tokio::test]
async fn pages_without_a_policy_get_none_and_the_microphone_is_never_blocked() {
    let up = csp_upstream(
        "",
        Some(("permissions-policy", "camera=(), microphone=()")),
        PAGE,
    )
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    let (parts, body) = read(c.send(nav("/", None)).await.unwrap()).await;
    assert_eq!(String::from_utf8(body.to_vec()).unwrap(), injected(PAGE));
    assert!(parts.headers.get("content-security-policy").is_none());
    assert!(parts
        .headers
        .get("content-security-policy-report-only")
        .is_none());
    assert_eq!(
        parts.headers["permissions-policy"],
        "camera=(), microphone=(self)"
    );
}

#[tokio::test]
async fn the_report_only_canary_leaves_the_enforced_policy_alone() {
    let up = csp_upstream("default-src 'self'; report-uri /csp", None, PAGE).await;
    let side = Sidecar::start(&up.url(), "", "\n[inject]\ncsp = \"report-only\"\n").await;
    let mut c = side.h1().await;
    let (parts, body) = read(c.send(nav("/", None)).await.unwrap()).await;
    assert_eq!(
        parts.headers["content-security-policy"],
        "default-src 'self'; report-uri /csp"
    );
    let ro = parts.headers["content-security-policy-report-only"]
        .to_str()
        .unwrap();
    let nonce = tag_nonce(std::str::from_utf8(&body).unwrap()).unwrap();
    assert!(ro.contains(&format!("'nonce-{nonce}'")), "{ro}");
    assert!(ro.contains("report-uri /csp"));
}

#[tokio::test]
async fn the_sdk_origin_learned_from_a_login_is_allowed_in_later_pages() {
    use crate::login_common::*;
    let page = "<html><head></head><body></body></html>";
    let crm = handler(move |_s: Seen| async move {
        Response::builder()
            .header("content-type", "text/html")
            .header(
                "content-security-policy",
                "script-src 'self' 'unsafe-inline'; connect-src 'self'",
            )
            .body(full(page))
            .unwrap()
    });
    let env = Env::start(Opts {
        crm: Some(crm),
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    let (parts, _) = read(c.send(nav("/", None)).await.unwrap()).await;
    let before = parts.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!before.contains("https://127.0.0.1:9"), "{before}");
    let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_token(s, &v);
    let (parts, _) = read(c.send(nav("/", None)).await.unwrap()).await;
    let after = parts.headers["content-security-policy"].to_str().unwrap();
    assert!(after.contains("script-src 'self' 'unsafe-inline' https://29294-22989-29805-29810.cdn-go.cn https://127.0.0.1:9"), "{after}");
    assert!(
        after.contains("wss://127.0.0.1:9"),
        "the SDK's WebSocket: {after}"
    );
}

#[tokio::test]
async fn a_large_streamed_page_comes_out_whole_after_the_tag_is_placed() {
    // After </head> the rest passes through untokenized: it must still be byte for byte
    // the upstream's, whatever it contains, in every coding.
    let mut page = String::from("<html><head><title>big</title></head><body>");
    for i in 0..6000 {
        page.push_str(&format!(
            "<tr><td>{i}</td><td>客户</td></tr><script>var s=\"<head></head>\";</script>\n"
        ));
    }
    page.push_str("<script src=\"/x\" data-tccc-loader></script></body></html>");
    let page: &'static str = Box::leak(page.into_boxed_str());
    let up = Upstream::start(handler(move |s: Seen| async move {
        let gz = s.uri.path() == "/gz";
        let body = if gz {
            encode("gzip", page.as_bytes())
        } else {
            page.as_bytes().to_vec()
        };
        let (tx, stream) = channel_body();
        tokio::spawn(async move {
            for c in body.chunks(8192) {
                if tx.send(Bytes::copy_from_slice(c)).await.is_err() {
                    return;
                }
            }
        });
        let mut b = Response::builder().header("content-type", "text/html");
        if gz {
            b = b.header("content-encoding", "gzip");
        }
        b.body(stream).unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let want = page.replacen("</head>", &format!("{TAG}</head>"), 1);
    for (path, ae) in [("/plain", None), ("/gz", Some("gzip, br")), ("/gz", None)] {
        let mut c = side.h2().await;
        let (parts, body) = read(c.send(nav(path, ae)).await.unwrap()).await;
        let got = String::from_utf8(decode(&parts.headers, &body)).unwrap();
        assert_eq!(got.len(), want.len(), "{path} {ae:?}");
        assert!(got == want, "{path} {ae:?}: content differs");
    }
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_injections_total{result=\"injected\"}"
        ),
        3.0
    );
}

#[tokio::test]
async fn inject_mode_off_passes_pages_through_untouched_but_still_serves_the_loader() {
    let up = html_upstream("gzip", PAGE).await;
    let side = Sidecar::start(&up.url(), "", "\n[inject]\nmode = \"off\"\n").await;
    let mut c = side.h1().await;
    let (parts, body) = read(c.send(nav("/", Some("gzip, br"))).await.unwrap()).await;
    assert_eq!(parts.status, 200);
    assert_eq!(
        parts.headers["content-encoding"], "gzip",
        "the upstream's coding"
    );
    assert_eq!(
        body.as_ref(),
        encode("gzip", PAGE.as_bytes()),
        "byte for byte"
    );
    assert_eq!(
        parts.headers["etag"], "\"v1\"",
        "a strong ETag stays strong"
    );
    assert_eq!(
        up.requests()[0].headers["accept-encoding"],
        "gzip, br",
        "the client's own Accept-Encoding"
    );
    let (parts, body) = c.get("/__tccc/loader.js").await;
    assert_eq!(parts.status, 200);
    assert!(String::from_utf8_lossy(&body).contains("/loginTCCC"));
    assert_eq!(up.count(), 1, "the loader never reaches the upstream");
}
