//! The response filter: every edit of a response head on its way to the client, in one place.
//!
//! - The upstream's answer loses its hop-by-hop fields; `Location`, `Content-Location` and
//!   `Refresh` that point at the upstream's own origin are rewritten to the public origin, as
//!   nginx's `proxy_redirect default` does (since the sidecar keeps the client's `Host`, apps
//!   that build absolute URLs from it write `http://<public host>/...`: those move to `https`
//!   too); so are the targets of `Link` fields (preloads, prefetches), which the browser would
//!   otherwise fetch from an address it cannot reach, or over plain HTTP from an HTTPS page;
//!   cookies set over the TLS side get `Secure`, so that a session cookie is never later
//!   sent over plain HTTP; `Via`; `upgrade-insecure-requests` on pages when configured.
//! - A granted protocol switch says which protocol it switched to, and nothing else hop-by-hop.
//! - The sidecar's own refusals end an HTTP/1.1 connection when they must, and say when to
//!   come back when the refusal is a limit.
//! - Every answer on the TLS listener, proxied or not, gets `Strict-Transport-Security`.
//!
//! The edits that exist only because a page gets the loader (its CSP, `Content-Length`,
//! `ETag`, framing in shell mode) are the body filter's, made by `inject` as it decides to
//! rewrite the page.

use super::refusal::Refusal;
use crate::state::Snapshot;
use crate::wire::hop;
use crate::wire::names::{REFRESH, VIA};
use crate::wire::rebase::Rebase;
use crate::wire::responses::error_page;
use crate::wire::Body;
use http::header::{self, HeaderMap, HeaderValue, CONTENT_LOCATION, LINK, LOCATION, SET_COOKIE};
use http::Response;

/// The upstream's response head, rewritten for the client.
pub fn upstream_response(snap: &Snapshot, host: &str, h: &mut HeaderMap) {
    hop::strip(h);
    let cfg = &snap.config;
    let has_redirect = h.contains_key(LOCATION)
        || h.contains_key(CONTENT_LOCATION)
        || h.contains_key(REFRESH)
        || h.contains_key(LINK);
    // Most answers carry none of these: the public origin is worked out only when needed.
    if cfg.upstream.rewrite_redirects && has_redirect {
        RedirectRewriter {
            rebase: Rebase::new(snap.own_origins.clone(), snap.public_origin_for(host), host),
        }
        .apply(h);
    }
    cookies(h, cfg.server.secure_cookies, &snap.own_hosts, host);
    if cfg.server.via {
        h.append(header::VIA, HeaderValue::from_static(VIA));
    }
    if cfg.server.upgrade_insecure_requests && is_html(h) {
        h.append(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("upgrade-insecure-requests"),
        );
    }
}

/// A granted protocol switch (`101`): the upstream's hop-by-hop fields go, and the answer
/// names the protocol the client asked for.
pub fn switching_protocols(h: &mut HeaderMap, protocol: HeaderValue) {
    hop::strip(h);
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, protocol);
}

/// The page for one of the sidecar's own refusals.
pub fn refusal(refusal: Refusal, http1: bool) -> Response<Body> {
    let reject = refusal.reject();
    let mut page = error_page(reject);
    let h = page.headers_mut();
    if reject.close && http1 {
        // hyper ends the connection after an answer that says so.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if refusal == Refusal::ClientRequestsInFlight {
        // A limit, not a fault: the client may come back shortly.
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    page
}

/// Headers every answer on the TLS listener carries, proxied or not.
pub fn every_answer(snap: &Snapshot, h: &mut HeaderMap) {
    if let Some(hsts) = &snap.hsts {
        if !h.contains_key(header::STRICT_TRANSPORT_SECURITY) {
            h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
}

fn is_html(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
}

/// Redirect headers that name the application's own address, moved to the public origin.
pub struct RedirectRewriter {
    pub rebase: Rebase,
}

impl RedirectRewriter {
    /// The rewritten URL, or `None` when `url` does not point at the app's own address or
    /// the plain-HTTP public host.
    pub fn rewrite(&self, url: &str) -> Option<String> {
        self.rebase.url(url)
    }

    /// Applies [`rewrite`](Self::rewrite) to `Location`, `Content-Location`, `Refresh` and
    /// the targets of `Link`.
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
        let refresh = headers.get(REFRESH).and_then(|v| v.to_str().ok());
        if let Some(new) = refresh.and_then(|r| self.rewrite_refresh(r)) {
            if let Ok(v) = HeaderValue::from_str(&new) {
                headers.insert(REFRESH, v);
            }
        }
        if headers.contains_key(LINK) {
            let links: Vec<HeaderValue> = headers.get_all(LINK).iter().cloned().collect();
            let rewritten: Vec<HeaderValue> = links
                .iter()
                .map(|v| {
                    v.to_str()
                        .ok()
                        .and_then(|s| self.rewrite_link(s))
                        .and_then(|s| HeaderValue::from_str(&s).ok())
                        .unwrap_or_else(|| v.clone())
                })
                .collect();
            if rewritten != links {
                headers.remove(LINK);
                for v in rewritten {
                    headers.append(LINK, v);
                }
            }
        }
    }

    /// `<http://upstream/a.css>; rel=preload, <...>` with each target rewritten; `None` when
    /// no target points at the upstream. Parameters (`rel`, `as`, `title`) stay as they are.
    fn rewrite_link(&self, value: &str) -> Option<String> {
        let mut out = String::with_capacity(value.len() + 16);
        let mut rest = value;
        let mut changed = false;
        while let Some(open) = rest.find('<') {
            let Some(len) = rest[open..].find('>') else {
                break;
            };
            let target = &rest[open + 1..open + len];
            out.push_str(&rest[..=open]);
            match self.rewrite(target.trim()) {
                Some(new) => {
                    out.push_str(&new);
                    changed = true;
                }
                None => out.push_str(target),
            }
            out.push('>');
            rest = &rest[open + len + 1..];
        }
        out.push_str(rest);
        changed.then_some(out)
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

/// Every `Set-Cookie` of the answer, for the browser: `Secure` added where it lacks it (when
/// `secure`), and a `Domain` that names one of the application's own hosts (`own_hosts`:
/// the upstream's, `upstream.internal_origins`') dropped, since the browser would refuse a
/// cookie for a host it is not talking to; the cookie then belongs to the public host alone.
/// A `Domain` the client's host lies in is kept. Answers without cookies cost one lookup.
pub fn cookies(headers: &mut HeaderMap, secure: bool, own_hosts: &[String], client_host: &str) {
    if !headers.contains_key(SET_COOKIE) {
        return;
    }
    let mut client: Option<String> = None;
    let values: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    headers.remove(SET_COOKIE);
    for v in values {
        let new = match v.to_str() {
            Ok(s) => {
                // Most cookies have no Domain: nothing is allocated for them.
                let dropped = if has_domain(s) {
                    let client = client.get_or_insert_with(|| client_host_name(client_host));
                    without_own_domain(s, own_hosts, client)
                } else {
                    None
                };
                let s = dropped.as_deref().unwrap_or(s);
                let add_secure = secure && !has_secure_attribute(s);
                match (dropped.is_some(), add_secure) {
                    (false, false) => v,
                    (_, true) => HeaderValue::from_str(&format!("{s}; Secure")).unwrap_or(v),
                    (true, false) => HeaderValue::from_str(s).unwrap_or(v),
                }
            }
            Err(_) => v,
        };
        headers.append(SET_COOKIE, new);
    }
}

fn has_domain(cookie: &str) -> bool {
    cookie
        .as_bytes()
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"domain"))
}

/// The client's host name, lower case, without port or brackets.
fn client_host_name(host: &str) -> String {
    crate::state::host_without_port(host)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The cookie without its `Domain` attribute when that names one of `own_hosts` and the
/// client's host does not lie in it; `None` when nothing changes.
fn without_own_domain(cookie: &str, own_hosts: &[String], client: &str) -> Option<String> {
    let mut parts = cookie.split(';');
    let first = parts.next()?;
    let mut out = String::with_capacity(cookie.len());
    out.push_str(first);
    let mut dropped = false;
    for attr in parts {
        if let Some((k, v)) = attr.split_once('=') {
            if k.trim().eq_ignore_ascii_case("domain") {
                let domain = v.trim().trim_start_matches('.').to_ascii_lowercase();
                let own = own_hosts.contains(&domain);
                let covers_client = client == domain || client.ends_with(&format!(".{domain}"));
                if own && !covers_client {
                    dropped = true;
                    continue;
                }
            }
        }
        out.push(';');
        out.push_str(attr);
    }
    dropped.then_some(out)
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

    fn rewriter(own: &[&str]) -> RedirectRewriter {
        let own = own.iter().map(|s| s.to_string()).collect();
        RedirectRewriter {
            rebase: Rebase::new(
                std::sync::Arc::new(own),
                "https://oa.example.com".into(),
                "oa.example.com",
            ),
        }
    }

    fn rw() -> RedirectRewriter {
        rewriter(&["http://127.0.0.1:8080"])
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
        let r = rewriter(&["http://app", "http://app:80"]);
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
    fn link_targets_on_the_upstream_move_to_the_public_origin() {
        let mut h = HeaderMap::new();
        h.append(
            LINK,
            HeaderValue::from_static(
                "<http://127.0.0.1:8080/static/app.css>; rel=preload; as=style, <https://cdn.example.com/x.js>; rel=preload; as=script",
            ),
        );
        h.append(
            LINK,
            HeaderValue::from_static("</fonts/a.woff2>; rel=preload; as=font"),
        );
        h.append(
            LINK,
            HeaderValue::from_static("<http://oa.example.com/next>; rel=prefetch"),
        );
        rw().apply(&mut h);
        let links: Vec<&str> = h
            .get_all(LINK)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            links,
            [
                "<https://oa.example.com/static/app.css>; rel=preload; as=style, <https://cdn.example.com/x.js>; rel=preload; as=script",
                "</fonts/a.woff2>; rel=preload; as=font",
                "<https://oa.example.com/next>; rel=prefetch",
            ],
            "upstream and plain-HTTP public targets move; others, relative ones and the order stay"
        );
        // A field without a target, or with one left open, is left as it came.
        let mut odd = HeaderMap::new();
        odd.append(LINK, HeaderValue::from_static("rel=preload"));
        odd.append(LINK, HeaderValue::from_static("<http://127.0.0.1:8080/a"));
        rw().apply(&mut odd);
        let odd: Vec<&str> = odd
            .get_all(LINK)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(odd, ["rel=preload", "<http://127.0.0.1:8080/a"]);
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
        cookies(&mut h, true, &[], "oa.example.com");
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

    #[test]
    fn a_cookie_for_the_apps_own_host_is_kept_by_the_browser() {
        let own = vec!["127.0.0.1".to_string(), "oa.intranet".to_string()];
        let mut h = HeaderMap::new();
        for c in [
            "sid=1; Domain=oa.intranet; Path=/; HttpOnly",
            "a=2; domain=.OA.INTRANET; Secure",
            "b=3; Path=/; Domain=127.0.0.1",
            // The public host's own domain, and other domains, are the app's business.
            "c=4; Domain=example.com",
            "d=5; Domain=sso.corp",
        ] {
            h.append(SET_COOKIE, HeaderValue::from_str(c).unwrap());
        }
        cookies(&mut h, true, &own, "oa.example.com:8443");
        let v: Vec<_> = h
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            v,
            [
                "sid=1; Path=/; HttpOnly; Secure",
                "a=2; Secure",
                "b=3; Path=/; Secure",
                "c=4; Domain=example.com; Secure",
                "d=5; Domain=sso.corp; Secure",
            ]
        );
        // An internal name that is also the public one (or its parent) stays.
        let mut h = HeaderMap::new();
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("sid=1; Domain=oa.intranet"),
        );
        cookies(&mut h, false, &own, "crm.oa.intranet");
        assert_eq!(h[SET_COOKIE], "sid=1; Domain=oa.intranet");
        // Without Secure to add, an untouched cookie is the same value.
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("sid=1; Path=/"));
        cookies(&mut h, false, &own, "oa.example.com");
        assert_eq!(h[SET_COOKIE], "sid=1; Path=/");
    }
}
