//! Shell mode (`inject.mode = "shell"`): calls that survive navigation in multi-page CRMs.
//!
//! A top-level GET navigation is answered by a small shell page from the sidecar (the
//! upstream is not asked): it loads the SDK once, through the loader, and shows the CRM in a
//! full-window same-origin iframe whose URL it takes from its own location. The CRM's pages
//! inside that frame get a bridge script instead of the loader, which reports the page's
//! address, title and user to the shell and mirrors the workbench state back.
//!
//! Which answer a request gets is decided from Fetch Metadata alone ([`Shell::role`]):
//!
//! | request                                                             | answer |
//! |---------------------------------------------------------------------|--------|
//! | no `Sec-Fetch-Dest` (browsers before Fetch Metadata, a hop that strips it) | script mode: the page with the loader |
//! | `document`, `navigate`, GET, eligible path, no fallback cookie      | the shell page |
//! | `document` otherwise (a POST such as SAML `form_post`, an excluded path, a download, the frame-busting fallback cookie) | script mode |
//! | `iframe`/`frame` with `Sec-Fetch-Site: same-origin`                 | the page with the bridge; for `iframe`, framing headers relaxed to same-origin |
//! | anything else                                                       | script mode (the loader decides in the browser) |
//!
//! The shell is never served into a frame, and every shell-mode HTML answer to a navigation
//! carries `Vary: Sec-Fetch-Dest`; the shell and framed pages are `no-store`.

pub mod fingerprint;

use crate::wire::responses::full;
use crate::wire::Body;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response};

use crate::wire::names::{SEC_FETCH_DEST, SEC_FETCH_MODE, SEC_FETCH_SITE};

/// The cookie the shell sets (per path, for an hour) when a page broke out of its frame: that
/// path then gets script mode. It is the sidecar's own and never reaches the upstream.
pub const FALLBACK_COOKIE: &str = "__tccc_shell";

/// The name of the shell's iframe: `target="_top"` links and forms are pointed at it.
pub const FRAME_NAME: &str = "tccc-shell-frame";

/// What shell mode does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Script mode: the page (if eligible) gets the loader.
    Script,
    /// A top-level navigation: answered with the shell page.
    Shell,
    /// A same-origin frame's document: the page gets the bridge. `iframe`: the framing
    /// headers are relaxed to same-origin (`frame` documents belong to framesets).
    Framed { iframe: bool },
}

/// File endings of what is downloaded or shown by the browser itself rather than as a CRM
/// page: a top-level navigation to one gets no shell (it would leave an empty shell behind).
const DOWNLOADS: [&str; 31] = [
    "pdf", "zip", "rar", "7z", "gz", "tgz", "tar", "xls", "xlsx", "csv", "doc", "docx", "ppt",
    "pptx", "odt", "ods", "txt", "json", "xml", "png", "jpg", "jpeg", "gif", "svg", "webp", "mp3",
    "wav", "mp4", "exe", "msi", "apk",
];

fn looks_like_download(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    let last = last.split(';').next().unwrap_or("");
    match last.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => {
            DOWNLOADS.iter().any(|d| d.eq_ignore_ascii_case(ext))
        }
        _ => false,
    }
}

/// The role of a request in shell mode. `eligible`: the path may get the loader at all
/// (`inject.include`/`exclude`).
pub fn role(method: &Method, headers: &HeaderMap, path: &str, eligible: bool) -> Role {
    let Some(dest) = headers.get(&SEC_FETCH_DEST).map(|v| v.as_bytes()) else {
        return Role::Script;
    };
    match dest {
        b"document" => {
            let navigate = headers
                .get(&SEC_FETCH_MODE)
                .is_some_and(|v| v.as_bytes() == b"navigate");
            if method == Method::GET
                && navigate
                && eligible
                && !looks_like_download(path)
                && !has_fallback_cookie(headers)
            {
                Role::Shell
            } else {
                Role::Script
            }
        }
        b"iframe" | b"frame" => {
            let same_origin = headers
                .get(&SEC_FETCH_SITE)
                .is_some_and(|v| v.as_bytes() == b"same-origin");
            if same_origin {
                Role::Framed {
                    iframe: dest == b"iframe",
                }
            } else {
                Role::Script
            }
        }
        _ => Role::Script,
    }
}

fn cookie_is_fallback(c: &str) -> bool {
    c.trim_start()
        .split_once('=')
        .is_some_and(|(k, _)| k.trim() == FALLBACK_COOKIE)
}

/// Whether the browser sent the frame-busting fallback cookie.
pub fn has_fallback_cookie(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(FALLBACK_COOKIE) && v.split(';').any(cookie_is_fallback))
}

/// Removes the sidecar's own cookie from what goes upstream (each `Cookie` field; HTTP/2 may
/// send several).
pub fn strip_fallback_cookie(headers: &mut HeaderMap) {
    let mentions = headers.get_all(header::COOKIE).iter().any(|v| {
        v.as_bytes()
            .windows(FALLBACK_COOKIE.len())
            .any(|w| w == FALLBACK_COOKIE.as_bytes())
    });
    if !mentions {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| {
            let Ok(s) = v.to_str() else {
                return Some(v.clone());
            };
            let rest: Vec<&str> = s
                .split(';')
                .filter(|c| !cookie_is_fallback(c) && !c.trim().is_empty())
                .map(str::trim)
                .collect();
            if rest.is_empty() {
                None
            } else {
                HeaderValue::from_str(&rest.join("; ")).ok()
            }
        })
        .collect();
    headers.remove(header::COOKIE);
    for v in kept {
        headers.append(header::COOKIE, v);
    }
}

/// A page the sidecar answers itself in shell mode: HTML, never stored, varying by
/// `Sec-Fetch-Dest` (the same address is a shell, a framed page or a script mode page by it).
fn own_page(html: String) -> Response<Body> {
    let mut resp = Response::new(full(html));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Sec-Fetch-Dest"));
    resp
}

/// The shell page for a request to `target` (path and query, as requested). The frame's URL
/// is set by the shell script from the page's own location (with its fragment, which the
/// server never sees); `<noscript>` browsers get the same target, anchored to this origin.
pub fn page(loader_src: &str, target: &str) -> Response<Body> {
    let nonce = super::csp::new_nonce();
    // "//host/x" would be another origin for the iframe: collapse leading slashes.
    let anchored = format!("/{}", target.trim_start_matches(['/', '\\']));
    let html = format!(
        "<!doctype html>\n<html data-tccc-shell><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title></title>\
<style>html,body{{margin:0;padding:0;height:100%;overflow:hidden}}\
iframe{{display:block;border:0;width:100%;height:100%}}</style>\
<script src=\"{loader_src}\" nonce=\"{nonce}\" data-tccc-loader defer></script></head>\
<body><iframe id=\"{FRAME_NAME}\" name=\"{FRAME_NAME}\" title=\"\" \
allow=\"microphone; camera; autoplay; fullscreen; clipboard-read; clipboard-write; display-capture; geolocation\">\
</iframe><noscript><iframe src=\"{frame}\" title=\"\"></iframe></noscript>\
<script src=\"{loader_src}?shell\" nonce=\"{nonce}\"></script></body></html>\n",
        frame = crate::wire::html::escape(&anchored),
    );
    let mut resp = own_page(html);
    let h = resp.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The shell holds no content of anyone's: scripts only by nonce (and what they load, for
    // the SDK), never framed. 'unsafe-eval' because the Web SDK is a third-party bundle that
    // may compile code at run time; 'unsafe-inline' and https: only for CSP2 browsers, which
    // ignore 'strict-dynamic' (CSP3 browsers ignore those two beside a nonce).
    if let Ok(v) = HeaderValue::from_str(&format!(
        "frame-ancestors 'none'; object-src 'none'; base-uri 'none'; \
         script-src 'nonce-{nonce}' 'strict-dynamic' 'unsafe-eval' 'unsafe-inline' https:"
    )) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// The answer to a framed request that the upstream redirected to another origin (a single
/// sign-on page, typically, which refuses to be framed): a page that takes the whole tab
/// there instead, as the browser would have without the shell.
pub fn breakout(location: &str) -> Option<Response<Body>> {
    let lower = location.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let nonce = super::csp::new_nonce();
    // JSON inside a script: '<' escaped so that no "</script>" can end it.
    let js_url = serde_json::to_string(location)
        .ok()?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title></title>\
<script nonce=\"{nonce}\">(function(){{var u={js_url};try{{window.top.location.href=u}}catch(e){{location.href=u}}}})();</script>\
</head><body><noscript><a href=\"{href}\" target=\"_top\">Continue</a></noscript></body></html>\n",
        href = crate::wire::html::escape(location),
    );
    let mut resp = own_page(html);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; frame-ancestors 'self'"
        ))
        .ok()?,
    );
    Some(resp)
}

/// Whether a redirect's `Location` (already rewritten to the public origin) leaves `origin`.
pub fn leaves_origin(location: &str, origin: &str) -> bool {
    let l = location.to_ascii_lowercase();
    if !(l.starts_with("https://") || l.starts_with("http://")) {
        // Relative (or scheme-relative, handled as leaving unless it names our host).
        return l.starts_with("//")
            && !format!("https:{l}").starts_with(&origin.to_ascii_lowercase());
    }
    let o = origin.to_ascii_lowercase();
    !(l == o
        || l.starts_with(&format!("{o}/"))
        || l.starts_with(&format!("{o}?"))
        || l.starts_with(&format!("{o}#")))
}

/// Response headers for shell mode, after the page was (or was not) rewritten. Every HTML
/// answer varies by `Sec-Fetch-Dest` (the same address is a shell, a framed page or a script
/// mode page by it), and framed pages are not stored.
pub fn finish(role: Role, h: &mut HeaderMap) {
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("text/html") || m.eq_ignore_ascii_case("application/xhtml+xml")
        });
    if let Role::Framed { iframe: true } = role {
        relax_framing(h);
    }
    if html {
        super::add_vary(h, "Sec-Fetch-Dest");
        if matches!(role, Role::Framed { .. }) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.remove(header::EXPIRES);
        }
    }
}

/// `X-Frame-Options: DENY` becomes `SAMEORIGIN`, and `frame-ancestors` gains `'self'`, for an
/// answer that a same-origin iframe asked for (the caller checked).
pub fn relax_framing(h: &mut HeaderMap) {
    let xfo: Vec<HeaderValue> = h.get_all(header::X_FRAME_OPTIONS).iter().cloned().collect();
    if !xfo.is_empty() {
        h.remove(header::X_FRAME_OPTIONS);
        for v in xfo {
            let relaxed = v.to_str().ok().map(|s| {
                s.split(',')
                    .map(|t| {
                        if t.trim().eq_ignore_ascii_case("deny") {
                            "SAMEORIGIN"
                        } else {
                            t.trim()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            let value = relaxed
                .and_then(|r| HeaderValue::from_str(&r).ok())
                .unwrap_or(v);
            h.append(header::X_FRAME_OPTIONS, value);
        }
    }
    for name in [
        header::CONTENT_SECURITY_POLICY,
        header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
    ] {
        let values: Vec<HeaderValue> = h.get_all(&name).iter().cloned().collect();
        if values.is_empty() {
            continue;
        }
        h.remove(&name);
        for v in values {
            let new = v
                .to_str()
                .ok()
                .and_then(super::csp::allow_self_framing)
                .and_then(|s| HeaderValue::from_str(&s).ok())
                .unwrap_or(v);
            h.append(&name, new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        crate::test_support::headers(pairs)
    }

    const NAV: [(&str, &str); 3] = [
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "none"),
    ];

    #[test]
    fn role_table() {
        let get = Method::GET;
        assert_eq!(role(&get, &h(&NAV), "/customers", true), Role::Shell);
        assert_eq!(
            role(&get, &h(&[]), "/customers", true),
            Role::Script,
            "no metadata"
        );
        assert_eq!(
            role(&Method::POST, &h(&NAV), "/sso/acs", true),
            Role::Script
        );
        assert_eq!(
            role(&get, &h(&NAV), "/api/x", false),
            Role::Script,
            "excluded"
        );
        assert_eq!(
            role(&get, &h(&NAV), "/files/report.PDF", true),
            Role::Script
        );
        assert_eq!(
            role(&get, &h(&NAV), "/app/page.do;jsessionid=1", true),
            Role::Shell
        );
        let mut cookie = h(&NAV);
        cookie.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __tccc_shell=off"),
        );
        assert_eq!(
            role(&get, &cookie, "/busting", true),
            Role::Script,
            "fallback cookie"
        );
        let framed = |dest: &str, site: &str| {
            h(&[
                ("sec-fetch-dest", dest),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-site", site),
            ])
        };
        assert_eq!(
            role(&get, &framed("iframe", "same-origin"), "/x", true),
            Role::Framed { iframe: true }
        );
        assert_eq!(
            role(&Method::POST, &framed("iframe", "same-origin"), "/x", true),
            Role::Framed { iframe: true }
        );
        assert_eq!(
            role(&get, &framed("frame", "same-origin"), "/x", true),
            Role::Framed { iframe: false }
        );
        for site in ["same-site", "cross-site", "none"] {
            assert_eq!(
                role(&get, &framed("iframe", site), "/x", true),
                Role::Script,
                "{site}"
            );
        }
        assert_eq!(
            role(&get, &h(&[("sec-fetch-dest", "empty")]), "/x", true),
            Role::Script
        );
    }

    #[test]
    fn fallback_cookie_never_reaches_the_upstream() {
        let mut m = h(&[
            ("cookie", "a=1; __tccc_shell=off; b=2"),
            ("cookie", "__tccc_shell=off"),
        ]);
        strip_fallback_cookie(&mut m);
        let left: Vec<&str> = m
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, vec!["a=1; b=2"]);
        let mut other = h(&[("cookie", "x__tccc_shell=1; __tccc_shellx=2")]);
        strip_fallback_cookie(&mut other);
        assert_eq!(
            other.get(header::COOKIE).unwrap(),
            "x__tccc_shell=1; __tccc_shellx=2"
        );
        assert!(!has_fallback_cookie(&other));
    }

    #[test]
    fn framing_is_relaxed_to_same_origin_only() {
        let mut m = h(&[
            ("x-frame-options", "DENY"),
            ("content-security-policy", "frame-ancestors 'none'"),
            ("content-security-policy-report-only", "default-src 'self'"),
        ]);
        relax_framing(&mut m);
        assert_eq!(m.get(header::X_FRAME_OPTIONS).unwrap(), "SAMEORIGIN");
        assert_eq!(
            m.get(header::CONTENT_SECURITY_POLICY).unwrap(),
            "frame-ancestors 'self'"
        );
        assert_eq!(
            m.get(header::CONTENT_SECURITY_POLICY_REPORT_ONLY).unwrap(),
            "default-src 'self'"
        );
        let mut same = h(&[("x-frame-options", "sameorigin")]);
        relax_framing(&mut same);
        assert_eq!(same.get(header::X_FRAME_OPTIONS).unwrap(), "sameorigin");
    }

    #[test]
    fn shell_page_frames_only_its_own_origin() {
        let resp = page("/__tccc/loader.js", "//evil.example/x?<a>");
        let h = resp.headers();
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert!(h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("frame-ancestors 'none';"));
    }

    #[test]
    fn breakout_only_for_http_urls_and_escaped() {
        assert!(breakout("javascript:alert(1)").is_none());
        assert!(breakout("https://sso.example/login?x=</script><script>").is_some());
        assert!(leaves_origin(
            "https://sso.example/login",
            "https://crm.example"
        ));
        assert!(!leaves_origin(
            "https://crm.example/login",
            "https://crm.example"
        ));
        assert!(leaves_origin(
            "https://crm.example.evil/x",
            "https://crm.example"
        ));
        assert!(!leaves_origin("/login", "https://crm.example"));
        assert!(leaves_origin("//sso.example/x", "https://crm.example"));
    }
}
