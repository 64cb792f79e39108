//! Putting the loader into the HTML pages the CRM serves.
//!
//! Two steps around the upstream call. Before it ([`Injector::prepare`]): whether the request
//! may get the loader at all ([`gate`]); if so, its `Accept-Encoding` is narrowed to codings
//! the sidecar can decode, and a navigation's `Range` is dropped. After it
//! ([`Injector::respond`]): the response head decides; an eligible page gets a streaming body
//! ([`body`]) that decodes, rewrites ([`rewrite`]) and re-encodes ([`codec`]) chunk by chunk,
//! and a head that matches the new bytes (no `Content-Length`, a weak `ETag`, no
//! `Accept-Ranges` or `Last-Modified`, `Vary: Accept-Encoding`). A skipped page is counted by
//! reason and logged at debug, never silently.

pub mod body;
pub mod codec;
pub mod gate;
pub mod loader;
pub mod rewrite;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{Body, BoxError};
use codec::{Accepted, Coding};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;

pub struct Injector {
    tag: Arc<str>,
    position: rewrite::Position,
    exclude: Vec<String>,
    pub loader: loader::Loader,
    metrics: Arc<Metrics>,
}

/// What the request side decided, carried to the response side.
pub struct Prepared {
    /// `Ok` when the answer may get the loader, else why not.
    plan: Result<Accepted, &'static str>,
    navigation: bool,
}

impl Injector {
    pub fn from_config(config: &Config, metrics: Arc<Metrics>) -> Injector {
        let i = &config.inject;
        let tag = format!(
            "<script src=\"{}\" data-tccc-loader defer></script>",
            html_attr(&i.loader_path)
        );
        Injector {
            tag: Arc::from(tag),
            position: match i.position.as_deref() {
                Some("body") => rewrite::Position::Body,
                _ => rewrite::Position::Head,
            },
            exclude: i.exclude.clone(),
            loader: loader::Loader::new(&config.login.path, i.frame_name.as_deref()),
            metrics,
        }
    }

    /// The request side; adjusts the headers that go upstream when the answer may be rewritten.
    pub fn prepare(
        &self,
        method: &Method,
        headers: &mut HeaderMap,
        path: &str,
        upgrade: bool,
    ) -> Prepared {
        let navigation = gate::is_navigation(headers);
        let plan = match gate::request_skip(method, headers, path, &self.exclude, upgrade) {
            Some(reason) => Err(reason),
            None => {
                let accepted = Accepted::from_headers(headers);
                match accepted.upstream_header() {
                    Some(v) => {
                        headers.insert(header::ACCEPT_ENCODING, v);
                    }
                    None => {
                        headers.remove(header::ACCEPT_ENCODING);
                    }
                }
                if navigation {
                    headers.remove(header::RANGE);
                    headers.remove(header::IF_RANGE);
                }
                Ok(accepted)
            }
        };
        Prepared { plan, navigation }
    }

    /// The response side: the upstream's answer, rewritten when it is an eligible page.
    pub fn respond(&self, prepared: Prepared, resp: Response<Incoming>) -> Response<Body> {
        let accepted = match prepared.plan {
            Ok(a) => a,
            Err(reason) => {
                if prepared.navigation || gate::looks_like_a_page(&HeaderMap::new(), resp.headers())
                {
                    self.skipped(reason);
                }
                return passthrough(resp);
            }
        };
        let (mut parts, body) = resp.into_parts();
        if parts.status == StatusCode::NOT_MODIFIED {
            // The client holds the rewritten page under the weakened tag: keep it consistent.
            weaken_etag(&mut parts.headers);
            return Response::from_parts(parts, boxed(body));
        }
        let (coding, content_type) = match gate::response_check(parts.status, &parts.headers) {
            Ok(x) => x,
            Err(reason) => {
                if prepared.navigation || gate::looks_like_a_page(&HeaderMap::new(), &parts.headers)
                {
                    self.skipped(reason);
                }
                return Response::from_parts(parts, boxed(body));
            }
        };
        let encoding = match rewrite::page_encoding(&content_type) {
            Ok(Some(e)) => e,
            Ok(None) => match lol_html::AsciiCompatibleEncoding::new(encoding_rs::UTF_8) {
                Some(e) => e,
                None => return Response::from_parts(parts, boxed(body)),
            },
            Err(reason) => {
                self.skipped(reason);
                return Response::from_parts(parts, boxed(body));
            }
        };
        let output = accepted.output_for(coding);
        let (decoder, encoder) = match (codec::Decoder::new(coding), codec::Encoder::new(output)) {
            (Ok(d), Ok(e)) => (d, e),
            _ => {
                self.skipped("encoding");
                return Response::from_parts(parts, boxed(body));
            }
        };
        let h = &mut parts.headers;
        h.remove(header::CONTENT_LENGTH);
        h.remove(header::ACCEPT_RANGES);
        h.remove(header::LAST_MODIFIED);
        h.remove(CONTENT_MD5);
        weaken_etag(h);
        match output {
            Coding::Identity => {
                h.remove(header::CONTENT_ENCODING);
            }
            c => {
                h.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(c.token()),
                );
            }
        }
        add_vary_accept_encoding(h);
        let rewriter = rewrite::Rewriter::new(self.tag.clone(), self.position, encoding);
        let body = body::InjectBody::new(body, decoder, rewriter, encoder, self.metrics.clone());
        Response::from_parts(parts, body.boxed())
    }

    fn skipped(&self, reason: &'static str) {
        self.metrics.injection_skipped(reason);
        tracing::debug!(reason, "page not rewritten");
    }
}

/// `Content-MD5` (RFC 1864, obsolete but still sent by some servers) would describe the old bytes.
const CONTENT_MD5: header::HeaderName = header::HeaderName::from_static("content-md5");

fn boxed(body: Incoming) -> Body {
    body.map_err(|e| Box::new(e) as BoxError).boxed()
}

fn passthrough(resp: Response<Incoming>) -> Response<Body> {
    resp.map(boxed)
}

/// A strong validator no longer describes the rewritten bytes; a weak one still says "same
/// page" (RFC 9110 §8.8.1), so `If-None-Match` revalidation keeps working.
fn weaken_etag(h: &mut HeaderMap) {
    if let Some(v) = h.get(header::ETAG) {
        if !v.as_bytes().starts_with(b"W/") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(v.as_bytes());
            match HeaderValue::from_bytes(&weak) {
                Ok(w) => {
                    h.insert(header::ETAG, w);
                }
                Err(_) => {
                    h.remove(header::ETAG);
                }
            }
        }
    }
}

fn add_vary_accept_encoding(h: &mut HeaderMap) {
    let present = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.eq_ignore_ascii_case("accept-encoding")
        });
    if !present {
        h.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// Escapes a configured path for an HTML attribute value.
fn html_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
