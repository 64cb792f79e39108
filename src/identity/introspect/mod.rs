//! `identity.mode = "introspect"`: the sidecar asks the CRM itself who the user is.
//!
//! A GET to `identity.url` on the upstream's origin carries only the configured session
//! cookies and, when `identity.forward_authorization` is on, the browser's `Authorization`
//! (no other cookie, no client-address headers), follows no redirect, and believes only a 2xx
//! answer of the expected kind: a JSON document read at `user_pointer`, or an HTML page read
//! by `user_selector` ([`page`]). A redirect or a login page means "not signed in". Answers are
//! cached under a keyed hash of the host and the credentials ([`session`]), positive ones for
//! `cache_ttl` and negative ones, with their reason, for a shorter time; concurrent lookups
//! for one key make one upstream call. Failures to get an answer are never cached and surface
//! as `identity_unavailable`, so a CRM blip does not log agents out. A proxied request to a
//! logout path drops the entry before and after the CRM sees it.

mod page;
mod session;

use super::IdentityError;
use crate::config::identity::{AnswerKind, IntrospectSettings};
use crate::config::UpstreamConfig;
use crate::wire::upstream::Connector;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use moka::future::Cache;
use regex::Regex;
use session::{Credentials, Key, SessionRule};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest whoami answer read: a JSON document, or a page (pages carry menus and scripts).
const MAX_JSON: usize = 64 * 1024;
const MAX_PAGE: usize = 2 * 1024 * 1024;
/// Distinct sessions remembered; the oldest are evicted first.
const CACHE_ENTRIES: u64 = 50_000;

/// The user of a signed-in session, or why the session names nobody.
type Answer = Result<Arc<str>, &'static str>;

pub struct Introspector {
    client: Client<Connector, Empty<Bytes>>,
    upstream_authority: http::uri::Authority,
    upstream_https: bool,
    path: String,
    session: SessionRule,
    answer: AnswerKind,
    user_pattern: Option<Regex>,
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
        Some(if v.is_ok() {
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
            session: SessionRule::new(o.cookies.clone(), o.forward_authorization),
            answer: o.answer.clone(),
            user_pattern: o.user_pattern.clone(),
            timeout: o.timeout,
            logout_paths: logout_paths.iter().map(|p| normalise(p)).collect(),
            cache,
        })
    }

    /// The user behind this request's session.
    pub async fn user(
        &self,
        headers: &HeaderMap,
        host: &str,
        metrics: &crate::runtime::metrics::Metrics,
    ) -> Result<String, IdentityError> {
        let creds = self
            .session
            .credentials(headers, host)
            .map_err(IdentityError::Unauthenticated)?;
        let entry = self
            .cache
            .entry(creds.key)
            .or_try_insert_with(self.ask(creds, host))
            .await
            .map_err(|e| *e)?;
        metrics.identity_lookup(if entry.is_fresh() {
            "upstream"
        } else {
            "cache_hit"
        });
        match entry.into_value() {
            Ok(user) => Ok(user.to_string()),
            Err(why) => Err(IdentityError::Unauthenticated(why)),
        }
    }

    async fn ask(&self, creds: Credentials, host: &str) -> Result<Answer, IdentityError> {
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
        let accept = match self.answer {
            AnswerKind::Json { .. } => "application/json",
            AnswerKind::Html(_) => "text/html",
        };
        let mut req = Request::get(uri)
            .header(header::HOST, host)
            .header(header::ACCEPT, accept)
            .header(
                header::USER_AGENT,
                concat!("tccc-sidecar/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|_| IdentityError::Unavailable("whoami request could not be built"))?;
        if !creds.cookie.is_empty() {
            let cookie = HeaderValue::from_str(&creds.cookie)
                .map_err(|_| IdentityError::Unauthenticated("session cookie not valid"))?;
            req.headers_mut().insert(header::COOKIE, cookie);
        }
        if let Some(a) = creds.authorization {
            req.headers_mut().insert(header::AUTHORIZATION, a);
        }
        let work = async {
            let resp = self.client.request(req).await.map_err(|e| {
                tracing::warn!(error = %crate::wire::ErrorChain(&e), "whoami request failed");
                IdentityError::Unavailable("the application did not answer")
            })?;
            let status = resp.status();
            if status.is_redirection() {
                return Ok(Err(
                    "anonymous: the application redirected (to its sign-in page?)",
                ));
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Ok(Err("anonymous: the application refused the credentials"));
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
            if !status.is_success() {
                return Ok(Err(
                    "anonymous: the application answered neither 2xx nor 3xx",
                ));
            }
            let content_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let (limit, expected) = match self.answer {
                AnswerKind::Json { .. } => (MAX_JSON, is_json(&content_type)),
                AnswerKind::Html(_) => (MAX_PAGE, is_html(&content_type)),
            };
            if !expected {
                return Ok(Err(match self.answer {
                    AnswerKind::Json { .. } => "anonymous: the answer is not JSON",
                    AnswerKind::Html(_) => "anonymous: the answer is not an HTML page",
                }));
            }
            let body = Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|_| IdentityError::Unavailable("whoami answer unreadable or too large"))?
                .to_bytes();
            let user = match &self.answer {
                AnswerKind::Json { pointer } => {
                    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
                        IdentityError::Unavailable("whoami answer is not valid JSON")
                    })?;
                    match v.pointer(pointer) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(serde_json::Value::Number(n)) => n.to_string(),
                        _ => return Ok(Err("anonymous: no user in the JSON answer")),
                    }
                }
                AnswerKind::Html(rule) => {
                    match page::user(&page::decode(&body, &content_type), rule) {
                        Ok(u) => u,
                        Err(why) => return Ok(Err(why)),
                    }
                }
            };
            Ok(valid_user(&user, self.user_pattern.as_ref()).map(Arc::from))
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
        if let Some(key) = self.session.key(headers, host) {
            self.cache.invalidate(&key).await;
        }
    }
}

/// The id an answer named, if it is one a seat may be looked up by: it matches the user
/// pattern as a whole (when there is one) and passes the rule every identity source keeps.
fn valid_user(id: &str, pattern: Option<&Regex>) -> Result<String, &'static str> {
    if pattern.is_some_and(|p| !p.is_match(id)) {
        return Err("text is not a valid user");
    }
    super::checked_user(id).map_err(|_| "text is not a valid user")
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

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(content_type: &str) -> bool {
    let m = media_type(content_type);
    m == "application/json" || m.ends_with("+json")
}

fn is_html(content_type: &str) -> bool {
    let m = media_type(content_type);
    m == "text/html" || m == "application/xhtml+xml"
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
