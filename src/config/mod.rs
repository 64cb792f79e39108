//! The sidecar's configuration file (TOML), as fixed by the public contract.
//!
//! Parsing is strict: unknown keys are errors, and every error names the file, the line and
//! the key's path, in the `file:line: key: message` form that `check` prints. Values whose
//! syntax matters (durations, rates, CIDRs, URLs) are parsed while deserialising so that a bad
//! value points at its own line. Rules that span several keys are checked afterwards by
//! [`Config::validate`].

pub mod types;

pub use types::{Cidr, Duration, Rate};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One configuration problem, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: ", self.file, line)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub tccc: TcccConfig,
    #[serde(default)]
    pub login: LoginConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub seats: SeatsConfig,
    #[serde(default)]
    pub inject: InjectConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Where the file was read from; relative paths inside it are resolved against its folder.
    #[serde(skip)]
    pub source: PathBuf,
    /// The file's text, kept so that later checks can point at a key's line.
    #[serde(skip)]
    pub source_text: String,
}

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
    /// Lowest TLS version offered: "1.2" or "1.3".
    #[serde(default = "defaults::min_tls_version")]
    pub min_tls_version: String,
    /// Cipher suites by their IANA names; empty means the modern defaults.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Value of `Strict-Transport-Security`, e.g. "max-age=31536000"; absent means none is sent.
    #[serde(default)]
    pub hsts: Option<String>,
    /// Adds `Secure` to cookies the upstream sets, since the browser only ever sees HTTPS.
    #[serde(default = "defaults::yes")]
    pub secure_cookies: bool,
    /// Adds `Content-Security-Policy: upgrade-insecure-requests` to HTML answers.
    #[serde(default)]
    pub upgrade_insecure_requests: bool,
    /// Sends `Via: 1.1 tccc-sidecar` upstream and downstream (RFC 9110 §7.6.3).
    #[serde(default = "defaults::yes")]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub url: types::UpstreamUrl,
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
    /// Rewrite `Location`, `Content-Location` and `Refresh` that point at the upstream (nginx `proxy_redirect default`).
    #[serde(default = "defaults::yes")]
    pub rewrite_redirects: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcccConfig {
    #[serde(default)]
    pub sdk_app_id: Option<u64>,
    #[serde(default = "defaults::endpoint")]
    pub endpoint: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub secret_id_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    #[serde(default)]
    pub session_token_file: Option<PathBuf>,
    #[serde(default)]
    pub sdk_url_hosts: Vec<String>,
    #[serde(default = "defaults::yes")]
    pub only_once: bool,
    #[serde(default = "defaults::ccc_timeout")]
    pub timeout: Duration,
}

impl Default for TcccConfig {
    fn default() -> Self {
        TcccConfig {
            sdk_app_id: None,
            endpoint: defaults::endpoint(),
            region: None,
            secret_id_file: None,
            secret_key_file: None,
            session_token_file: None,
            sdk_url_hosts: Vec::new(),
            only_once: true,
            timeout: defaults::ccc_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    #[serde(default = "defaults::login_path")]
    pub path: String,
    #[serde(default)]
    pub allow_get: bool,
    #[serde(default = "defaults::per_user_rate")]
    pub per_user_rate: Rate,
    #[serde(default = "defaults::total_rate")]
    pub total_rate: Rate,
    #[serde(default = "defaults::per_client_rate")]
    pub per_client_rate: Rate,
    /// How long a request may wait for the overall limit before it is answered 429.
    #[serde(default = "defaults::queue_timeout")]
    pub queue_timeout: Duration,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            path: defaults::login_path(),
            allow_get: false,
            per_user_rate: defaults::per_user_rate(),
            total_rate: defaults::total_rate(),
            per_client_rate: defaults::per_client_rate(),
            queue_timeout: defaults::queue_timeout(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    #[default]
    Header,
    Introspect,
    Jwt,
    Static,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    #[serde(default)]
    pub mode: IdentityMode,
    #[serde(default)]
    pub header: Option<String>,
    /// Peers believed when they name a user in a header; in every mode, the identity headers
    /// of anyone else are removed before the upstream sees the request.
    #[serde(default)]
    pub trusted_peers: Vec<Cidr>,
    /// Header names removed from untrusted peers' requests besides the documented defaults
    /// (`identity::spoofable::DEFAULT`), for an application that trusts a header of its own.
    #[serde(default)]
    pub strip_headers: Vec<String>,
    #[serde(default)]
    pub gateway_secret_header: Option<String>,
    #[serde(default)]
    pub gateway_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub cookies: Vec<String>,
    #[serde(default)]
    pub user_pointer: Option<String>,
    #[serde(default)]
    pub cache_ttl: Option<Duration>,
    #[serde(default)]
    pub negative_cache_ttl: Option<Duration>,
    #[serde(default)]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub logout_paths: Vec<String>,
    #[serde(default)]
    pub cookie: Option<String>,
    #[serde(default)]
    pub claim: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub hs256_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub seat: Option<String>,
    /// How often a JWKS URL is fetched again (an unknown `kid` also triggers a fetch).
    #[serde(default)]
    pub jwks_refresh: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SeatsConfig {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub template: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InjectMode {
    #[default]
    Script,
    Shell,
    /// No page is rewritten: `/loginTCCC` and the loader are still served, for pages that
    /// load the workbench themselves (the vendor's snippet, or the loader's tag).
    Off,
}

/// How a number is handed to the SDK once it has passed the E.164 allow and deny checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum DialFormat {
    /// `+8613800000000`.
    #[default]
    #[serde(rename = "e164")]
    E164,
    /// National digits for numbers of `inject.click_to_call_country` (`02155550101`,
    /// `13800000000`), others with the international prefix `00`.
    #[serde(rename = "national")]
    National,
    /// `008613800000000`.
    #[serde(rename = "00")]
    International00,
}

impl DialFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DialFormat::E164 => "e164",
            DialFormat::National => "national",
            DialFormat::International00 => "00",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectConfig {
    #[serde(default)]
    pub mode: InjectMode,
    #[serde(default = "defaults::loader_path")]
    pub loader_path: String,
    #[serde(default = "defaults::exclude")]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub click_to_call: bool,
    /// How numbers are handed to the SDK (after the E.164 checks): the SDK's examples use
    /// national digits and its events `0086…`; E.164 until a trial with a real account says
    /// otherwise.
    #[serde(default)]
    pub dial_format: DialFormat,
    /// How long the loader waits for the SDK's `ready` before it shows `error` and retries.
    #[serde(default = "defaults::sdk_ready_timeout")]
    pub sdk_ready_timeout: Duration,
    #[serde(default)]
    pub sdk_origins: Option<BTreeMap<String, Vec<String>>>,
    /// Where the loader tag goes: "head" (end of `<head>`, the default) or "body" (end of `<body>`).
    #[serde(default)]
    pub position: Option<String>,
    /// Path prefixes whose pages get the loader; empty means every path not excluded.
    #[serde(default)]
    pub include: Vec<String>,
    /// In a frameset, the name of the frame whose document holds the SDK.
    #[serde(default)]
    pub frame_name: Option<String>,
    /// What happens to a page's CSP: "rewrite" (default), "report-only" (canary), "off".
    #[serde(default)]
    pub csp: Option<String>,
    /// The diagnostics page for agents (`/__tccc/diag`); "" turns it off.
    #[serde(default = "defaults::diag_path")]
    pub diag_path: String,
    /// Origins the diagnostics page probes from the agent's browser (`https://host[:port]` or
    /// `wss://host[:port]`); default: Tencent's documented SDK hosts. SdkURL origins seen
    /// since start are always added.
    #[serde(default)]
    pub diag_hosts: Option<Vec<String>>,
    /// Click-to-call: E.164 prefixes (`+86`) a number must start with; empty allows any
    /// number that no deny prefix matches.
    #[serde(default)]
    pub click_to_call_allow: Vec<String>,
    /// Click-to-call: E.164 prefixes that are never dialled (premium-rate and international
    /// satellite ranges by default: `tel:` links in user-written notes are a toll-fraud path).
    #[serde(default = "defaults::click_to_call_deny")]
    pub click_to_call_deny: Vec<String>,
    /// Click-to-call: the country calling code (`"86"`) that makes a national number (no `+`)
    /// international; without it, only numbers written with `+` or `00` are dialled.
    #[serde(default)]
    pub click_to_call_country: Option<String>,
    /// Shell mode: paths whose activation in the frame ends the workbench (the agent goes
    /// offline); default: `identity.logout_paths`.
    #[serde(default)]
    pub logout_paths: Option<Vec<String>>,
    /// Shell mode: a file with the key that fingerprints users for the shell (at least 32
    /// bytes). Default: derived from the CCC SecretKey, so replicas with the same credentials
    /// agree.
    #[serde(default)]
    pub shell_key_file: Option<PathBuf>,
}

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            mode: InjectMode::Script,
            loader_path: defaults::loader_path(),
            exclude: defaults::exclude(),
            click_to_call: false,
            sdk_ready_timeout: defaults::sdk_ready_timeout(),
            dial_format: DialFormat::E164,
            sdk_origins: None,
            position: None,
            include: Vec::new(),
            frame_name: None,
            csp: None,
            diag_path: defaults::diag_path(),
            diag_hosts: None,
            click_to_call_allow: Vec::new(),
            click_to_call_deny: defaults::click_to_call_deny(),
            click_to_call_country: None,
            logout_paths: None,
            shell_key_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as "info" or "tccc_sidecar=debug"; `RUST_LOG` wins when set.
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: defaults::log_level(),
        }
    }
}

mod defaults {
    use super::{Duration, Rate};
    /// ITU-T international premium-rate (+979), shared-cost (+808) and international
    /// networks and satellite services (+870, +881, +882, +883): ranges that cost the caller
    /// far more than a call and that an agent's CRM never needs.
    pub fn click_to_call_deny() -> Vec<String> {
        ["+979", "+808", "+870", "+881", "+882", "+883"]
            .map(String::from)
            .to_vec()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn min_tls_version() -> String {
        "1.2".into()
    }
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
    /// The SDK takes seconds to become ready on a good network; half a minute covers a slow
    /// one without leaving an agent on "loading" for long.
    pub fn sdk_ready_timeout() -> Duration {
        Duration::secs(30)
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
    pub fn endpoint() -> String {
        "https://ccc.tencentcloudapi.com".into()
    }
    pub fn ccc_timeout() -> Duration {
        Duration::secs(10)
    }
    pub fn login_path() -> String {
        "/loginTCCC".into()
    }
    pub fn per_user_rate() -> Rate {
        Rate::per_minute(30)
    }
    pub fn total_rate() -> Rate {
        Rate::per_second(15)
    }
    pub fn per_client_rate() -> Rate {
        Rate::per_minute(60)
    }
    pub fn queue_timeout() -> Duration {
        Duration::secs(5)
    }
    pub fn loader_path() -> String {
        "/__tccc/loader.js".into()
    }
    pub fn diag_path() -> String {
        "/__tccc/diag".into()
    }

    pub fn exclude() -> Vec<String> {
        vec!["/api/".into()]
    }
    pub fn log_level() -> String {
        "info".into()
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            file: file.clone(),
            line: e.span().map(|s| line_of_offset(text, s.start)),
            key: String::new(),
            message: first_line(e.message()),
        })?;
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let line = inner
                .span()
                .map(|s| line_of_offset(text, s.start))
                .or_else(|| line_of_key(text, &key));
            ConfigError {
                file: file.clone(),
                line,
                key: if key == "." { String::new() } else { key },
                message: first_line(inner.message()),
            }
        })?;
        config.source = path.to_path_buf();
        config.source_text = text.to_string();
        config.validate().map_err(|(key, message)| ConfigError {
            line: line_of_key(text, &key),
            file,
            key,
            message,
        })?;
        Ok(config)
    }

    /// A located error about `key`, found in this file's text.
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.source.display().to_string(),
            line: line_of_key(&self.source_text, key),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Rules that involve more than one key, or values the type alone cannot check.
    /// Returns the key's dotted path and what is wrong.
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if !matches!(self.server.min_tls_version.as_str(), "1.2" | "1.3") {
            return err("server.min_tls_version", "must be \"1.2\" or \"1.3\"");
        }
        if let Some(origin) = &self.server.public_origin {
            if types::parse_origin(origin).is_none() {
                return err(
                    "server.public_origin",
                    "must be an origin such as https://oa.example.com (scheme, host, optional port; no path)",
                );
            }
        }
        for name in &self.server.server_names {
            if name.is_empty() || name.contains(['/', ' ', ':']) {
                return err(
                    "server.server_names",
                    "each entry must be a bare host name (no scheme, port or path)",
                );
            }
        }
        if let Some(h) = &self.server.hsts {
            if !h.to_ascii_lowercase().starts_with("max-age=") {
                return err(
                    "server.hsts",
                    "must start with max-age=, e.g. \"max-age=31536000\"",
                );
            }
        }
        if self.server.max_header_bytes < 1024 {
            return err("server.max_header_bytes", "must be at least 1024");
        }
        if self.server.max_uri_bytes < 256 {
            return err("server.max_uri_bytes", "must be at least 256");
        }
        if self
            .identity
            .strip_headers
            .iter()
            .any(|h| http::HeaderName::try_from(h.as_str()).is_err())
        {
            return err(
                "identity.strip_headers",
                "each entry must be a header name such as \"X-Portal-User\"",
            );
        }
        for u in &self.server.allowed_upgrades {
            if u.is_empty() || !u.bytes().all(types::is_tchar) {
                return err(
                    "server.allowed_upgrades",
                    "each entry must be a protocol name such as \"websocket\"",
                );
            }
            if u.eq_ignore_ascii_case("h2c") {
                return err(
                    "server.allowed_upgrades",
                    "h2c is never tunnelled (a client inside it would bypass every request check); HTTP/2 is offered by ALPN",
                );
            }
        }
        if self.inject.sdk_ready_timeout.get() < std::time::Duration::from_secs(1) {
            return err(
                "inject.sdk_ready_timeout",
                "must be at least 1s: the SDK takes seconds to become ready",
            );
        }
        if self.server.max_headers == 0 {
            return err("server.max_headers", "must be at least 1");
        }
        if self.server.worker_threads == Some(0) {
            return err("server.worker_threads", "must be at least 1");
        }
        if crate::tls::cipher_suites(&self.server.cipher_suites).is_err() {
            return err(
                "server.cipher_suites",
                "unknown cipher suite name (use IANA names such as TLS13_AES_128_GCM_SHA256)",
            );
        }
        for prefix in self.upstream.response_timeout_overrides.keys() {
            if !prefix.starts_with('/') {
                return err(
                    "upstream.response_timeout_overrides",
                    "each key must be a path prefix starting with /",
                );
            }
        }
        if self.upstream.insecure_skip_verify && self.upstream.ca_file.is_some() {
            return err(
                "upstream.insecure_skip_verify",
                "cannot be combined with upstream.ca_file",
            );
        }
        for (key, path) in [
            ("login.path", &self.login.path),
            ("inject.loader_path", &self.inject.loader_path),
        ] {
            if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
                return err(key, "must be an absolute path such as /loginTCCC");
            }
        }
        if self.login.path == self.inject.loader_path {
            return err("inject.loader_path", "must differ from login.path");
        }
        for (key, list) in [
            (
                "inject.click_to_call_allow",
                &self.inject.click_to_call_allow,
            ),
            ("inject.click_to_call_deny", &self.inject.click_to_call_deny),
        ] {
            for (i, p) in list.iter().enumerate() {
                let digits = p.strip_prefix('+').unwrap_or("");
                if digits.is_empty()
                    || digits.len() > 15
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return err(
                        &format!("{key}[{i}]"),
                        "must be a + and 1 to 15 digits, such as \"+86\"",
                    );
                }
            }
        }
        if let Some(cc) = &self.inject.click_to_call_country {
            if cc.is_empty()
                || cc.len() > 3
                || !cc.bytes().all(|b| b.is_ascii_digit())
                || cc.starts_with('0')
            {
                return err(
                    "inject.click_to_call_country",
                    "must be a country calling code of 1 to 3 digits, such as \"86\"",
                );
            }
        }
        if self.inject.dial_format == DialFormat::National
            && self.inject.click_to_call_country.is_none()
        {
            return err(
                "inject.dial_format",
                "\"national\" needs inject.click_to_call_country (the country whose numbers are dialled nationally)",
            );
        }
        for (i, p) in self.inject.logout_paths.iter().flatten().enumerate() {
            if !p.starts_with('/') {
                return err(
                    &format!("inject.logout_paths[{i}]"),
                    "must be an absolute path such as /logout",
                );
            }
        }
        let diag = &self.inject.diag_path;
        if !diag.is_empty() {
            if !diag.starts_with('/') || diag.contains(['?', '#', ' ']) {
                return err(
                    "inject.diag_path",
                    "must be an absolute path such as /__tccc/diag, or \"\" for none",
                );
            }
            if diag == &self.login.path || diag == &self.inject.loader_path {
                return err(
                    "inject.diag_path",
                    "must differ from login.path and inject.loader_path",
                );
            }
        }
        for (i, h) in self.inject.diag_hosts.iter().flatten().enumerate() {
            if crate::diag::probe_origin(h).is_none() {
                return err(
                    &format!("inject.diag_hosts[{i}]"),
                    "must be https://host[:port] or wss://host[:port] (no wildcard, no path)",
                );
            }
        }
        if let Some(id) = self.tccc.sdk_app_id {
            if id == 0 || id > u32::MAX as u64 {
                return err("tccc.sdk_app_id", "must be a positive 32-bit integer");
            }
        }
        if !self.tccc.endpoint.starts_with("https://")
            && !types::is_loopback_http(&self.tccc.endpoint)
        {
            return err(
                "tccc.endpoint",
                "must be https (plain http only for an emulator on a loopback address)",
            );
        }
        match self.identity.mode {
            IdentityMode::Header if self.identity.header.as_deref() == Some("") => {
                return err("identity.header", "must not be empty");
            }
            IdentityMode::Introspect => {
                let Some(url) = &self.identity.url else {
                    return err(
                        "identity.url",
                        "is required when identity.mode = \"introspect\"",
                    );
                };
                if introspect_path(url, &self.upstream.url).is_none() {
                    return err(
                        "identity.url",
                        "must be a path, or a URL on the upstream's origin (the session cookies go nowhere else)",
                    );
                }
                if let Some(p) = &self.identity.user_pointer {
                    if !p.is_empty() && !p.starts_with('/') {
                        return err(
                            "identity.user_pointer",
                            "must be a JSON pointer such as /id or /user/id",
                        );
                    }
                }
                if self.identity.cookies.is_empty() {
                    return err(
                        "identity.cookies",
                        "is required when identity.mode = \"introspect\" (the session cookies to forward)",
                    );
                }
            }
            IdentityMode::Jwt => {
                if self.identity.cookie.is_none() && self.identity.header.is_none() {
                    return err(
                        "identity.cookie",
                        "jwt mode needs identity.cookie or identity.header (where the token is)",
                    );
                }
                if self.identity.hs256_secret_file.is_none()
                    && self.identity.jwks_file.is_none()
                    && self.identity.jwks_url.is_none()
                {
                    return err(
                        "identity.mode",
                        "jwt mode needs identity.hs256_secret_file, identity.jwks_file or identity.jwks_url",
                    );
                }
                if let Some(u) = &self.identity.jwks_url {
                    if !u.starts_with("https://") && !types::is_loopback_http(u) {
                        return err("identity.jwks_url", "must be https");
                    }
                }
            }
            IdentityMode::Static => {
                if self.identity.seat.as_deref().unwrap_or("").is_empty() {
                    return err(
                        "identity.seat",
                        "is required when identity.mode = \"static\"",
                    );
                }
                if !self.server.listen.ip().is_loopback() {
                    return err(
                        "identity.mode",
                        "\"static\" is for local development only: server.listen must be a loopback address",
                    );
                }
            }
            _ => {}
        }
        if let Some(t) = &self.seats.template {
            if !t.contains("{user}") {
                return err("seats.template", "must contain {user}");
            }
        }
        if !matches!(
            self.inject.position.as_deref(),
            None | Some("head" | "body")
        ) {
            return err("inject.position", "must be \"head\" or \"body\"");
        }
        if !matches!(
            self.inject.csp.as_deref(),
            None | Some("rewrite" | "report-only" | "off")
        ) {
            return err(
                "inject.csp",
                "must be \"rewrite\", \"report-only\" or \"off\"",
            );
        }
        if let Some(map) = &self.inject.sdk_origins {
            for (directive, list) in map {
                let ok = match directive.as_str() {
                    "script-src" => list
                        .iter()
                        .all(|s| crate::inject::csp::valid_script_origin(s)),
                    "connect-src" | "media-src" => list
                        .iter()
                        .all(|s| crate::inject::csp::valid_other_origin(s)),
                    _ => {
                        return err(
                            "inject.sdk_origins",
                            "keys are script-src, connect-src or media-src",
                        )
                    }
                };
                if !ok {
                    return err(
                        "inject.sdk_origins",
                        "script-src takes exact https://host[:port] origins; connect-src and media-src take https:// or wss:// hosts (no *, no keywords)",
                    );
                }
            }
        }
        for (i, p) in self.inject.include.iter().enumerate() {
            if !p.starts_with('/') {
                return Err((
                    format!("inject.include[{i}]"),
                    "must be a path prefix starting with /".into(),
                ));
            }
        }
        for (i, p) in self.inject.exclude.iter().enumerate() {
            if !p.starts_with('/') {
                return Err((
                    format!("inject.exclude[{i}]"),
                    "must be a path prefix starting with /".into(),
                ));
            }
        }
        Ok(())
    }

    /// The timeout for the upstream's response headers on `path`: the longest matching override, else the default.
    pub fn response_timeout_for(&self, path: &str) -> std::time::Duration {
        self.upstream
            .response_timeout_overrides
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, d)| d.get())
            .unwrap_or(self.upstream.response_timeout.get())
    }
}

/// The path and query that `identity.url` names on the upstream: `url` itself when it is a
/// path, else its path when the URL's origin is the upstream's; `None` for any other origin.
pub fn introspect_path(url: &str, upstream: &types::UpstreamUrl) -> Option<String> {
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

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Finds the line of a dotted key such as `server.listen` or `inject.exclude[1]`: the key's
/// assignment inside its table when present, else the table's header.
pub(crate) fn line_of_key(text: &str, path: &str) -> Option<usize> {
    let path = path.split('[').next().unwrap_or(path);
    let (table, key) = match path.rsplit_once('.') {
        Some((t, k)) => (t, k),
        None => ("", path),
    };
    let mut current = String::new();
    let mut table_line = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.trim_start_matches('[');
            let name = name.split(']').next().unwrap_or("").trim();
            current = name.to_string();
            if current == table || current == path {
                table_line.get_or_insert(i + 1);
            }
            continue;
        }
        if current == table {
            let lhs = line
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if lhs == key && line.contains('=') {
                return Some(i + 1);
            }
        }
    }
    table_line
}

#[cfg(test)]
mod tests;
