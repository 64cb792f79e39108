//! Serving the loader script at `inject.loader_path`: the JavaScript with this sidecar's
//! settings filled in, cacheable (with an ETag for cheap revalidation), never sniffed as
//! anything else.

use crate::proxy::responses::{empty, full};
use crate::proxy::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use sha2::{Digest, Sha256};

const SOURCE: &str = include_str!("loader.js");
/// How many times a retryable answer is retried before the loader gives up (`error`).
pub const RETRIES: u32 = 4;

pub struct Loader {
    body: Bytes,
    etag: HeaderValue,
}

impl Loader {
    pub fn new(login_path: &str, frame_name: Option<&str>) -> Loader {
        let config = serde_json::json!({
            "login": login_path,
            "frame": frame_name,
            "retries": RETRIES,
        });
        let js = SOURCE.replacen("__CONFIG__", &config.to_string(), 1);
        let digest = Sha256::digest(js.as_bytes());
        let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
            .unwrap_or_else(|_| HeaderValue::from_static("\"loader\""));
        Loader {
            body: Bytes::from(js),
            etag,
        }
    }

    pub fn respond(&self, method: &Method, headers: &HeaderMap) -> Response<Body> {
        let mut resp = Response::new(empty());
        if *method != Method::GET && *method != Method::HEAD {
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let h = resp.headers_mut();
        h.insert(header::ETAG, self.etag.clone());
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        let fresh = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == self.etag.to_str().unwrap_or("")
            });
        if fresh {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return resp;
        }
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        if *method == Method::GET {
            *resp.body_mut() = full(self.body.clone());
        }
        resp
    }
}
