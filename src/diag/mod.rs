//! `/__tccc/diag` (`inject.diag_path`): a page for agents and operators that checks, from the
//! agent's own browser, what the Web SDK needs: a secure context, a supported browser, the
//! microphone permission, the sign-in and seat the sidecar sees, and whether the SDK's HTTPS
//! and WebSocket hosts can be reached (call-center desktops on intranets often lack that
//! egress, and nothing else tells them why). The page is the sidecar's own: no upstream call,
//! no token requested, `no-store`, never framed, scripts by nonce only.

use crate::identity::cookie_scope::CookieScope;
use crate::inject::csp::LearnedOrigins;
use crate::login::{LoginService, SignInStatus};
use crate::wire::responses::{empty, full};
use crate::wire::Body;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use std::net::IpAddr;
use std::sync::Arc;

const SCRIPT: &str = include_str!("diag.js");

/// How long one probe may take in the browser.
const PROBE_TIMEOUT_MS: u64 = 8000;

pub use crate::config::origin::probe_origin;

pub struct Diag {
    path: String,
    probes: Vec<String>,
    patterns: Vec<String>,
    learned: Arc<LearnedOrigins>,
    login_path: String,
    cookie_scope: Option<Arc<CookieScope>>,
}

impl Diag {
    /// `None` when `inject.diag_path` is empty.
    pub fn from_config(
        config: &crate::config::Config,
        learned: Arc<LearnedOrigins>,
        cookie_scope: Option<Arc<CookieScope>>,
    ) -> Option<Diag> {
        let path = config.inject.diag_path.clone();
        if path.is_empty() {
            return None;
        }
        let probes = match &config.inject.diag_hosts {
            Some(list) => list.iter().filter_map(|h| probe_origin(h)).collect(),
            // Every exact host Tencent publishes, from the list the CSP sources come from.
            None => crate::inject::sdk_hosts::probes(),
        };
        // Host patterns the SDK uses that cannot be probed; only with the default list, since a
        // configured list says what this site's agents need.
        let patterns = if config.inject.diag_hosts.is_none() {
            crate::inject::sdk_hosts::patterns()
        } else {
            Vec::new()
        };
        Some(Diag {
            path,
            probes,
            patterns,
            learned,
            login_path: config.login.path.clone(),
            cookie_scope,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The probes: configured or default, plus every SdkURL origin seen since start (its HTTPS
    /// host and the WebSocket the SDK holds to it).
    fn probes(&self) -> Vec<String> {
        let mut all = self.probes.clone();
        for o in self.learned.all() {
            for p in [o.clone(), o.replacen("https://", "wss://", 1)] {
                if !all.contains(&p) {
                    all.push(p);
                }
            }
        }
        all
    }

    pub async fn respond(
        &self,
        method: &Method,
        headers: &HeaderMap,
        peer: IpAddr,
        host: &str,
        login: &LoginService,
        identity: &crate::identity::Identity,
    ) -> Response<Body> {
        if *method != Method::GET && *method != Method::HEAD {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let status = login.status(identity, headers, peer, host).await;
        let sign_in = sign_in_json(&status, login.ccc_configured());
        let probes = self.probes();
        let config = serde_json::json!({
            "signIn": sign_in,
            "probes": probes,
            "patterns": self.patterns,
            "timeoutMs": PROBE_TIMEOUT_MS,
            "login": self.login_path,
            "cookies": self.cookie_scope.as_ref().map(|c| {
                c.problems()
                    .iter()
                    .map(|p| serde_json::json!({ "what": p.what(c.login_path()), "fix": p.fix() }))
                    .collect::<Vec<_>>()
            }),
        });
        let nonce = crate::inject::csp::new_nonce();
        let page = page(&script_safe_json(&config), &nonce);
        let csp = format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self' {}; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            probes.join(" ")
        );
        let mut r = Response::new(if *method == Method::GET {
            full(page.clone())
        } else {
            empty()
        });
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(page.len()));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(
            "permissions-policy",
            HeaderValue::from_static("microphone=(self)"),
        );
        // Every probe origin passed `probe_origin`, so the policy is a valid header value.
        if let Ok(v) = HeaderValue::from_str(&csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        r
    }
}

/// The sign-in row, as the page shows it. User and seat are the browser user's own.
fn sign_in_json(status: &SignInStatus, ccc: bool) -> serde_json::Value {
    let (st, result, hint) = match status {
        SignInStatus::Seat { user, seat } => {
            let who = match user {
                Some(u) => format!("{u} → seat {seat}"),
                None => format!("seat {seat} (development: every local request)"),
            };
            if ccc {
                ("ok", who, String::new())
            } else {
                (
                    "fail",
                    who,
                    "The sidecar has no tccc.sdk_app_id: ask the operator.".to_string(),
                )
            }
        }
        SignInStatus::NoSeat { user } => (
            "fail",
            format!("{user}, with no call-center seat"),
            "Ask the administrator to give this user a seat (the sidecar's seats file).".into(),
        ),
        SignInStatus::NotSignedIn => (
            "fail",
            "not signed in".to_string(),
            "Sign in to the CRM first, then reload this page.".into(),
        ),
        SignInStatus::Unavailable => (
            "warn",
            "the sign-in service did not answer".to_string(),
            "Reload in a moment; if it persists, tell the operator.".into(),
        ),
        SignInStatus::RateLimited => (
            "warn",
            "too many requests from this address just now".to_string(),
            "Reload in a minute.".into(),
        ),
    };
    serde_json::json!({ "status": st, "result": result, "hint": hint })
}

/// JSON that can sit inside a `<script>` element: `<` can never close it.
fn script_safe_json(v: &serde_json::Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn page(config_json: &str, nonce: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\" data-diag-state=\"running\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>Call-center diagnostics</title>\
<style nonce=\"{nonce}\">body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}}\
table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}}\
tr[data-status=ok] td:nth-child(2){{color:#176f2c}}tr[data-status=fail] td:nth-child(2){{color:#b00020;font-weight:600}}\
tr[data-status=warn] td:nth-child(2){{color:#8a5a00}}td:nth-child(3){{color:#555}}#report{{width:100%;height:10rem}}</style></head>\
<body><h1>Call-center diagnostics</h1>\
<p>This page checks, from this browser, what the call-center workbench needs. Nothing here starts a call or signs you in.</p>\
<p id=\"summary\" role=\"status\">Checking…</p>\
<table id=\"checks\"><tr><th>Check</th><th>Result</th><th>What to do</th></tr></table>\
<p id=\"patterns\"></p><p><button type=\"button\" id=\"copy\">Copy a report for the helpdesk</button></p>\
<textarea id=\"report\" hidden readonly></textarea>\
<script type=\"application/json\" id=\"tccc-diag-config\">{config_json}</script>\
<script nonce=\"{nonce}\">{SCRIPT}</script>\
<noscript>JavaScript is off in this browser: the workbench needs it.</noscript></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_origins_are_exact_https_or_wss_hosts() {
        assert_eq!(
            probe_origin("https://API.tccc.qcloud.com").as_deref(),
            Some("https://api.tccc.qcloud.com")
        );
        assert_eq!(
            probe_origin("wss://h.example:8443").as_deref(),
            Some("wss://h.example:8443")
        );
        for bad in [
            "http://h.example",
            "https://*.tccc.qcloud.com",
            "https://h.example/path",
            "https://u@h.example",
            "h.example",
            "javascript:alert(1)",
            "https://h.example; script-src *",
        ] {
            assert_eq!(probe_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn config_json_cannot_close_the_script_element() {
        let v = serde_json::json!({"user": "</script><script>alert(1)</script>"});
        let s = script_safe_json(&v);
        assert!(!s.contains("</"), "{s}");
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }
}
