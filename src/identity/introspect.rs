//! `identity.mode = "introspect"`: the sidecar asks the CRM itself who the user is.
//!
//! A GET to `identity.url` on the upstream's origin carries only the configured session
//! cookies (no other cookie, no `Authorization`, no client-address headers), follows no
//! redirect, and believes only a JSON 2xx answer: a redirect or an HTML login page means "not
//! logged in". Answers are cached under a SHA-256 of the host and cookie values (never the raw
//! values), positive ones for `cache_ttl` and negative ones for a shorter time; concurrent
//! lookups for one key make one upstream call. Failures to get an answer are never cached and
//! surface as `identity_unavailable`, so a CRM blip does not log agents out. A proxied request
//! to a logout path drops the entry before and after the CRM sees it.

use super::{cookies, IdentityError};
use crate::config::identity::IntrospectSettings;
use crate::config::UpstreamConfig;
use crate::wire::upstream::Connector;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest whoami answer read.
const MAX_BODY: usize = 64 * 1024;
/// Distinct sessions remembered; the oldest are evicted first.
const CACHE_ENTRIES: u64 = 50_000;

type Key = [u8; 32];
/// `Some(user)` for a logged-in session, `None` for "not logged in".
type Answer = Option<Arc<str>>;

pub struct Introspector {
    client: Client<Connector, Empty<Bytes>>,
    upstream_authority: http::uri::Authority,
    upstream_https: bool,
    path: String,
    cookies: Vec<String>,
    pointer: String,
    timeout: Duration,
    logout_paths: Vec<String>,
    cache: Cache<Key, Answer>,
}

struct TtlByAnswer {
    positive: Duration,
    negative: Duration,
}

impl moka::Expiry<Key, Answer> for TtlByAnswer {
    fn expire_after_create(&self, _k: &Key, v: &Answer, _at: Instant) -> Option<Duration> {
        Some(if v.is_some() {
            self.positive
        } else {
            self.negative
        })
    }
}

impl Introspector {
    pub fn new(
        upstream: &UpstreamConfig,
        o: &IntrospectSettings,
        logout_paths: &[String],
    ) -> Result<Introspector, String> {
        let client = crate::wire::upstream::build(upstream)?;
        let cache = Cache::builder()
            .max_capacity(CACHE_ENTRIES)
            .expire_after(TtlByAnswer {
                positive: o.cache_ttl,
                negative: o.negative_cache_ttl,
            })
            .build();
        Ok(Introspector {
            client,
            upstream_authority: upstream.url.authority.clone(),
            upstream_https: upstream.url.https,
            path: o.path.clone(),
            cookies: o.cookies.clone(),
            pointer: o.user_pointer.clone(),
            timeout: o.timeout,
            logout_paths: logout_paths.iter().map(|p| normalise(p)).collect(),
            cache,
        })
    }

    /// The session's cookies as sent upstream, and the cache key they make; `None` when
    /// the request carries none of them.
    fn session(&self, headers: &HeaderMap, host: &str) -> Option<(String, Key)> {
        let mut cookie = String::new();
        let mut h = Sha256::new();
        h.update(host.to_ascii_lowercase().as_bytes());
        for name in &self.cookies {
            if let Some(v) = cookies::single(headers, name) {
                if !cookie.is_empty() {
                    cookie.push_str("; ");
                }
                cookie.push_str(name);
                cookie.push('=');
                cookie.push_str(v);
                h.update(b"\0");
                h.update(name.as_bytes());
                h.update(b"=");
                h.update(v.as_bytes());
            }
        }
        (!cookie.is_empty()).then(|| (cookie, h.finalize().into()))
    }

    /// The user behind this request's session.
    pub async fn user(
        &self,
        headers: &HeaderMap,
        host: &str,
        metrics: &crate::runtime::metrics::Metrics,
    ) -> Result<String, IdentityError> {
        let Some((cookie, key)) = self.session(headers, host) else {
            return Err(IdentityError::Unauthenticated("no session cookie"));
        };
        let entry = self
            .cache
            .entry(key)
            .or_try_insert_with(self.ask(cookie, host))
            .await
            .map_err(|e| *e)?;
        metrics.identity_lookup(if entry.is_fresh() {
            "upstream"
        } else {
            "cache_hit"
        });
        match entry.into_value() {
            Some(user) => Ok(user.to_string()),
            None => Err(IdentityError::Unauthenticated("session not logged in")),
        }
    }

    async fn ask(&self, cookie: String, host: &str) -> Result<Answer, IdentityError> {
        let uri = Uri::builder()
            .scheme(if self.upstream_https { "https" } else { "http" })
            .authority(self.upstream_authority.clone())
            .path_and_query(self.path.as_str())
            .build()
            .map_err(|_| IdentityError::Unavailable("identity.url is not valid"))?;
        let host = if host.is_empty() {
            self.upstream_authority.as_str()
        } else {
            host
        };
        let req = Request::get(uri)
            .header(header::HOST, host)
            .header(header::COOKIE, cookie)
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("tccc-sidecar/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|_| IdentityError::Unavailable("whoami request could not be built"))?;
        let work = async {
            let resp = self.client.request(req).await.map_err(|e| {
                tracing::warn!(error = %crate::wire::ErrorChain(&e), "whoami request failed");
                IdentityError::Unavailable("the application did not answer")
            })?;
            let status = resp.status();
            if status.is_redirection()
                || status == StatusCode::UNAUTHORIZED
                || status == StatusCode::FORBIDDEN
            {
                return Ok(None);
            }
            if status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::NOT_FOUND
            {
                tracing::warn!(status = status.as_u16(), "whoami answered with an error");
                return Err(IdentityError::Unavailable(
                    "the application answered an error",
                ));
            }
            if !status.is_success() || !is_json(resp.headers()) {
                return Ok(None);
            }
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|_| IdentityError::Unavailable("whoami answer unreadable or too large"))?
                .to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|_| IdentityError::Unavailable("whoami answer is not valid JSON"))?;
            Ok(match v.pointer(&self.pointer) {
                Some(serde_json::Value::String(s)) => Some(super::checked_user(s)?.into()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string().into()),
                _ => None,
            })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "whoami did not answer in time"
                );
                Err(IdentityError::Unavailable(
                    "the application did not answer in time",
                ))
            }
        }
    }

    pub fn is_logout(&self, path: &str) -> bool {
        !self.logout_paths.is_empty() && self.logout_paths.contains(&normalise(path))
    }

    /// Forgets the session of a request that is logging out.
    pub async fn forget(&self, headers: &HeaderMap, host: &str) {
        if let Some((_, key)) = self.session(headers, host) {
            self.cache.invalidate(&key).await;
        }
    }
}

/// A path as compared with `logout_paths`: lower case, without `;jsessionid=…` (or any other
/// path parameter), query or trailing slash.
fn normalise(path: &str) -> String {
    let p = path.split(['?', '#']).next().unwrap_or("");
    let p = p.split(';').next().unwrap_or("");
    let p = p.trim_end_matches('/');
    if p.is_empty() {
        "/".into()
    } else {
        p.to_ascii_lowercase()
    }
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logout_paths_ignore_case_params_and_query() {
        assert_eq!(normalise("/Logout;jsessionid=ABC?x=1"), "/logout");
        assert_eq!(normalise("/logout/"), "/logout");
        assert_eq!(normalise("/"), "/");
        assert_ne!(normalise("/logout-now"), "/logout");
    }
}
