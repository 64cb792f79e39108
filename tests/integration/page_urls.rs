//! Absolute URLs of the app's own address in pages (`inject.rewrite_urls = true`), through the real
//! proxy, compared byte for byte: every attribute that carries a URL is moved to the public
//! origin, in plain, gzip and GBK pages and with the page split into 7-byte chunks (URLs cut
//! across chunks); the same URLs in a script, a style block, a JSON island, a textarea and an
//! inline handler, `integrity`, other origins and other ports are left exactly as they were.

use crate::common::*;
use bytes::Bytes;
use http::{Request, Response};
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

const TAG: &str = "<script src=\"/__tccc/loader.js\" data-tccc-loader defer></script>";
const INTERNAL: &str = "internal_origins = [\"http://oa.intranet:8080\"]";
const ON: &str = "\n\n[inject]\nrewrite_urls = true";

/// The page as (what the app writes, what the browser must get); `{UP}` is the upstream's
/// own origin, `{PUB}` the public one.
const PIECES: &[(&str, &str)] = &[
    ("<!doctype html><html><head><meta charset=\"utf-8\"><title>OA 客户</title>", "same"),
    ("<base href=\"http://oa.intranet:8080/app/\">", "<base href=\"{PUB}/app/\">"),
    (
        "<link rel=\"stylesheet\" href=\"http://oa.intranet:8080/s.css\" integrity=\"sha384-abc\">",
        "<link rel=\"stylesheet\" href=\"{PUB}/s.css\" integrity=\"sha384-abc\">",
    ),
    (
        "<meta http-equiv=\"refresh\" content=\"600; url=http://oa.intranet:8080/timeout\">",
        "<meta http-equiv=\"refresh\" content=\"600; url={PUB}/timeout\">",
    ),
    (
        "<script src=\"{UP}/a.js\" integrity=\"sha384-xyz\"></script>",
        "<script src=\"{PUB}/a.js\" integrity=\"sha384-xyz\"></script>",
    ),
    ("<script>var u = \"http://oa.intranet:8080/in-script\"; var j = {\"href\": \"{UP}/j\"};</script>", "same"),
    ("<style>body{background:url(http://oa.intranet:8080/bg.png)}</style>", "same"),
    ("<script type=\"application/json\" id=\"d\">{\"url\":\"http://oa.intranet:8080/json\"}</script>", "same"),
    ("</head><body>", "same"),
    (
        "<a href=\"http://oa.intranet:8080/a?x=1&amp;y=2\" onclick=\"location='http://oa.intranet:8080/onclick'\">客户</a>",
        "<a href=\"{PUB}/a?x=1&amp;y=2\" onclick=\"location='http://oa.intranet:8080/onclick'\">客户</a>",
    ),
    ("<a href=\"https://cdn.example.net/x\">other</a><a href=\"http://oa.intranet:8081/p\">port</a>", "same"),
    ("<a href=\"HTTP://OA.INTRANET:8080/Case\">case</a>", "<a href=\"{PUB}/Case\">case</a>"),
    (
        "<img src=\"http://localhost/plain.png\" srcset=\"http://oa.intranet:8080/1.png 1x, /2.png 2x\">",
        "<img src=\"{PUB}/plain.png\" srcset=\"{PUB}/1.png 1x, /2.png 2x\">",
    ),
    (
        "<form action=\"http://oa.intranet:8080/login\" method=\"post\"><button formaction=\"{UP}/alt\">go</button></form>",
        "<form action=\"{PUB}/login\" method=\"post\"><button formaction=\"{PUB}/alt\">go</button></form>",
    ),
    ("<video poster=\"http://oa.intranet:8080/p.jpg\"></video>", "<video poster=\"{PUB}/p.jpg\"></video>"),
    ("<object data=\"http://oa.intranet:8080/o.swf\"></object>", "<object data=\"{PUB}/o.swf\"></object>"),
    (
        "<svg><a xlink:href=\"http://oa.intranet:8080/svg1\"></a><use href=\"http://oa.intranet:8080/svg2#i\"></use></svg>",
        "<svg><a xlink:href=\"{PUB}/svg1\"></a><use href=\"{PUB}/svg2#i\"></use></svg>",
    ),
    ("<textarea>http://oa.intranet:8080/in-textarea</textarea>", "same"),
    ("</body></html>", "same"),
];

/// (the app's page, the page the browser must get) for the upstream at `up`.
fn pages(up: &str, public: &str, rewritten: bool) -> (String, String) {
    let mut app = String::new();
    let mut want = String::new();
    for (from, to) in PIECES {
        let from = from.replace("{UP}", up);
        let to = if *to == "same" || !rewritten {
            from.clone()
        } else {
            to.replace("{PUB}", public)
        };
        app.push_str(&from);
        if from == "</head><body>" {
            want.push_str(TAG);
        }
        want.push_str(&to);
    }
    (app, want)
}

/// An upstream serving the page in `charset`, `coding`, 7 bytes per chunk.
async fn app(charset: &'static str, coding: &'static str) -> (Upstream, Arc<OnceLock<String>>) {
    let origin: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let o = origin.clone();
    let up = Upstream::start(handler(move |_s: Seen| {
        let o = o.clone();
        async move {
            let (page, _) = pages(o.get().unwrap(), "", false);
            let enc = encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap();
            let bytes = enc.encode(&page).0.into_owned();
            let body = if coding == "gzip" {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                e.write_all(&bytes).unwrap();
                e.finish().unwrap()
            } else {
                bytes
            };
            let (tx, stream) = channel_body();
            tokio::spawn(async move {
                for c in body.chunks(7) {
                    if tx.send(Bytes::copy_from_slice(c)).await.is_err() {
                        return;
                    }
                }
            });
            let mut b =
                Response::builder().header("content-type", format!("text/html; charset={charset}"));
            if coding == "gzip" {
                b = b.header("content-encoding", "gzip");
            }
            b.body(stream).unwrap()
        }
    }))
    .await;
    origin.set(up.url()).unwrap();
    (up, origin)
}

fn nav() -> Request<Body> {
    Request::get("/")
        .header("sec-fetch-dest", "document")
        .header("sec-fetch-mode", "navigate")
        .header("accept-encoding", "gzip")
        .body(empty())
        .unwrap()
}

fn decoded(headers: &http::HeaderMap, body: &[u8]) -> Vec<u8> {
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    }
}

#[tokio::test]
async fn urls_of_the_apps_own_address_move_to_the_public_origin_and_nothing_else_changes() {
    for (charset, coding) in [
        ("utf-8", "identity"),
        ("utf-8", "gzip"),
        ("gbk", "identity"),
    ] {
        let (up, origin) = app(charset, coding).await;
        let side = Sidecar::start(&up.url(), "", &format!("{INTERNAL}{ON}")).await;
        let mut c = side.h2().await;
        let (parts, body) = read(c.send(nav()).await.unwrap()).await;
        let got = decoded(&parts.headers, &body);
        let (_, want) = pages(origin.get().unwrap(), "https://localhost", true);
        let enc = encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap();
        let want = enc.encode(&want).0.into_owned();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{charset} {coding}"
        );
        assert_eq!(got, want, "{charset} {coding}: byte for byte");
    }
}

#[tokio::test]
async fn by_default_pages_keep_their_urls() {
    // Off by default (it parses whole pages): the page is the app's, plus the tag.
    let (up, origin) = app("utf-8", "identity").await;
    let side = Sidecar::start(&up.url(), "", INTERNAL).await;
    let mut c = side.h1().await;
    let (_, body) = read(c.send(nav()).await.unwrap()).await;
    let (_, want) = pages(origin.get().unwrap(), "https://localhost", false);
    assert_eq!(String::from_utf8_lossy(&body), want);
}
