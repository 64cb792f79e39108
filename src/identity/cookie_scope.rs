//! Session cookies that will never reach the login endpoint, noticed as the app sets them.
//!
//! The login endpoint finds the user by the session cookie the browser sends with its token
//! request. Two things an app does quietly keep that cookie away: it scopes the cookie to a
//! path that does not cover `login.path` (`Path=/demo/` while the endpoint is `/loginTCCC`),
//! or it renames the cookie with a `__Secure-`/`__Host-` prefix once it knows it is served
//! over HTTPS, a name `[identity]` does not list. Either way every token request is
//! `unauthenticated` and nothing says why. The sidecar sees every `Set-Cookie` the app sends
//! through it, so it says so: once per cookie and kind in the log, with the fix, and on the
//! diagnostics page. Only names and paths are read; a cookie's value is never kept or logged.

use http::header::{HeaderMap, SET_COOKIE};
use std::sync::Mutex;

/// At most this many distinct problems are kept: a misbehaving app cannot grow the list.
const MAX_PROBLEMS: usize = 8;

const PREFIXES: [&str; 2] = ["__Secure-", "__Host-"];

/// One reason a configured session cookie cannot reach the login endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `cookie` is set for `path`, which does not cover the login endpoint.
    Path { cookie: String, path: String },
    /// The app sets `actual` (a prefixed name) where `[identity]` names `configured`.
    Prefix { configured: String, actual: String },
}

impl Problem {
    /// What happens, in one sentence.
    pub fn what(&self, login_path: &str) -> String {
        match self {
            Problem::Path { cookie, path } => format!(
                "the application sets its session cookie {cookie} with Path={path}, so browsers never send it to {login_path}"
            ),
            Problem::Prefix { configured, actual } => format!(
                "the application sets its session cookie as {actual}, but [identity] names {configured}"
            ),
        }
    }

    /// What to change.
    pub fn fix(&self) -> String {
        match self {
            Problem::Path { path, .. } => {
                format!("set login.path under {path} (for example {path}loginTCCC)")
            }
            Problem::Prefix { actual, .. } => {
                format!("name the cookie {actual} in identity.cookies (or identity.cookie)")
            }
        }
    }
}

/// Watches `Set-Cookie` for the configured session cookies.
pub struct CookieScope {
    names: Vec<String>,
    login_path: String,
    problems: Mutex<Vec<Problem>>,
}

impl CookieScope {
    /// For the configured identity mode: `None` when it reads no cookie.
    pub fn from_config(config: &crate::config::Config) -> Option<CookieScope> {
        use crate::config::identity::{ModeSettings, TokenSource};
        let names = match &config.identity.settings {
            ModeSettings::Introspect(s) => s.cookies.clone(),
            ModeSettings::Jwt(s) => match &s.token {
                TokenSource::Cookie(name) => vec![name.clone()],
                TokenSource::Header(_) => Vec::new(),
            },
            _ => Vec::new(),
        };
        CookieScope::new(names, &config.login.path)
    }

    /// `None` when there is no cookie to watch.
    pub fn new(names: Vec<String>, login_path: &str) -> Option<CookieScope> {
        if names.is_empty() {
            return None;
        }
        Some(CookieScope {
            names,
            login_path: login_path.to_string(),
            problems: Mutex::new(Vec::new()),
        })
    }

    /// Reads the `Set-Cookie` fields of an answer to `request_path`. Answers without one (most)
    /// cost a single lookup.
    pub fn watch(&self, request_path: &str, headers: &HeaderMap) {
        if !headers.contains_key(SET_COOKIE) {
            return;
        }
        for v in headers.get_all(SET_COOKIE) {
            let Ok(s) = v.to_str() else { continue };
            if let Some(p) = self.check(request_path, s) {
                self.report(p);
            }
        }
    }

    fn check(&self, request_path: &str, set_cookie: &str) -> Option<Problem> {
        let mut parts = set_cookie.split(';');
        let name = parts.next()?.split_once('=')?.0.trim();
        let configured = self.names.iter().find(|n| {
            n.as_str() == name
                || PREFIXES
                    .iter()
                    .any(|p| name.strip_prefix(p) == Some(n.as_str()))
        })?;
        if configured != name {
            return Some(Problem::Prefix {
                configured: configured.clone(),
                actual: name.to_string(),
            });
        }
        let path = parts
            .filter_map(|a| a.split_once('='))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("path"))
            .map(|(_, v)| v.trim())
            .next_back()
            .filter(|v| v.starts_with('/'))
            .map(str::to_string)
            // Without a Path, a cookie belongs to the directory of the address that set it.
            .unwrap_or_else(|| default_path(request_path));
        (!path_matches(&self.login_path, &path)).then(|| Problem::Path {
            cookie: name.to_string(),
            path,
        })
    }

    fn report(&self, p: Problem) {
        let Ok(mut list) = self.problems.lock() else {
            return;
        };
        if list.contains(&p) || list.len() >= MAX_PROBLEMS {
            return;
        }
        tracing::warn!(
            problem = %p.what(&self.login_path),
            fix = %p.fix(),
            "a session cookie will not reach the login endpoint: token requests will be unauthenticated"
        );
        list.push(p);
    }

    /// What was noticed so far, oldest first.
    pub fn problems(&self) -> Vec<Problem> {
        self.problems.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn login_path(&self) -> &str {
        &self.login_path
    }
}

/// The default path of a cookie set by an answer to `request_path`: its directory.
fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => request_path[..i].to_string(),
    }
}

/// Whether a cookie with `cookie_path` is sent with a request for `request_path`: the path
/// is the same, or a prefix ending at a `/`.
fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    match request_path.strip_prefix(cookie_path) {
        Some("") => true,
        Some(rest) => cookie_path.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn scope(names: &[&str], login: &str) -> CookieScope {
        CookieScope::new(names.iter().map(|s| s.to_string()).collect(), login).unwrap()
    }

    fn answer(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(SET_COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn a_cookie_scoped_away_from_the_login_path_is_reported_once_with_the_fix() {
        let s = scope(&["roundup_session_demo"], "/loginTCCC");
        for _ in 0..3 {
            s.watch(
                "/demo/",
                &answer(&["roundup_session_demo=abc; Path=/demo/; HttpOnly; SameSite=Lax"]),
            );
        }
        let p = s.problems();
        assert_eq!(
            p,
            vec![Problem::Path {
                cookie: "roundup_session_demo".into(),
                path: "/demo/".into()
            }]
        );
        assert!(p[0]
            .what("/loginTCCC")
            .contains("never send it to /loginTCCC"));
        assert_eq!(
            p[0].fix(),
            "set login.path under /demo/ (for example /demo/loginTCCC)"
        );
        // Under the cookie's path, all is well.
        let s = scope(&["roundup_session_demo"], "/demo/loginTCCC");
        s.watch(
            "/demo/",
            &answer(&["roundup_session_demo=abc; Path=/demo/"]),
        );
        assert!(s.problems().is_empty());
    }

    #[test]
    fn a_prefixed_name_the_config_does_not_list_is_reported() {
        let s = scope(&["sessionid"], "/loginTCCC");
        s.watch(
            "/login",
            &answer(&[
                "csrftoken=x; Path=/",
                "__Secure-sessionid=abc; Path=/; Secure",
                "__Host-sessionid=abc; Path=/; Secure",
            ]),
        );
        assert_eq!(
            s.problems(),
            vec![
                Problem::Prefix {
                    configured: "sessionid".into(),
                    actual: "__Secure-sessionid".into()
                },
                Problem::Prefix {
                    configured: "sessionid".into(),
                    actual: "__Host-sessionid".into()
                },
            ]
        );
        // Named as the app sets it: nothing to say.
        let s = scope(&["__Secure-sessionid"], "/loginTCCC");
        s.watch(
            "/login",
            &answer(&["__Secure-sessionid=abc; Path=/; Secure"]),
        );
        assert!(s.problems().is_empty());
    }

    #[test]
    fn paths_match_as_browsers_match_them() {
        let s = scope(&["sid"], "/app/loginTCCC");
        for (set, ok) in [
            ("sid=1; Path=/", true),
            ("sid=1; Path=/app", true),
            ("sid=1; Path=/app/", true),
            ("sid=1; Path=/application", false),
            ("sid=1; Path=/app/loginTCCC", true),
            ("sid=1; Path=/other/", false),
            // Case matters in paths.
            ("sid=1; Path=/APP/", false),
            // The last Path wins; one that is not a path is ignored (the default applies).
            ("sid=1; Path=/other/; path=/app/", true),
            ("sid=1; Path=relative", true),
            ("other=1; Path=/elsewhere/", true),
        ] {
            let s2 = scope(&["sid"], "/app/loginTCCC");
            s2.watch("/app/page", &answer(&[set]));
            assert_eq!(s2.problems().is_empty(), ok, "{set}");
        }
        // No Path: the directory of the address that set it.
        s.watch("/app/login", &answer(&["sid=1"]));
        assert!(s.problems().is_empty());
        s.watch("/portal/login", &answer(&["sid=1"]));
        assert_eq!(
            s.problems(),
            vec![Problem::Path {
                cookie: "sid".into(),
                path: "/portal".into()
            }]
        );
    }

    #[test]
    fn the_list_is_bounded_and_values_are_never_kept() {
        let s = scope(&["sid"], "/loginTCCC");
        for i in 0..50 {
            s.watch(
                "/",
                &answer(&[&format!("sid=secret-value-{i}; Path=/p{i}/")]),
            );
        }
        let p = s.problems();
        assert_eq!(p.len(), MAX_PROBLEMS);
        assert!(!format!("{p:?}").contains("secret-value"));
        // Malformed fields are skipped, not fatal.
        s.watch("/", &answer(&["no equals sign", "=; Path=/x/", ";;;"]));
    }
}
