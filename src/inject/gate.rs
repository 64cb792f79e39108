//! Whether a page gets the loader, decided from the request and response heads before a byte
//! of the body is touched (once the head is sent, a rewrite can no longer be undone).
//!
//! Request side, by `Sec-Fetch-Dest` × mode (script):
//!
//! | `Sec-Fetch-Dest`            | loader? | why |
//! |-----------------------------|---------|-----|
//! | `document`                  | yes     | a top-level page |
//! | `iframe`, `frame`           | yes     | legacy OA framesets and iframes: the loader itself decides at run time which same-origin document of the tab holds the SDK (the topmost with a body, or `inject.frame_name`) |
//! | absent                      | yes     | browsers before 2020 and non-browser clients; the response head still decides |
//! | `empty` and anything else   | no      | `fetch`/XHR, scripts, images, styles: fragments and assets |
//!
//! plus: GET only (HEAD answers keep their upstream head; in shell mode a framed page that
//! answers a form POST also gets its bridge), not an upgrade, no
//! `X-Requested-With` (PJAX and jQuery fragment loads), and the path is not excluded.
//!
//! Response side: status 200, no `Content-Range`, `Content-Type` `text/html`
//! (`application/xhtml+xml` would need XML-escaped markup: skipped), no
//! `Cache-Control: no-transform`, a `Content-Encoding` the sidecar decodes, and a charset the
//! rewriter keeps byte for byte.

use super::codec::{self, Coding};
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};

use crate::wire::names::SEC_FETCH_DEST;
const X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");

/// `inject.include` and `inject.exclude`: path prefixes.
#[derive(Debug, Clone, Default)]
pub struct PathRules {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl PathRules {
    /// Whether `path` may get the loader by `inject.include` and `inject.exclude`.
    pub fn allows(&self, path: &str) -> bool {
        path_skip(path, self).is_none()
    }
}

fn path_skip(path: &str, rules: &PathRules) -> Option<&'static str> {
    if rules.exclude.iter().any(|p| path.starts_with(p.as_str())) {
        return Some("excluded");
    }
    if !rules.include.is_empty() && !rules.include.iter().any(|p| path.starts_with(p.as_str())) {
        return Some("not_included");
    }
    None
}

/// Why a request cannot get the loader, or `None` when its answer may.
pub fn request_skip(
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    rules: &PathRules,
    upgrade: bool,
    post_ok: bool,
) -> Option<&'static str> {
    if method != Method::GET && !(post_ok && method == Method::POST) {
        return Some("method");
    }
    if upgrade {
        return Some("upgrade");
    }
    if let Some(reason) = path_skip(path, rules) {
        return Some(reason);
    }
    if headers.contains_key(&X_REQUESTED_WITH) {
        return Some("xhr");
    }
    match headers.get(&SEC_FETCH_DEST).map(|v| v.as_bytes()) {
        None | Some(b"document" | b"iframe" | b"frame") => None,
        Some(_) => Some("fetch_dest"),
    }
}

/// Whether the request is a top-level or frame navigation (its `Range` is dropped: a browser
/// navigating to a page never wants a piece of it, and a 206 could not be rewritten).
pub fn is_navigation(headers: &HeaderMap) -> bool {
    matches!(
        headers.get(&SEC_FETCH_DEST).map(|v| v.as_bytes()),
        Some(b"document" | b"iframe" | b"frame")
    )
}

/// What the response head allows: the upstream's coding and the page's content type, or why
/// the page is skipped.
pub fn response_check(status: StatusCode, h: &HeaderMap) -> Result<(Coding, String), &'static str> {
    let content_type = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/xhtml+xml" {
        return Err("xhtml");
    }
    if essence != "text/html" {
        return Err("content_type");
    }
    if status != StatusCode::OK {
        return Err("status");
    }
    if h.contains_key(header::CONTENT_RANGE) {
        return Err("range");
    }
    let no_transform = h
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"));
    if no_transform {
        return Err("no_transform");
    }
    let coding = codec::response_coding(h)?;
    Ok((coding, content_type))
}

/// Whether an answer is a page at all (skips of other answers are not worth counting).
pub fn looks_like_a_page(request: &HeaderMap, response: &HeaderMap) -> bool {
    is_navigation(request)
        || response
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_start().as_bytes())
            .is_some_and(|v| {
                starts_with_ignore_case(v, b"text/html")
                    || starts_with_ignore_case(v, b"application/xhtml")
            })
}

fn starts_with_ignore_case(v: &[u8], prefix: &[u8]) -> bool {
    v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        crate::test_support::headers(pairs)
    }

    #[test]
    fn a_page_is_recognised_by_its_content_type_in_any_case() {
        let none = HeaderMap::new();
        for (ct, page) in [
            ("Text/HTML; charset=gbk", true),
            ("  application/XHTML+xml", true),
            ("text/htm", false),
            ("application/json", false),
            ("", false),
        ] {
            assert_eq!(
                looks_like_a_page(&none, &h(&[("content-type", ct)])),
                page,
                "{ct}"
            );
        }
        assert!(looks_like_a_page(
            &h(&[("sec-fetch-dest", "iframe")]),
            &none
        ));
    }

    #[test]
    fn request_table() {
        let ex = PathRules {
            include: vec![],
            exclude: vec!["/api/".to_string()],
        };
        let get = Method::GET;
        assert_eq!(request_skip(&get, &h(&[]), "/", &ex, false, false), None);
        for dest in ["document", "iframe", "frame"] {
            assert_eq!(
                request_skip(
                    &get,
                    &h(&[("sec-fetch-dest", dest)]),
                    "/",
                    &ex,
                    false,
                    false
                ),
                None
            );
        }
        for dest in ["empty", "script", "image", "style", "worker"] {
            assert_eq!(
                request_skip(
                    &get,
                    &h(&[("sec-fetch-dest", dest)]),
                    "/",
                    &ex,
                    false,
                    false
                ),
                Some("fetch_dest")
            );
        }
        assert_eq!(
            request_skip(&Method::HEAD, &h(&[]), "/", &ex, false, false),
            Some("method")
        );
        assert_eq!(
            request_skip(&Method::POST, &h(&[]), "/", &ex, false, false),
            Some("method")
        );
        assert_eq!(
            request_skip(&get, &h(&[]), "/api/x", &ex, false, false),
            Some("excluded")
        );
        assert_eq!(
            request_skip(&get, &h(&[]), "/", &ex, true, false),
            Some("upgrade")
        );
        assert_eq!(
            request_skip(
                &get,
                &h(&[("x-requested-with", "XMLHttpRequest")]),
                "/",
                &ex,
                false,
                false
            ),
            Some("xhr")
        );
        assert_eq!(
            request_skip(&Method::POST, &h(&[]), "/", &ex, false, true),
            None,
            "a framed page answering a POST (shell mode)"
        );
    }

    #[test]
    fn response_table() {
        let ok = StatusCode::OK;
        let html = ("content-type", "text/html; charset=utf-8");
        assert!(response_check(ok, &h(&[html])).is_ok());
        assert_eq!(
            response_check(StatusCode::NOT_FOUND, &h(&[html])),
            Err("status")
        );
        assert_eq!(
            response_check(StatusCode::PARTIAL_CONTENT, &h(&[html])),
            Err("status")
        );
        assert_eq!(
            response_check(ok, &h(&[("content-type", "application/pdf")])),
            Err("content_type")
        );
        assert_eq!(
            response_check(ok, &h(&[("content-type", "text/event-stream")])),
            Err("content_type")
        );
        assert_eq!(
            response_check(ok, &h(&[("content-type", "application/xhtml+xml")])),
            Err("xhtml")
        );
        assert_eq!(
            response_check(ok, &h(&[html, ("content-range", "bytes 0-1/2")])),
            Err("range")
        );
        assert_eq!(
            response_check(ok, &h(&[html, ("cache-control", "public, No-Transform")])),
            Err("no_transform")
        );
        assert_eq!(
            response_check(ok, &h(&[html, ("content-encoding", "compress")])),
            Err("encoding")
        );
        assert_eq!(
            response_check(ok, &h(&[html, ("content-encoding", "gzip, br")])),
            Err("encoding")
        );
        assert_eq!(
            response_check(ok, &h(&[html, ("content-encoding", "br")])).map(|r| r.0),
            Ok(Coding::Br)
        );
    }
}
