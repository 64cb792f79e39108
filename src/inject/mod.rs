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
pub mod charref;
pub mod codec;
pub mod csp;
pub mod gate;
pub mod loader;
pub mod rewrite;
pub mod sdk_hosts;
pub mod shell;
mod urls;

use crate::config::Config;
use crate::runtime::metrics::Metrics;
use crate::wire::pool::PooledBody;
use crate::wire::{Body, BoxError};
use codec::{Accepted, Coding};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use shell::Role;
use std::sync::Arc;

pub struct Injector {
    /// `inject.mode = "off"`: pages pass through unchanged.
    off: bool,
    /// `inject.mode = "shell"`.
    shell: bool,
    /// The loader path, escaped for an attribute value.
    loader_src: Arc<str>,
    /// The bridge's path (the loader path with `?bridge`), escaped.
    bridge_src: Arc<str>,
    loader_path: String,
    position: rewrite::Position,
    paths: gate::PathRules,
    csp_mode: CspMode,
    sdk_origins: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// SdkURL origins seen by the login endpoint.
    pub learned: Arc<csp::LearnedOrigins>,
    pub loader: loader::Loader,
    metrics: Arc<Metrics>,
    /// `inject.rewrite_urls`: the app's own origins whose URLs in pages are moved to the
    /// public origin.
    own_origins: Option<Arc<Vec<String>>>,
}

pub use crate::config::CspMode;

/// What the request side decided, carried to the response side.
pub struct Prepared {
    /// `Ok` when the answer may get the loader, else why not.
    plan: Result<Accepted, &'static str>,
    navigation: bool,
    /// What shell mode does with the request (always `Script` in the other modes).
    pub role: Role,
    /// Shell mode, a framed page: the fingerprint of its user for the bridge tag
    /// ([`fingerprint::ANONYMOUS`] when nobody is signed in, `None` when unknown).
    pub user: Option<String>,
    /// The request was not a GET or HEAD (a framed page answering a form): the shell, which
    /// reloads at its frame's address after a user change, must not send it again as a GET.
    posted: bool,
    /// The gate's verdict on the response head, once asked (see [`Prepared::check_response`]).
    checked: Option<Result<(Coding, String), &'static str>>,
}

impl Prepared {
    /// Whether the answer, if it is a page, needs the user's fingerprint.
    pub fn wants_user(&self) -> bool {
        matches!(self.role, Role::Framed { .. }) && self.plan.is_ok()
    }

    /// Whether the response head allows the loader into the page. Asked once: the verdict is
    /// kept for [`Injector::respond`], which would otherwise ask again.
    pub fn check_response(&mut self, status: StatusCode, headers: &HeaderMap) -> bool {
        let verdict = gate::response_check(status, headers);
        let ok = verdict.is_ok();
        self.checked = Some(verdict);
        ok
    }
}

impl Injector {
    pub fn from_config(
        config: &Config,
        metrics: Arc<Metrics>,
        learned: Arc<csp::LearnedOrigins>,
    ) -> Injector {
        let i = &config.inject;
        Injector {
            off: i.mode == crate::config::InjectMode::Off,
            shell: i.mode == crate::config::InjectMode::Shell,
            loader_src: Arc::from(crate::wire::html::escape(&i.loader_path)),
            bridge_src: Arc::from(crate::wire::html::escape(&format!(
                "{}?bridge",
                i.loader_path
            ))),
            loader_path: i.loader_path.clone(),
            csp_mode: i.csp,
            sdk_origins: i.sdk_origins.clone(),
            learned,
            position: i.position,
            paths: gate::PathRules {
                include: i.include.clone(),
                exclude: i.exclude.clone(),
            },
            loader: loader::Loader::new(config),
            metrics,
            own_origins: i
                .rewrite_urls
                .then(|| Arc::new(config.upstream.own_origins())),
        }
    }

    /// Shell mode's role for a request (`Script` in the other modes).
    pub fn role(&self, method: &Method, headers: &HeaderMap, path: &str) -> Role {
        if !self.shell {
            return Role::Script;
        }
        shell::role(method, headers, path, self.paths.allows(path))
    }

    /// The shell page for a top-level navigation to `target` (path and query).
    pub fn shell_page(&self, target: &str) -> Response<Body> {
        self.metrics.shell("shell");
        shell::page(&self.loader_src, target)
    }

    /// The request side; adjusts the headers that go upstream when the answer may be rewritten.
    pub fn prepare(
        &self,
        role: Role,
        method: &Method,
        headers: &mut HeaderMap,
        path: &str,
        upgrade: bool,
    ) -> Prepared {
        let navigation = gate::is_navigation(headers);
        if self.shell {
            if role == Role::Script && navigation && shell::has_fallback_cookie(headers) {
                self.metrics.shell("script_fallback");
            }
            shell::strip_fallback_cookie(headers);
        }
        if self.off {
            return Prepared {
                plan: Err("off"),
                navigation,
                role,
                user: None,
                posted: false,
                checked: None,
            };
        }
        // A framed page answering a form POST still needs its bridge.
        let post_ok = matches!(role, Role::Framed { .. }) && method == Method::POST;
        let plan = match gate::request_skip(method, headers, path, &self.paths, upgrade, post_ok) {
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
        Prepared {
            plan,
            navigation,
            role,
            user: None,
            posted: post_ok,
            checked: None,
        }
    }

    /// The response side: the upstream's answer, rewritten when it is an eligible page, with
    /// shell mode's headers.
    pub fn respond(
        &self,
        prepared: Prepared,
        resp: Response<PooledBody>,
        public_origin: impl Fn() -> String,
        host: &str,
    ) -> Response<Body> {
        let role = prepared.role;
        let mut resp = self.rewrite(prepared, resp, public_origin, host);
        if self.shell {
            if matches!(role, Role::Framed { .. }) {
                self.metrics.shell("framed");
            }
            shell::finish(role, resp.headers_mut());
        }
        resp
    }

    fn rewrite(
        &self,
        prepared: Prepared,
        resp: Response<PooledBody>,
        public_origin: impl Fn() -> String,
        host: &str,
    ) -> Response<Body> {
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
        let verdict = match prepared.checked {
            Some(v) => v,
            None => gate::response_check(parts.status, &parts.headers),
        };
        let (coding, content_type) = match verdict {
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
        let mut page = self.page_csp(h, &public_origin);
        if let Some(own) = &self.own_origins {
            page.urls = Some(Arc::new(crate::wire::rebase::Rebase::new(
                own.clone(),
                public_origin(),
                host,
            )));
        }
        if matches!(prepared.role, Role::Framed { .. }) {
            page.loader_src = self.bridge_src.clone();
            let mut attrs = match &prepared.user {
                Some(u) => format!(" data-tccc-user=\"{}\"", crate::wire::html::escape(u)),
                None => String::new(),
            };
            if prepared.posted {
                attrs.push_str(" data-tccc-posted");
            }
            page.bridge = Some(attrs);
        }
        // URLs may be anywhere in the page: with them to rewrite, the whole page is tokenized,
        // not only up to the tag.
        let stop_when_placed = self.position == rewrite::Position::Head && page.urls.is_none();
        let page = Arc::new(page);
        let rewriter = rewrite::Rewriter::new(page, self.position, encoding);
        let body = body::InjectBody::new(
            body,
            decoder,
            rewriter,
            stop_when_placed,
            encoder,
            self.metrics.clone(),
        );
        Response::from_parts(parts, body.boxed())
    }

    /// Adjusts the response's CSP and Permissions-Policy for the loader; returns what the
    /// rewriter needs (the nonce, and the sources for `<meta>` policies).
    fn page_csp(
        &self,
        h: &mut HeaderMap,
        public_origin: impl Fn() -> String,
    ) -> rewrite::PageInjection {
        for name in [PERMISSIONS_POLICY, FEATURE_POLICY] {
            let legacy = name == FEATURE_POLICY;
            let values: Vec<HeaderValue> = h.get_all(&name).iter().cloned().collect();
            if values.is_empty() {
                continue;
            }
            let fixed: Vec<HeaderValue> = values
                .iter()
                .map(|v| {
                    let s = v.to_str().unwrap_or("");
                    let new = if legacy {
                        csp::allow_microphone_legacy(s)
                    } else {
                        csp::allow_microphone(s)
                    };
                    new.and_then(|n| HeaderValue::from_str(&n).ok())
                        .unwrap_or_else(|| v.clone())
                })
                .collect();
            h.remove(&name);
            for v in fixed {
                h.append(&name, v);
            }
        }
        let mut page = rewrite::PageInjection::plain(self.loader_src.clone());
        if self.csp_mode == CspMode::Off {
            return page;
        }
        let sources = csp::Sources::new(
            format!("{}{}", public_origin(), self.loader_path),
            self.sdk_origins.as_ref(),
            &self.learned,
        );
        let read = |h: &HeaderMap, n: &header::HeaderName| -> Vec<String> {
            h.get_all(n)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect()
        };
        let enforced = read(h, &header::CONTENT_SECURITY_POLICY);
        let report_only = read(h, &header::CONTENT_SECURITY_POLICY_REPORT_ONLY);
        if !enforced.is_empty() || !report_only.is_empty() {
            let all: Vec<String> = enforced.iter().chain(report_only.iter()).cloned().collect();
            let plan = csp::plan_headers(&all, csp::new_nonce);
            let rewrite = |v: &String| {
                HeaderValue::from_str(&csp::rewrite_value(v, &sources, plan.nonce.as_deref())).ok()
            };
            match self.csp_mode {
                CspMode::Rewrite => {
                    for (name, values) in [
                        (header::CONTENT_SECURITY_POLICY, &enforced),
                        (header::CONTENT_SECURITY_POLICY_REPORT_ONLY, &report_only),
                    ] {
                        if values.is_empty() {
                            continue;
                        }
                        let new: Vec<HeaderValue> = values.iter().filter_map(rewrite).collect();
                        if new.len() == values.len() {
                            h.remove(&name);
                            for v in new {
                                h.append(&name, v);
                            }
                        }
                    }
                }
                CspMode::ReportOnly => {
                    for v in enforced.iter().filter_map(rewrite) {
                        h.append(header::CONTENT_SECURITY_POLICY_REPORT_ONLY, v);
                    }
                }
                CspMode::Off => {}
            }
            if plan.fresh_nonce {
                make_private(h);
            }
            *page.nonce.get_mut().unwrap_or_else(|p| p.into_inner()) = plan.nonce;
        }
        page.csp = Some(sources);
        page
    }

    fn skipped(&self, reason: &'static str) {
        self.metrics.injection_skipped(reason);
        tracing::debug!(reason, "page not rewritten");
    }
}

const PERMISSIONS_POLICY: header::HeaderName =
    header::HeaderName::from_static("permissions-policy");
const FEATURE_POLICY: header::HeaderName = header::HeaderName::from_static("feature-policy");

/// A response whose CSP now names a nonce made for it must not be served to anyone else from
/// a shared cache: `public` becomes `private`, and `private` is added when absent.
fn make_private(h: &mut HeaderMap) {
    let current: Vec<String> = h
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect();
    if current
        .iter()
        .any(|d| d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("private"))
    {
        return;
    }
    let mut kept: Vec<String> = current
        .into_iter()
        .filter(|d| {
            let l = d.to_ascii_lowercase();
            l != "public" && !l.starts_with("s-maxage")
        })
        .collect();
    kept.insert(0, "private".into());
    if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        h.insert(header::CACHE_CONTROL, v);
    }
}

/// `Content-MD5` (obsolete but still sent by some servers) would describe the old bytes.
const CONTENT_MD5: header::HeaderName = header::HeaderName::from_static("content-md5");

fn boxed(body: PooledBody) -> Body {
    body.map_err(|e| Box::new(e) as BoxError).boxed()
}

fn passthrough(resp: Response<PooledBody>) -> Response<Body> {
    resp.map(boxed)
}

/// A strong validator no longer describes the rewritten bytes; a weak one still says "same
/// page", so `If-None-Match` revalidation keeps working.
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
    add_vary(h, "Accept-Encoding");
}

/// Adds `name` to `Vary` unless it (or `*`) is there already.
pub(crate) fn add_vary(h: &mut HeaderMap, name: &'static str) {
    let present = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.eq_ignore_ascii_case(name)
        });
    if !present {
        h.append(header::VARY, HeaderValue::from_static(name));
    }
}
