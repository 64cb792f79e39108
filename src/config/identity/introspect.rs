//! `mode = "introspect"`: the CRM's own answer to "who is this", asked with the session's
//! cookies (and, opt-in, its `Authorization`). The answer is a JSON document (`user_pointer`)
//! or one of the app's HTML pages (`user_selector`).

use super::{invalid, or_default, Invalid, ModeInput, DEFAULT_TIMEOUT};
use regex::Regex;
use std::time::Duration;

/// What a user id read from an HTML page must look like unless `identity.user_pattern` says
/// otherwise: a login name, never a display name with spaces.
pub const DEFAULT_USER_PATTERN: &str = "[A-Za-z0-9._@-]+";

#[derive(Debug, Clone)]
pub struct IntrospectSettings {
    /// Path and query of the whoami URL on the upstream (the credentials go nowhere else).
    pub path: String,
    /// The session cookies forwarded to it.
    pub cookies: Vec<String>,
    /// `identity.forward_authorization`: the browser's `Authorization` goes there too.
    pub forward_authorization: bool,
    /// Where the user id is in the answer.
    pub answer: AnswerKind,
    /// The whole id must match this (anchored); `None` keeps the JSON mode's own rule.
    pub user_pattern: Option<Regex>,
    pub timeout: Duration,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
}

#[derive(Debug, Clone)]
pub enum AnswerKind {
    /// A JSON 2xx answer; the id at this JSON pointer.
    Json { pointer: String },
    /// An HTML page; the id in the one element the selector matches.
    Html(PageRule),
}

/// How the user id is read from a page.
#[derive(Debug, Clone)]
pub struct PageRule {
    pub selector: scraper::Selector,
    /// Read this attribute of the element instead of its text.
    pub attribute: Option<String>,
    /// Applied to the element's text (or attribute) only: its one capture group is the id.
    pub regex: Option<Regex>,
}

impl TryFrom<ModeInput<'_>> for IntrospectSettings {
    type Error = Invalid;
    fn try_from(input: ModeInput<'_>) -> Result<Self, Invalid> {
        let t = input.table;
        let Some(url) = &t.url else {
            return invalid(
                "identity.url",
                "is required when identity.mode = \"introspect\"",
            );
        };
        let Some(path) = input.upstream.path_of(url) else {
            return invalid(
                "identity.url",
                "must be a path, or a URL on the upstream's origin (the session cookies go nowhere else)",
            );
        };
        if t.cookies.is_empty() && !t.forward_authorization {
            return invalid(
                "identity.cookies",
                "is required when identity.mode = \"introspect\" (the session cookies to forward), unless identity.forward_authorization = true",
            );
        }
        let answer = match (&t.user_selector, &t.user_pointer) {
            (Some(_), Some(_)) => {
                return invalid(
                    "identity.user_selector",
                    "and identity.user_pointer exclude each other: the answer is an HTML page or a JSON document",
                )
            }
            (Some(sel), None) => AnswerKind::Html(page_rule(sel, t)?),
            (None, pointer) => {
                let page_only = [
                    ("identity.user_attribute", t.user_attribute.is_some()),
                    ("identity.user_regex", t.user_regex.is_some()),
                ];
                if let Some((key, _)) = page_only.iter().find(|(_, set)| *set) {
                    return invalid(
                        *key,
                        "applies to an HTML page: set identity.user_selector too",
                    );
                }
                let pointer = pointer.clone().unwrap_or_else(|| "/id".into());
                if !pointer.is_empty() && !pointer.starts_with('/') {
                    return invalid(
                        "identity.user_pointer",
                        "must be a JSON pointer such as /id or /user/id",
                    );
                }
                AnswerKind::Json { pointer }
            }
        };
        let user_pattern = match (&t.user_pattern, &answer) {
            (Some(p), _) => Some(anchored(p, "identity.user_pattern")?),
            (None, AnswerKind::Html(_)) => {
                Some(anchored(DEFAULT_USER_PATTERN, "identity.user_pattern")?)
            }
            (None, AnswerKind::Json { .. }) => None,
        };
        Ok(IntrospectSettings {
            path,
            cookies: t.cookies.clone(),
            forward_authorization: t.forward_authorization,
            answer,
            user_pattern,
            timeout: or_default(t.timeout, DEFAULT_TIMEOUT),
            cache_ttl: or_default(t.cache_ttl, Duration::from_secs(30)),
            negative_cache_ttl: or_default(t.negative_cache_ttl, Duration::from_secs(5)),
        })
    }
}

fn page_rule(sel: &str, t: &super::IdentityTable) -> Result<PageRule, Invalid> {
    let selector = match scraper::Selector::parse(sel) {
        Ok(s) if !sel.trim().is_empty() => s,
        _ => {
            return invalid(
                "identity.user_selector",
                "must be a CSS selector such as \"#metanav .trac-author-user\"",
            )
        }
    };
    if let Some(a) = &t.user_attribute {
        if a.is_empty()
            || !a
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return invalid(
                "identity.user_attribute",
                "must be an attribute name such as \"value\"",
            );
        }
    }
    let regex = match &t.user_regex {
        None => None,
        Some(r) => {
            let Ok(re) = Regex::new(r) else {
                return invalid("identity.user_regex", "is not a valid regular expression");
            };
            if re.captures_len() != 2 {
                return invalid(
                    "identity.user_regex",
                    "must have exactly one capture group: the user id, as in \"^logged in as (.+)$\"",
                );
            }
            Some(re)
        }
    };
    Ok(PageRule {
        selector,
        attribute: t.user_attribute.as_ref().map(|a| a.to_ascii_lowercase()),
        regex,
    })
}

/// The pattern must match the whole id, not a part of it.
fn anchored(p: &str, key: &str) -> Result<Regex, Invalid> {
    match Regex::new(&format!("^(?:{p})$")) {
        Ok(r) => Ok(r),
        Err(_) => invalid(key, "is not a valid regular expression"),
    }
}
