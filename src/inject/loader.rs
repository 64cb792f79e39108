//! Serving the loader script at `inject.loader_path`: the JavaScript with this sidecar's
//! settings filled in, cacheable (with an ETag for cheap revalidation), never sniffed as
//! anything else.

use crate::wire::responses::{empty, full};
use crate::wire::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use sha2::{Digest, Sha256};

const LOADER: &str = include_str!("loader.js");
const SHELL: &str = include_str!("shell/shell.js");
const BRIDGE: &str = include_str!("shell/bridge.js");
/// Helpers the loader and the bridge share, put in where each says `/*__COMMON__*/`.
const COMMON: &str = include_str!("common.js");
/// How many times a retryable answer is retried before the loader gives up (`error`).
pub const RETRIES: u32 = 4;

/// One script with its validator.
struct Script {
    body: Bytes,
    etag: HeaderValue,
}

impl Script {
    fn new(source: &str, config: &serde_json::Value) -> Script {
        let js = source
            .replacen("__CONFIG__", &config.to_string(), 1)
            .replacen("/*__COMMON__*/", COMMON, 1);
        let digest = Sha256::digest(js.as_bytes());
        let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
            .unwrap_or_else(|_| HeaderValue::from_static("\"loader\""));
        Script {
            body: Bytes::from(js),
            etag,
        }
    }
}

/// The loader at `inject.loader_path`, and in shell mode its two companions at the same
/// path: `?shell` (the shell page's frame keeper) and `?bridge` (for the framed pages). One
/// path, so that a CSP that allows the loader's URL allows them too (CSP ignores the query).
pub struct Loader {
    loader: Script,
    shell: Script,
    bridge: Script,
}

impl Loader {
    pub fn new(config: &crate::config::Config) -> Loader {
        let i = &config.inject;
        let logout = i
            .logout_paths
            .clone()
            .unwrap_or_else(|| config.identity.logout_paths.clone());
        let loader = serde_json::json!({
            "login": config.login.path,
            "frame": i.frame_name,
            "retries": RETRIES,
            "readyMs": u64::try_from(i.sdk_ready_timeout.get().as_millis()).unwrap_or(u64::MAX),
            "clickToCall": i.click_to_call,
            "allow": i.click_to_call_allow,
            "deny": i.click_to_call_deny,
            "country": i.click_to_call_country,
            "dial": i.dial_format.as_str(),
        });
        let shell = serde_json::json!({ "frame": super::shell::FRAME_NAME });
        let bridge = serde_json::json!({
            "loader": i.loader_path,
            "frame": super::shell::FRAME_NAME,
            "clickToCall": i.click_to_call,
            "logout": logout,
        });
        Loader {
            loader: Script::new(LOADER, &loader),
            shell: Script::new(SHELL, &shell),
            bridge: Script::new(BRIDGE, &bridge),
        }
    }

    /// The loader's source as served (tests parse it).
    pub fn source(&self, variant: Option<&str>) -> &[u8] {
        &self.pick(variant).body
    }

    fn pick(&self, query: Option<&str>) -> &Script {
        match query {
            Some("shell") => &self.shell,
            Some("bridge") => &self.bridge,
            // Anything else (a cache-busting `?v=2`) is the loader.
            _ => &self.loader,
        }
    }

    pub fn respond(
        &self,
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Response<Body> {
        let script = self.pick(query);
        let mut resp = Response::new(empty());
        if *method != Method::GET && *method != Method::HEAD {
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let h = resp.headers_mut();
        h.insert(header::ETAG, script.etag.clone());
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
                t == "*" || t.trim_start_matches("W/") == script.etag.to_str().unwrap_or("")
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
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(script.body.len()));
        if *method == Method::GET {
            *resp.body_mut() = full(script.body.clone());
        }
        resp
    }
}
