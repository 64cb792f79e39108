//! `[upstream]`: the application behind the sidecar and how it is reached.

use super::error::{invalid, Rules};
use super::types::{Duration, UpstreamUrl};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub url: UpstreamUrl,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate from the upstream: for self-signed legacy servers only; logged loudly.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Duration,
    /// How long the upstream may take to send response headers.
    #[serde(default = "defaults::response_timeout")]
    pub response_timeout: Duration,
    /// Longer (or shorter) response-header timeouts by path prefix; the longest matching prefix wins.
    #[serde(default)]
    pub response_timeout_overrides: BTreeMap<String, Duration>,
    #[serde(default = "defaults::pool_idle_timeout")]
    pub pool_idle_timeout: Duration,
    #[serde(default = "defaults::pool_max_idle")]
    pub pool_max_idle_per_host: usize,
    /// Rewrite `Location`, `Content-Location`, `Refresh` and `Link` targets that point at the
    /// upstream (nginx's `proxy_redirect default`, and preloads).
    #[serde(default = "super::server::yes")]
    pub rewrite_redirects: bool,
    /// Other origins the application knows itself by (`http://oa.intranet:8080`, a base URL
    /// configured in the app): redirects to them, and cookies whose `Domain` names their
    /// host, are rewritten for the public origin as the upstream's own are.
    #[serde(default)]
    pub internal_origins: Vec<String>,
}

mod defaults {
    use super::Duration;
    pub fn connect_timeout() -> Duration {
        Duration::secs(5)
    }
    pub fn response_timeout() -> Duration {
        Duration::secs(60)
    }
    pub fn pool_idle_timeout() -> Duration {
        Duration::secs(90)
    }
    pub fn pool_max_idle() -> usize {
        256
    }
}

impl UpstreamConfig {
    pub(super) fn validate(&self) -> Rules {
        for prefix in self.response_timeout_overrides.keys() {
            if !prefix.starts_with('/') {
                return invalid(
                    "upstream.response_timeout_overrides",
                    "each key must be a path prefix starting with /",
                );
            }
        }
        for o in &self.internal_origins {
            if super::origin::parse_origin(o).is_none() {
                return invalid(
                    "upstream.internal_origins",
                    format!("{o:?} is not an origin: write http(s)://host[:port], with no path"),
                );
            }
        }
        if self.insecure_skip_verify && self.ca_file.is_some() {
            return invalid(
                "upstream.insecure_skip_verify",
                "cannot be combined with upstream.ca_file",
            );
        }
        Ok(())
    }

    /// Every way the application's own URLs may begin: the upstream's origin and
    /// `internal_origins`, each also with its default port written out (or left out).
    pub fn own_origins(&self) -> Vec<String> {
        let mut out = Vec::new();
        let first = std::iter::once(self.url.origin.to_ascii_lowercase());
        let rest = self
            .internal_origins
            .iter()
            .filter_map(|o| super::origin::parse_origin(o));
        for origin in first.chain(rest) {
            let Some((scheme, authority)) = origin.split_once("://") else {
                continue;
            };
            let default = if scheme == "https" { 443 } else { 80 };
            let (host, port) = split_port(authority);
            let twin = match port {
                None => format!("{scheme}://{host}:{default}"),
                Some(p) if p == default => format!("{scheme}://{host}"),
                Some(_) => String::new(),
            };
            for o in [origin.clone(), twin] {
                if !o.is_empty() && !out.contains(&o) {
                    out.push(o);
                }
            }
        }
        out
    }

    /// The hosts of [`own_origins`](Self::own_origins), lower case, without port or brackets:
    /// a cookie whose `Domain` names one was meant for the application's own address.
    pub fn own_hosts(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for o in self.own_origins() {
            let authority = o.split_once("://").map(|(_, a)| a).unwrap_or_default();
            let host = split_port(authority).0.trim_matches(['[', ']']).to_string();
            if !host.is_empty() && !out.contains(&host) {
                out.push(host);
            }
        }
        out
    }

    /// The timeout for the upstream's response headers on `path`: the longest matching override, else the default.
    pub fn response_timeout_for(&self, path: &str) -> std::time::Duration {
        self.response_timeout_overrides
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, d)| d.get())
            .unwrap_or(self.response_timeout.get())
    }

    /// The path and query that a URL names on this upstream: `url` itself when it is a path,
    /// else its path when the URL's origin is the upstream's; `None` for any other origin.
    pub fn path_of(&self, url: &str) -> Option<String> {
        let upstream = &self.url;
        if url.starts_with('/') && !url.starts_with("//") {
            return url
                .parse::<http::uri::PathAndQuery>()
                .ok()
                .map(|p| p.to_string());
        }
        let uri: http::Uri = url.parse().ok()?;
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let auth = uri.authority()?;
        let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
        let same = https == upstream.https
            && auth
                .host()
                .trim_matches(['[', ']'])
                .eq_ignore_ascii_case(&upstream.host)
            && port == upstream.port
            && !auth.as_str().contains('@');
        same.then(|| {
            uri.path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "/".into())
        })
    }
}

/// `host[:port]` (or `[v6]:port`) split at the port, if there is one.
fn split_port(authority: &str) -> (&str, Option<u16>) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && !port.contains(']') => {
            match port.parse::<u16>() {
                Ok(p) => (host, Some(p)),
                Err(_) => (authority, None),
            }
        }
        _ => (authority, None),
    }
}
