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
        if self.insecure_skip_verify && self.ca_file.is_some() {
            return invalid(
                "upstream.insecure_skip_verify",
                "cannot be combined with upstream.ca_file",
            );
        }
        Ok(())
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
