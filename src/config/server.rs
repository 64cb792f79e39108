//! `[server]`: the TLS listener, its limits and timeouts, and the headers every answer gets.

use super::error::{invalid, Rules};
use super::types::{is_tchar, Cidr, Duration};
use rustls::crypto::aws_lc_rs as provider;
use rustls::SupportedCipherSuite;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Further certificates, chosen by SNI from the names they carry.
    #[serde(default)]
    pub certificates: Vec<CertificatePair>,
    #[serde(default)]
    pub public_origin: Option<String>,
    #[serde(default)]
    pub server_names: Vec<String>,
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    #[serde(default)]
    pub redirect_listen: Option<SocketAddr>,
    /// Lowest TLS version offered.
    #[serde(default)]
    pub min_tls_version: TlsVersion,
    /// Cipher suites by their IANA names; empty means the modern defaults.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Value of `Strict-Transport-Security`, e.g. "max-age=31536000"; absent means none is sent.
    #[serde(default)]
    pub hsts: Option<String>,
    /// Adds `Secure` to cookies the upstream sets, since the browser only ever sees HTTPS.
    #[serde(default = "yes")]
    pub secure_cookies: bool,
    /// Adds `Content-Security-Policy: upgrade-insecure-requests` to HTML answers.
    #[serde(default)]
    pub upgrade_insecure_requests: bool,
    /// Sends `Via: 1.1 tccc-sidecar` upstream and downstream.
    #[serde(default = "yes")]
    pub via: bool,
    /// How long a client may take to send a request's headers; also bounds an idle HTTP/1.1 keep-alive connection.
    #[serde(default = "defaults::header_read_timeout")]
    pub header_read_timeout: Duration,
    /// How long a TLS handshake may take.
    #[serde(default = "defaults::handshake_timeout")]
    pub handshake_timeout: Duration,
    /// Largest request head (request line and headers) in bytes.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// Most request headers accepted.
    #[serde(default = "defaults::max_headers")]
    pub max_headers: usize,
    /// Most open connections from one client address (IPv6: one /64); `trusted_proxies` are
    /// not limited; 0 = no limit. A connection over it is closed at accept.
    #[serde(default = "defaults::max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Longest request target (path and query) in bytes; longer ones get 414.
    #[serde(default = "defaults::max_uri_bytes")]
    pub max_uri_bytes: usize,
    #[serde(default = "defaults::h2_max_concurrent_streams")]
    pub h2_max_concurrent_streams: u32,
    /// `Upgrade` protocols that may become a tunnel to the upstream (any case). Any other
    /// upgrade request goes on as a plain request; `h2c` can never be listed.
    #[serde(default = "defaults::allowed_upgrades")]
    pub allowed_upgrades: Vec<String>,
    /// How long writing to a client may make no progress (a full socket, or an HTTP/2 stream
    /// whose window stays shut) before its response is ended and the upstream request cancelled.
    #[serde(default = "defaults::send_timeout")]
    pub send_timeout: Duration,
    /// How long reading a request body may make no progress before it is answered 408 and the
    /// upstream request cancelled.
    #[serde(default = "defaults::client_body_timeout")]
    pub client_body_timeout: Duration,
    /// Most requests one client address (IPv6: one /64) may have in flight, over all its
    /// connections; beyond it 503 with `Retry-After`. `trusted_proxies` are exempt; 0 = no limit.
    #[serde(default = "defaults::max_requests_in_flight_per_client")]
    pub max_requests_in_flight_per_client: usize,
    /// How long in-flight requests may run after SIGTERM before the process exits anyway.
    #[serde(default = "defaults::shutdown_timeout")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM, how long to keep serving (new connections too) while `/readyz` answers
    /// 503, so that load balancers and Kubernetes endpoints stop sending first. Then the drain.
    #[serde(default)]
    pub shutdown_delay: Option<Duration>,
    /// Tokio worker threads; default: the cgroup CPU quota, else the number of CPUs.
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// How often certificate files are compared with what is loaded, beside file notifications.
    #[serde(default = "defaults::reload_interval")]
    pub reload_interval: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `server.min_tls_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl TryFrom<String> for TlsVersion {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err("must be \"1.2\" or \"1.3\""),
        }
    }
}

pub(super) fn yes() -> bool {
    true
}

mod defaults {
    use super::Duration;
    pub fn header_read_timeout() -> Duration {
        Duration::secs(30)
    }
    pub fn handshake_timeout() -> Duration {
        Duration::secs(10)
    }
    pub fn max_header_bytes() -> usize {
        64 * 1024
    }
    pub fn max_headers() -> usize {
        100
    }
    /// Browsers open one HTTP/2 connection per origin (six with HTTP/1.1), so 1024 leaves room
    /// for a call center of several hundred agents behind one NAT address.
    pub fn max_connections_per_client() -> usize {
        1024
    }
    /// nginx's `large_client_header_buffers` line size.
    pub fn max_uri_bytes() -> usize {
        8192
    }
    pub fn h2_max_concurrent_streams() -> u32 {
        250
    }
    pub fn allowed_upgrades() -> Vec<String> {
        vec!["websocket".into()]
    }
    /// nginx's `send_timeout`.
    pub fn send_timeout() -> Duration {
        Duration::secs(60)
    }
    /// nginx's `client_body_timeout`.
    pub fn client_body_timeout() -> Duration {
        Duration::secs(60)
    }
    /// A whole connection limit's worth: an agent's browser keeps a few requests open (long
    /// polls among them), so several hundred agents behind one NAT address fit, while one
    /// address can no longer hold the 250 streams of each of its connections.
    pub fn max_requests_in_flight_per_client() -> usize {
        1024
    }
    pub fn shutdown_timeout() -> Duration {
        Duration::secs(25)
    }
    pub fn reload_interval() -> Duration {
        Duration::secs(10)
    }
}

/// Cipher suites by IANA name; an empty list means the provider's modern defaults
/// (AES-GCM and ChaCha20-Poly1305 with ECDHE only; rustls has no legacy suites).
pub fn cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = provider::ALL_CIPHER_SUITES;
    if names.is_empty() {
        return Ok(provider::DEFAULT_CIPHER_SUITES.to_vec());
    }
    names
        .iter()
        .map(|n| {
            all.iter()
                .find(|s| {
                    s.suite()
                        .as_str()
                        .is_some_and(|name| name.eq_ignore_ascii_case(n))
                })
                .copied()
                .ok_or_else(|| format!("unknown cipher suite {n}"))
        })
        .collect()
}

impl ServerConfig {
    /// The rules of `[server]` that its value types alone cannot check.
    pub(super) fn validate(&self) -> Rules {
        if let Some(origin) = &self.public_origin {
            if super::origin::parse_origin(origin).is_none() {
                return invalid(
                    "server.public_origin",
                    "must be an origin such as https://oa.example.com (scheme, host, optional port; no path)",
                );
            }
        }
        for name in &self.server_names {
            if name.is_empty() || name.contains(['/', ' ', ':']) {
                return invalid(
                    "server.server_names",
                    "each entry must be a bare host name (no scheme, port or path)",
                );
            }
        }
        if let Some(h) = &self.hsts {
            if !h.to_ascii_lowercase().starts_with("max-age=") {
                return invalid(
                    "server.hsts",
                    "must start with max-age=, e.g. \"max-age=31536000\"",
                );
            }
        }
        if self.max_header_bytes < 1024 {
            return invalid("server.max_header_bytes", "must be at least 1024");
        }
        if self.max_uri_bytes < 256 {
            return invalid("server.max_uri_bytes", "must be at least 256");
        }
        for u in &self.allowed_upgrades {
            if u.is_empty() || !u.bytes().all(is_tchar) {
                return invalid(
                    "server.allowed_upgrades",
                    "each entry must be a protocol name such as \"websocket\"",
                );
            }
            if u.eq_ignore_ascii_case("h2c") {
                return invalid(
                    "server.allowed_upgrades",
                    "h2c is never tunnelled (a client inside it would bypass every request check); HTTP/2 is offered by ALPN",
                );
            }
        }
        if self.max_headers == 0 {
            return invalid("server.max_headers", "must be at least 1");
        }
        if self.worker_threads == Some(0) {
            return invalid("server.worker_threads", "must be at least 1");
        }
        if cipher_suites(&self.cipher_suites).is_err() {
            return invalid(
                "server.cipher_suites",
                "unknown cipher suite name (use IANA names such as TLS13_AES_128_GCM_SHA256)",
            );
        }
        Ok(())
    }
}
