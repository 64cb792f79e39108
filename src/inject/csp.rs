//! Making a page's Content-Security-Policy allow the loader and the SDK, without weakening it
//! or breaking the page.
//!
//! For each policy (every `Content-Security-Policy` and `-Report-Only` header, comma-separated
//! policies in one header, and `<meta http-equiv>` policies), scripts first:
//!
//! - the directive that governs script elements is found (`script-src-elem`, `script-src`,
//!   else `default-src`, which is then copied into a new `script-src` so that nothing else is
//!   widened); without one, scripts are not restricted and nothing is added;
//! - with `'strict-dynamic'`, a nonce is the only way in: the page's nonce is reused, or a
//!   fresh one is added; the SDK, added by the loader, is trusted through it;
//! - with `'unsafe-inline'` and no nonce or hash, no nonce is added (that would switch
//!   `'unsafe-inline'` off for every inline script of a legacy page): the loader's exact URL
//!   is added unless `'self'` already allows it, and the SDK's exact script origins;
//! - otherwise (nonces, hashes, or host lists: inline scripts are already blocked), a nonce is
//!   reused or added, and the SDK's exact script origins are added.
//!
//! Then `connect-src` and `media-src` (materialised from `default-src` the same way) get the
//! SDK's API, WebSocket and media origins. Never `*`, never `'unsafe-inline'`, never a
//! wildcard host in a script directive. A page with no policy gets none.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// Origins SdkURLs have pointed at since start (each passed the SdkURL host check): the SDK
/// is served from there, so script and connect directives need them.
#[derive(Default)]
pub struct LearnedOrigins(RwLock<BTreeSet<String>>);

impl LearnedOrigins {
    pub fn note(&self, sdk_url: &str) {
        let Ok(uri) = sdk_url.parse::<http::Uri>() else {
            return;
        };
        let (Some("https"), Some(auth)) = (uri.scheme_str(), uri.authority()) else {
            return;
        };
        let origin = format!("https://{}", auth.as_str().to_ascii_lowercase());
        if self.0.read().map(|s| s.contains(&origin)).unwrap_or(true) {
            return;
        }
        if let Ok(mut s) = self.0.write() {
            // Bounded: SdkURLs come from a handful of CDN hosts.
            if s.len() < 64 {
                s.insert(origin);
            }
        }
    }

    pub fn all(&self) -> Vec<String> {
        self.0
            .read()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// What the sources to add are, for one response.
pub struct Sources {
    /// `https://host[:port]/path` of the loader.
    pub loader_url: String,
    pub script: Vec<String>,
    pub connect: Vec<String>,
    pub media: Vec<String>,
}

impl Sources {
    /// Configured origins per directive (else the defaults), plus the learned SDK origins.
    pub fn new(
        loader_url: String,
        configured: Option<&std::collections::BTreeMap<String, Vec<String>>>,
        learned: &LearnedOrigins,
    ) -> Sources {
        // Configured per directive, else Tencent's published hosts (`sdk_hosts`).
        let pick = |key: &str, default: fn() -> Vec<String>| -> Vec<String> {
            configured
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_else(default)
        };
        let learned = learned.all();
        let mut script = pick("script-src", super::sdk_hosts::script_sources);
        let mut connect = pick("connect-src", super::sdk_hosts::connect_sources);
        let mut media = pick("media-src", super::sdk_hosts::media_sources);
        for o in &learned {
            push_unique(&mut script, o.clone());
            push_unique(&mut connect, o.clone());
            // The SDK holds a WebSocket to where it came from.
            push_unique(&mut connect, o.replacen("https://", "wss://", 1));
            push_unique(&mut media, o.clone());
        }
        Sources {
            loader_url,
            script,
            connect,
            media,
        }
    }
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.iter().any(|x| x.eq_ignore_ascii_case(&s)) {
        v.push(s);
    }
}

pub use crate::config::origin::{valid_other_origin, valid_script_origin};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Directive {
    name: String,
    sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Policy {
    directives: Vec<Directive>,
}

impl Policy {
    fn parse(s: &str) -> Policy {
        let mut directives: Vec<Directive> = Vec::new();
        for part in s.split(';') {
            let mut tokens = part.split_ascii_whitespace();
            let Some(name) = tokens.next() else { continue };
            let name = name.to_ascii_lowercase();
            // Browsers ignore a repeated directive; so do we (it is kept as written).
            directives.push(Directive {
                name,
                sources: tokens.map(str::to_string).collect(),
            });
        }
        Policy { directives }
    }

    fn serialize(&self) -> String {
        self.directives
            .iter()
            .map(|d| {
                if d.sources.is_empty() {
                    d.name.clone()
                } else {
                    format!("{} {}", d.name, d.sources.join(" "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.directives.iter().position(|d| d.name == name)
    }

    /// The directive that governs `wanted` (by the fallback chain), made explicit: a fallback
    /// to `default-src` is copied into a new `wanted` directive at the end (order does not
    /// matter to browsers).
    fn effective(&mut self, chain: &[&str], wanted: &str) -> Option<usize> {
        for name in chain {
            if let Some(i) = self.find(name) {
                if *name == "default-src" {
                    let copy = Directive {
                        name: wanted.to_string(),
                        sources: self.directives[i].sources.clone(),
                    };
                    self.directives.push(copy);
                    return Some(self.directives.len() - 1);
                }
                return Some(i);
            }
        }
        None
    }
}

fn is_nonce(s: &str) -> bool {
    // Bytes, not a str slice: a `<meta>` policy is page text, and byte 7 may fall inside a
    // multi-byte character.
    s.len() > 8 && s.as_bytes()[..7].eq_ignore_ascii_case(b"'nonce-") && s.ends_with('\'')
}

fn is_hash(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("'sha256-") || l.starts_with("'sha384-") || l.starts_with("'sha512-")
}

fn has(sources: &[String], keyword: &str) -> bool {
    sources.iter().any(|s| s.eq_ignore_ascii_case(keyword))
}

/// Whether the loader (same origin as the page) is already allowed by a source list that
/// does not use 'strict-dynamic'.
fn allows_same_origin(sources: &[String], loader_url: &str) -> bool {
    sources.iter().any(|s| {
        let l = s.to_ascii_lowercase();
        l == "'self'" || l == "*" || l == "https:" || {
            let origin_of_loader = loader_url
                .splitn(4, '/')
                .take(3)
                .collect::<Vec<_>>()
                .join("/")
                .to_ascii_lowercase();
            l.trim_end_matches('/') == origin_of_loader || l == loader_url.to_ascii_lowercase()
        }
    })
}

fn add_sources(d: &mut Directive, extra: &[String]) {
    if extra.is_empty() {
        return;
    }
    // 'none' cannot stand beside other sources.
    d.sources.retain(|s| !s.eq_ignore_ascii_case("'none'"));
    for e in extra {
        if !d.sources.iter().any(|s| s.eq_ignore_ascii_case(e)) {
            d.sources.push(e.clone());
        }
    }
}

/// What a policy needs for scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ScriptNeed {
    /// Scripts are not restricted, or the policy was adjusted without a nonce.
    NoNonce,
    /// A nonce is needed; these are the nonces the policy already has.
    Nonce(Vec<String>),
}

/// The first pass over one policy: whether it needs a nonce and which it has.
fn script_need(p: &Policy) -> ScriptNeed {
    let chain = ["script-src-elem", "script-src", "default-src"];
    let Some(d) = chain
        .iter()
        .find_map(|n| p.find(n))
        .map(|i| &p.directives[i])
    else {
        return ScriptNeed::NoNonce;
    };
    let nonces: Vec<String> = d.sources.iter().filter(|s| is_nonce(s)).cloned().collect();
    let hashes = d.sources.iter().any(|s| is_hash(s));
    let strict = has(&d.sources, "'strict-dynamic'");
    let unsafe_inline = has(&d.sources, "'unsafe-inline'");
    if unsafe_inline && nonces.is_empty() && !hashes && !strict {
        ScriptNeed::NoNonce
    } else {
        ScriptNeed::Nonce(nonces)
    }
}

/// Rewrites one policy for `nonce` (when it needs one); returns it serialised, or `None` when
/// nothing changed.
fn rewrite_policy(text: &str, src: &Sources, nonce: Option<&str>) -> Option<String> {
    let original = Policy::parse(text);
    let mut p = original.clone();
    let need = script_need(&p);
    if let Some(i) = p.effective(
        &["script-src-elem", "script-src", "default-src"],
        "script-src",
    ) {
        let d = &mut p.directives[i];
        let strict = has(&d.sources, "'strict-dynamic'");
        match (&need, nonce) {
            (ScriptNeed::Nonce(existing), Some(n)) => {
                let token = format!("'nonce-{n}'");
                if !existing.contains(&token) {
                    add_sources(d, std::slice::from_ref(&token));
                }
                if !strict {
                    add_sources(d, &src.script);
                }
            }
            // 'strict-dynamic' without a nonce to give cannot be satisfied: leave it.
            _ if strict => {}
            _ => {
                let mut extra = Vec::new();
                if !allows_same_origin(&d.sources, &src.loader_url) {
                    extra.push(src.loader_url.clone());
                }
                extra.extend(src.script.iter().cloned());
                add_sources(d, &extra);
            }
        }
    }
    for (wanted, list) in [("connect-src", &src.connect), ("media-src", &src.media)] {
        if let Some(i) = p.effective(&[wanted, "default-src"], wanted) {
            add_sources(&mut p.directives[i], list);
        }
    }
    (p != original).then(|| p.serialize())
}

/// The CSP edits for one response.
pub struct CspPlan {
    /// The nonce the loader tag carries, if any policy needs one.
    pub nonce: Option<String>,
    /// Whether the nonce is new to the page (the response must then not be shared).
    pub fresh_nonce: bool,
}

/// Rewrites the values of one CSP header field in place (`values` as received, possibly
/// several policies per value). `nonce_hint` is a nonce already chosen for this response.
pub fn plan_headers(values: &[String], fresh: impl FnOnce() -> String) -> CspPlan {
    let mut needing: Vec<Vec<String>> = Vec::new();
    for v in values {
        for policy in v.split(',') {
            if let ScriptNeed::Nonce(n) = script_need(&Policy::parse(policy)) {
                needing.push(n);
            }
        }
    }
    if needing.is_empty() {
        return CspPlan {
            nonce: None,
            fresh_nonce: false,
        };
    }
    // A nonce every such policy already accepts can be reused as it is.
    let common = needing[0]
        .iter()
        .find(|n| needing.iter().all(|l| l.contains(n)));
    match common {
        Some(n) => CspPlan {
            nonce: Some(n[7..n.len() - 1].to_string()),
            fresh_nonce: false,
        },
        None => CspPlan {
            nonce: Some(fresh()),
            fresh_nonce: true,
        },
    }
}

/// One header value (one or more policies) rewritten for `nonce`.
pub fn rewrite_value(value: &str, src: &Sources, nonce: Option<&str>) -> String {
    value
        .split(',')
        .map(|p| rewrite_policy(p, src, nonce).unwrap_or_else(|| trim_ascii(p).to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `<meta http-equiv="Content-Security-Policy">` policy, rewritten. The meta tag comes
/// before the loader tag, so a nonce it needs can still be chosen here (`slot`).
pub fn rewrite_meta(content: &str, src: &Sources, slot: &mut Option<String>) -> Option<String> {
    let need = script_need(&Policy::parse(content));
    if let ScriptNeed::Nonce(existing) = &need {
        if slot.is_none() {
            *slot = Some(match existing.first() {
                Some(n) => n[7..n.len() - 1].to_string(),
                None => new_nonce(),
            });
        }
    }
    rewrite_policy(content, src, slot.as_deref())
}

/// CSP parsers strip ASCII whitespace only (not, say, a vertical tab, which `str::trim` would).
fn trim_ascii(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Shell mode, for a same-origin iframe's answer only: every policy in `value` whose
/// `frame-ancestors` would refuse the page's own origin gets `'self'` added (`'none'`, which
/// cannot stand beside a source, is replaced). Nothing is removed, a policy without the
/// directive is left alone (it does not restrict framing), and `None` means no change.
pub fn allow_self_framing(value: &str) -> Option<String> {
    let mut changed = false;
    let out: Vec<String> = value
        .split(',')
        .map(|text| {
            let mut p = Policy::parse(text);
            let mut touched = false;
            // Browsers obey the first of repeated directives only.
            if let Some(i) = p.find("frame-ancestors") {
                let d = &mut p.directives[i];
                let open = d
                    .sources
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case("'self'") || s == "*");
                if !open {
                    add_sources(d, &["'self'".to_string()]);
                    touched = true;
                }
            }
            if touched {
                changed = true;
                p.serialize()
            } else {
                trim_ascii(text).to_string()
            }
        })
        .collect();
    changed.then(|| out.join(", "))
}

/// 128 random bits, base64: what CSP3 asks of a nonce.
pub fn new_nonce() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
}

/// Shared between the response-head step and the meta handler of one page.
pub type NonceSlot = Arc<std::sync::Mutex<Option<String>>>;

/// `Permissions-Policy` (and the legacy `Feature-Policy`) must not block the microphone for
/// the page itself: `microphone=()` becomes `microphone=(self)`.
pub fn allow_microphone(value: &str) -> Option<String> {
    let mut changed = false;
    let parts: Vec<String> = value
        .split(',')
        .map(|item| {
            let t = item.trim();
            match t.split_once('=') {
                Some((k, v)) if k.trim().eq_ignore_ascii_case("microphone") => {
                    let v = v.trim();
                    if v == "()" {
                        changed = true;
                        "microphone=(self)".to_string()
                    } else if v.starts_with('(') && !v.contains("self") && v != "*" {
                        changed = true;
                        format!("microphone=(self {}", v.trim_start_matches('('))
                    } else {
                        t.to_string()
                    }
                }
                _ => t.to_string(),
            }
        })
        .collect();
    changed.then(|| parts.join(", "))
}

/// `Feature-Policy: microphone 'none'` → `'self'`.
pub fn allow_microphone_legacy(value: &str) -> Option<String> {
    let mut changed = false;
    let parts: Vec<String> = value
        .split(';')
        .map(|d| {
            let mut t = d.split_ascii_whitespace();
            match t.next() {
                Some(name) if name.eq_ignore_ascii_case("microphone") => {
                    let rest: Vec<&str> = t.collect();
                    if rest
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case("'self'") || *s == "*")
                    {
                        d.trim().to_string()
                    } else {
                        changed = true;
                        "microphone 'self'".to_string()
                    }
                }
                _ => d.trim().to_string(),
            }
        })
        .collect();
    changed.then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Sources {
        Sources {
            loader_url: "https://oa.example.com/__tccc/loader.js".into(),
            script: vec!["https://sdk.example-cdn.cn".into()],
            connect: vec!["wss://*.tccc.qcloud.com".into()],
            media: vec!["https://*.tccc.qcloud.com".into()],
        }
    }

    fn plan_and_rewrite(csp: &str) -> (String, CspPlan) {
        let plan = plan_headers(&[csp.to_string()], || "FRESH".into());
        (rewrite_value(csp, &src(), plan.nonce.as_deref()), plan)
    }

    #[test]
    fn strict_dynamic_reuses_the_pages_nonce_and_adds_no_hosts() {
        let (out, plan) =
            plan_and_rewrite("script-src 'nonce-abc123' 'strict-dynamic'; default-src 'self'");
        assert_eq!(plan.nonce.as_deref(), Some("abc123"));
        assert!(!plan.fresh_nonce);
        assert_eq!(
            out,
            "script-src 'nonce-abc123' 'strict-dynamic'; default-src 'self'; connect-src 'self' wss://*.tccc.qcloud.com; media-src 'self' https://*.tccc.qcloud.com"
        );
    }

    #[test]
    fn strict_dynamic_without_a_nonce_gets_a_fresh_one() {
        let (out, plan) = plan_and_rewrite("script-src 'strict-dynamic' 'sha256-AAAA'");
        assert_eq!(plan.nonce.as_deref(), Some("FRESH"));
        assert!(plan.fresh_nonce);
        assert_eq!(
            out,
            "script-src 'strict-dynamic' 'sha256-AAAA' 'nonce-FRESH'"
        );
    }

    #[test]
    fn unsafe_inline_pages_get_no_nonce_but_the_exact_loader_and_sdk() {
        let (out, plan) = plan_and_rewrite("script-src 'unsafe-inline' https://cdn.oa.example.com");
        assert_eq!(plan.nonce, None);
        assert_eq!(
            out,
            "script-src 'unsafe-inline' https://cdn.oa.example.com https://oa.example.com/__tccc/loader.js https://sdk.example-cdn.cn"
        );
        assert!(!out.contains("nonce"));
        let (out, _) = plan_and_rewrite("script-src 'self' 'unsafe-inline'");
        assert_eq!(
            out,
            "script-src 'self' 'unsafe-inline' https://sdk.example-cdn.cn"
        );
    }

    #[test]
    fn default_src_is_materialised_not_widened() {
        let (out, plan) = plan_and_rewrite("default-src 'self'; img-src *");
        assert_eq!(
            plan.nonce.as_deref(),
            Some("FRESH"),
            "no unsafe-inline: a nonce is harmless"
        );
        assert_eq!(
            out,
            "default-src 'self'; img-src *; script-src 'self' 'nonce-FRESH' https://sdk.example-cdn.cn; connect-src 'self' wss://*.tccc.qcloud.com; media-src 'self' https://*.tccc.qcloud.com"
        );
    }

    #[test]
    fn policies_without_script_rules_are_left_alone() {
        let (out, plan) = plan_and_rewrite("frame-ancestors 'self'; upgrade-insecure-requests");
        assert_eq!(plan.nonce, None);
        assert_eq!(out, "frame-ancestors 'self'; upgrade-insecure-requests");
    }

    #[test]
    fn script_src_elem_governs_elements() {
        let (out, _) = plan_and_rewrite("script-src 'none'; script-src-elem 'self'");
        assert_eq!(
            out,
            "script-src 'none'; script-src-elem 'self' 'nonce-FRESH' https://sdk.example-cdn.cn"
        );
    }

    #[test]
    fn none_is_replaced_only_where_sources_are_added() {
        let (out, _) = plan_and_rewrite("script-src 'none'; connect-src 'none'");
        assert_eq!(
            out,
            "script-src 'nonce-FRESH' https://sdk.example-cdn.cn; connect-src wss://*.tccc.qcloud.com"
        );
    }

    #[test]
    fn several_policies_share_one_nonce_when_they_can() {
        let values = vec![
            "script-src 'nonce-n1' 'strict-dynamic'".to_string(),
            "script-src 'nonce-n1', frame-ancestors 'self'".to_string(),
        ];
        let plan = plan_headers(&values, || "FRESH".into());
        assert_eq!(plan.nonce.as_deref(), Some("n1"));
        // A policy without a nonce gets a fresh one, never the page's: that would let the
        // page's own inline scripts through a policy that blocked them.
        let plan = plan_headers(
            &["script-src 'nonce-n1'".into(), "default-src 'self'".into()],
            || "FRESH".into(),
        );
        assert_eq!(plan.nonce.as_deref(), Some("FRESH"));
        let values = vec![
            "script-src 'nonce-n1'".to_string(),
            "script-src 'nonce-n2'".to_string(),
        ];
        let plan = plan_headers(&values, || "FRESH".into());
        assert_eq!(plan.nonce.as_deref(), Some("FRESH"));
        let out = rewrite_value(&values[0], &src(), plan.nonce.as_deref());
        assert_eq!(
            out,
            "script-src 'nonce-n1' 'nonce-FRESH' https://sdk.example-cdn.cn"
        );
    }

    #[test]
    fn never_a_wildcard_or_unsafe_keyword_is_added() {
        for csp in [
            "default-src 'none'",
            "script-src 'unsafe-inline'",
            "script-src 'nonce-x' 'strict-dynamic'",
            "script-src https:",
        ] {
            let (out, _) = plan_and_rewrite(csp);
            let added: Vec<&str> = out
                .split_ascii_whitespace()
                .filter(|t| !csp.contains(t.trim_end_matches(';')))
                .collect();
            for t in added {
                assert!(
                    t != "*" && t != "*;" && !t.contains("unsafe"),
                    "{csp} → {out}"
                );
            }
        }
    }

    #[test]
    fn meta_policies_choose_the_nonce_when_the_header_did_not() {
        let mut slot = None;
        let out = rewrite_meta("script-src 'strict-dynamic' 'nonce-pg'", &src(), &mut slot);
        assert_eq!(slot.as_deref(), Some("pg"), "the page's nonce is reused");
        assert_eq!(out, None, "and the policy needs no change");
        let mut slot = Some("HDR".to_string());
        let out = rewrite_meta("script-src 'self'", &src(), &mut slot).unwrap();
        assert_eq!(
            out,
            "script-src 'self' 'nonce-HDR' https://sdk.example-cdn.cn"
        );
    }

    #[test]
    fn configured_origins_are_checked() {
        assert!(valid_script_origin("https://sdk.example.cn"));
        assert!(valid_script_origin("https://sdk.example.cn:8443"));
        for bad in [
            "https://*.example.cn",
            "*",
            "https:",
            "'unsafe-inline'",
            "http://x",
            "https://x/path",
        ] {
            assert!(!valid_script_origin(bad), "{bad}");
        }
        assert!(valid_other_origin("wss://*.tccc.qcloud.com"));
        for bad in ["*", "https://*", "https:", "'unsafe-eval'", "data:"] {
            assert!(!valid_other_origin(bad), "{bad}");
        }
    }

    #[test]
    fn the_microphone_is_never_blocked_for_the_page() {
        assert_eq!(
            allow_microphone("camera=(), microphone=()").as_deref(),
            Some("camera=(), microphone=(self)")
        );
        assert_eq!(allow_microphone("microphone=(self)"), None);
        assert_eq!(allow_microphone("geolocation=()"), None);
        assert_eq!(
            allow_microphone_legacy("microphone 'none'; camera 'none'").as_deref(),
            Some("microphone 'self'; camera 'none'")
        );
    }

    #[test]
    fn learned_origins_are_exact_https_origins() {
        let l = LearnedOrigins::default();
        l.note("https://SDK.example.cn:8443/tccc-sdk.js?token=abc");
        l.note("http://plain.example.cn/x");
        l.note("not a url");
        assert_eq!(l.all(), vec!["https://sdk.example.cn:8443".to_string()]);
    }

    #[test]
    fn self_framing_is_added_never_removed() {
        assert_eq!(
            allow_self_framing("frame-ancestors 'none'; default-src 'self'").as_deref(),
            Some("frame-ancestors 'self'; default-src 'self'")
        );
        assert_eq!(
            allow_self_framing("default-src 'self'; FRAME-ANCESTORS https://portal.example")
                .as_deref(),
            Some("default-src 'self'; frame-ancestors https://portal.example 'self'")
        );
        // Already allowed, or not restricted: unchanged.
        assert_eq!(
            allow_self_framing("frame-ancestors 'self' https://a.example"),
            None
        );
        assert_eq!(allow_self_framing("frame-ancestors *"), None);
        assert_eq!(allow_self_framing("script-src 'self'"), None);
        // Each policy of a list on its own; the first of repeated directives counts.
        assert_eq!(
            allow_self_framing("script-src 'self', frame-ancestors 'none'; frame-ancestors 'self'")
                .as_deref(),
            Some("script-src 'self', frame-ancestors 'self'; frame-ancestors 'self'")
        );
    }

    #[test]
    fn multi_byte_text_is_never_sliced_inside_a_character() {
        // Found by the csp fuzz target: a <meta> policy is page text.
        let learned = LearnedOrigins::default();
        let src = Sources::new(
            "https://crm.example/__tccc/loader.js".into(),
            None,
            &learned,
        );
        let _ = rewrite_value("script-sRc ript-sRb  ript-s\u{60a}nsaf/-'", &src, Some("n"));
        let mut slot = None;
        let _ = rewrite_meta(
            "script-src '\u{e9}\u{e9}\u{e9}\u{e9}nonce-x'",
            &src,
            &mut slot,
        );
        assert!(!is_nonce("'nonc\u{60a}abc'"));
        assert!(is_nonce("'nonce-abc'"));
        assert!(!valid_other_origin("https://\u{e9}*.example"));
        assert!(valid_other_origin("https://\u{e9}x.example"));
    }
}
