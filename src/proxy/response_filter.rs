//! Response-header rewrites that keep a legacy plain-HTTP app working behind TLS.
//!
//! - `Location`, `Content-Location` and `Refresh` that point at the upstream's own origin are
//!   rewritten to the public origin, as nginx's `proxy_redirect default` does. Since the
//!   sidecar keeps the client's `Host`, apps that build absolute URLs from it write
//!   `http://<public host>/...`: those are moved to `https` too.
//! - Cookies set over the TLS side get `Secure`, so that a session cookie is never later sent
//!   over plain HTTP.

use http::header::{HeaderMap, HeaderValue, CONTENT_LOCATION, LOCATION, SET_COOKIE};

/// The origins a redirect may name and what they become.
pub struct RedirectRewriter<'a> {
    /// The upstream's origin as configured (`http://127.0.0.1:8080`).
    pub upstream_origin: &'a str,
    /// The upstream's default port, so `http://host:80` and `http://host` both match.
    pub upstream_default_port: bool,
    /// The public origin (`https://oa.example.com`).
    pub public_origin: &'a str,
    /// The host the client asked for, port included if it sent one.
    pub client_host: &'a str,
}

impl RedirectRewriter<'_> {
    /// The rewritten URL, or `None` when `url` does not point at the upstream or the plain-HTTP public host.
    pub fn rewrite(&self, url: &str) -> Option<String> {
        let mut candidates: Vec<String> = vec![self.upstream_origin.to_string()];
        if self.upstream_default_port {
            let (scheme, rest) = self.upstream_origin.split_once("://")?;
            let port = if scheme == "https" { 443 } else { 80 };
            candidates.push(format!("{scheme}://{rest}:{port}"));
        }
        if self.public_origin.starts_with("https://") {
            candidates.push(format!("http://{}", self.client_host));
        }
        for origin in &candidates {
            if let Some(rest) = strip_origin(url, origin) {
                return Some(format!("{}{}", self.public_origin, rest));
            }
        }
        None
    }

    /// Applies [`rewrite`](Self::rewrite) to `Location`, `Content-Location` and `Refresh`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in [LOCATION, CONTENT_LOCATION] {
            let Some(v) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            if let Some(new) = self.rewrite(v.trim()) {
                if let Ok(v) = HeaderValue::from_str(&new) {
                    headers.insert(name, v);
                }
            }
        }
        let refresh = headers.get("refresh").and_then(|v| v.to_str().ok());
        if let Some(new) = refresh.and_then(|r| self.rewrite_refresh(r)) {
            if let Ok(v) = HeaderValue::from_str(&new) {
                headers.insert("refresh", v);
            }
        }
    }

    /// `Refresh: 5; url=http://upstream/x` → `5; url=https://public/x`.
    fn rewrite_refresh(&self, value: &str) -> Option<String> {
        let lower = value.to_ascii_lowercase();
        let at = lower.find("url=")? + 4;
        let url = value[at..].trim().trim_matches(['\'', '"']);
        let new = self.rewrite(url)?;
        Some(format!("{}{}", &value[..at], new))
    }
}

/// `url` without `origin` when it starts with it (scheme and host case-insensitively) followed
/// by the end, a path, a query or a fragment.
fn strip_origin<'u>(url: &'u str, origin: &str) -> Option<&'u str> {
    if url.len() < origin.len() || !url.is_char_boundary(origin.len()) {
        return None;
    }
    let (head, rest) = url.split_at(origin.len());
    if !head.eq_ignore_ascii_case(origin) {
        return None;
    }
    match rest.as_bytes().first() {
        None | Some(b'/') | Some(b'?') | Some(b'#') => Some(rest),
        _ => None,
    }
}

/// Adds `; Secure` to every `Set-Cookie` that lacks it.
pub fn secure_cookies(headers: &mut HeaderMap) {
    if !headers.contains_key(SET_COOKIE) {
        return;
    }
    let values: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    headers.remove(SET_COOKIE);
    for v in values {
        let new = match v.to_str() {
            Ok(s) if !has_secure_attribute(s) => {
                HeaderValue::from_str(&format!("{s}; Secure")).unwrap_or(v)
            }
            _ => v,
        };
        headers.append(SET_COOKIE, new);
    }
}

fn has_secure_attribute(cookie: &str) -> bool {
    cookie
        .split(';')
        .skip(1)
        .any(|attr| attr.trim().eq_ignore_ascii_case("secure"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw() -> RedirectRewriter<'static> {
        RedirectRewriter {
            upstream_origin: "http://127.0.0.1:8080",
            upstream_default_port: false,
            public_origin: "https://oa.example.com",
            client_host: "oa.example.com",
        }
    }

    #[test]
    fn upstream_origin_becomes_public_origin() {
        let r = rw();
        assert_eq!(
            r.rewrite("http://127.0.0.1:8080/a?b#c").unwrap(),
            "https://oa.example.com/a?b#c"
        );
        assert_eq!(
            r.rewrite("http://127.0.0.1:8080").unwrap(),
            "https://oa.example.com"
        );
        assert_eq!(
            r.rewrite("HTTP://127.0.0.1:8080/x").unwrap(),
            "https://oa.example.com/x"
        );
    }

    #[test]
    fn plain_http_public_host_is_upgraded() {
        assert_eq!(
            rw().rewrite("http://oa.example.com/login").unwrap(),
            "https://oa.example.com/login"
        );
    }

    #[test]
    fn other_urls_are_untouched() {
        let r = rw();
        assert!(r.rewrite("/relative").is_none());
        assert!(r.rewrite("https://sso.example.com/x").is_none());
        assert!(r.rewrite("http://127.0.0.1:80801/x").is_none());
        assert!(r.rewrite("http://127.0.0.1:8080.evil.com/x").is_none());
        assert!(r.rewrite("http://oa.example.com.evil/x").is_none());
    }

    #[test]
    fn default_port_matches_both_spellings() {
        let r = RedirectRewriter {
            upstream_origin: "http://app",
            upstream_default_port: true,
            ..rw()
        };
        assert_eq!(
            r.rewrite("http://app:80/x").unwrap(),
            "https://oa.example.com/x"
        );
        assert_eq!(
            r.rewrite("http://app/x").unwrap(),
            "https://oa.example.com/x"
        );
    }

    #[test]
    fn headers_are_rewritten_including_refresh() {
        let mut h = HeaderMap::new();
        h.insert(
            LOCATION,
            HeaderValue::from_static("http://127.0.0.1:8080/next"),
        );
        h.insert(
            CONTENT_LOCATION,
            HeaderValue::from_static("http://127.0.0.1:8080/doc"),
        );
        h.insert(
            "refresh",
            HeaderValue::from_static("3; URL=http://127.0.0.1:8080/home"),
        );
        rw().apply(&mut h);
        assert_eq!(h[LOCATION], "https://oa.example.com/next");
        assert_eq!(h[CONTENT_LOCATION], "https://oa.example.com/doc");
        assert_eq!(h["refresh"], "3; URL=https://oa.example.com/home");
    }

    #[test]
    fn cookies_get_secure_once() {
        let mut h = HeaderMap::new();
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("sid=1; Path=/; HttpOnly"),
        );
        h.append(SET_COOKIE, HeaderValue::from_static("a=2; secure"));
        h.append(SET_COOKIE, HeaderValue::from_static("secure=3"));
        secure_cookies(&mut h);
        let v: Vec<_> = h
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            v,
            [
                "sid=1; Path=/; HttpOnly; Secure",
                "a=2; secure",
                "secure=3; Secure"
            ]
        );
    }
}
