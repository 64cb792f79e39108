//! `mode = "introspect"`: the CRM's own "who am I" answer, asked with the session cookies.

use super::{invalid, or_default, Invalid, ModeInput, DEFAULT_TIMEOUT};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct IntrospectSettings {
    /// Path and query of the whoami URL on the upstream (the cookies go nowhere else).
    pub path: String,
    /// The session cookies forwarded to it.
    pub cookies: Vec<String>,
    /// JSON pointer to the user id in its answer.
    pub user_pointer: String,
    pub timeout: Duration,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
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
        let user_pointer = t.user_pointer.clone().unwrap_or_else(|| "/id".into());
        if !user_pointer.is_empty() && !user_pointer.starts_with('/') {
            return invalid(
                "identity.user_pointer",
                "must be a JSON pointer such as /id or /user/id",
            );
        }
        if t.cookies.is_empty() {
            return invalid(
                "identity.cookies",
                "is required when identity.mode = \"introspect\" (the session cookies to forward)",
            );
        }
        Ok(IntrospectSettings {
            path,
            cookies: t.cookies.clone(),
            user_pointer,
            timeout: or_default(t.timeout, DEFAULT_TIMEOUT),
            cache_ttl: or_default(t.cache_ttl, Duration::from_secs(30)),
            negative_cache_ttl: or_default(t.negative_cache_ttl, Duration::from_secs(5)),
        })
    }
}
