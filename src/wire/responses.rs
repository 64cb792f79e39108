//! Answers the proxy makes itself (bad request, bad gateway, timeout, ...): a small HTML page
//! with the status and one sentence, never a hint of the upstream's internals.

use super::Body;
use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Full};

/// A failure that ends a request before (or instead of) the upstream's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub status: StatusCode,
    /// The metrics label and log field: short, fixed, no user data.
    pub kind: &'static str,
    pub message: &'static str,
    /// The HTTP/1.1 connection ends after this answer: what the client sends next on it can
    /// no longer be read as a request (an unread body, a protocol switch that did not happen).
    /// HTTP/2 has no such field (a stream ends alone): the caller, who knows the version,
    /// says so.
    pub close: bool,
}

impl Reject {
    pub const fn new(status: StatusCode, kind: &'static str, message: &'static str) -> Reject {
        Reject {
            status,
            kind,
            message,
            close: false,
        }
    }

    /// The same refusal, ending the HTTP/1.1 connection.
    pub const fn closing(self) -> Reject {
        Reject {
            close: true,
            ..self
        }
    }
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// The small page for a synthetic error.
pub fn error_page(r: Reject) -> Response<Body> {
    let reason = r.status.canonical_reason().unwrap_or("Error");
    let code = r.status.as_u16();
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\
         <body><h1>{code} {reason}</h1><p>{}</p></body></html>\n",
        r.message
    );
    let mut resp = Response::new(full(html));
    *resp.status_mut() = r.status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "x-content-type-options",
        header::HeaderValue::from_static("nosniff"),
    );
    resp
}
