//! `[identity]`: who the browser's user is. The file keeps one flat table for every mode (the
//! public contract); after parsing it becomes one type per mode, with that mode's fields,
//! defaults and rules in a file of its own, so that a mode's settings cannot be mixed up with
//! another's.

mod header;
mod introspect;
mod jwt;
mod static_seat;

pub use header::HeaderSettings;
pub use introspect::{AnswerKind, IntrospectSettings, PageRule, DEFAULT_USER_PATTERN};
pub use jwt::{JwtSettings, TokenSource};
pub use static_seat::StaticSettings;

use super::error::{invalid, Invalid};
use super::types::{Cidr, Duration};
use super::upstream::UpstreamConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `identity.mode`, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    #[default]
    Header,
    Introspect,
    Jwt,
    Static,
}

/// The `[identity]` table as written: every mode's keys side by side. Only
/// [`IdentityConfig`] is used past loading.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityTable {
    pub mode: IdentityMode,
    pub header: Option<String>,
    pub trusted_peers: Vec<Cidr>,
    pub strip_headers: Vec<String>,
    pub gateway_secret_header: Option<String>,
    pub gateway_secret_file: Option<PathBuf>,
    pub url: Option<String>,
    pub cookies: Vec<String>,
    pub user_pointer: Option<String>,
    pub user_selector: Option<String>,
    pub user_attribute: Option<String>,
    pub user_regex: Option<String>,
    pub user_pattern: Option<String>,
    pub forward_authorization: bool,
    pub cache_ttl: Option<Duration>,
    pub negative_cache_ttl: Option<Duration>,
    pub timeout: Option<Duration>,
    pub logout_paths: Vec<String>,
    pub cookie: Option<String>,
    pub claim: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub hs256_secret_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub seat: Option<String>,
    pub jwks_refresh: Option<Duration>,
}

/// What one mode's conversion may read: the table and the sections its rules depend on.
pub struct ModeInput<'a> {
    pub table: &'a IdentityTable,
    pub upstream: &'a UpstreamConfig,
    pub listen: SocketAddr,
}

/// Each mode with its own settings.
#[derive(Debug, Clone)]
pub enum ModeSettings {
    Header(HeaderSettings),
    Introspect(IntrospectSettings),
    Jwt(JwtSettings),
    Static(StaticSettings),
}

/// `[identity]` once checked.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub settings: ModeSettings,
    /// Peers believed when they name a user in a header; in every mode, the identity headers
    /// of anyone else are removed before the upstream sees the request.
    pub trusted_peers: Vec<Cidr>,
    /// Header names removed from untrusted peers' requests besides the documented defaults
    /// (`identity::spoofable::DEFAULT`), for an application that trusts a header of its own.
    pub strip_headers: Vec<String>,
    /// Paths that end the CRM session: forgotten by introspection's cache, and the default of
    /// shell mode's `inject.logout_paths`.
    pub logout_paths: Vec<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            settings: ModeSettings::Header(HeaderSettings::default()),
            trusted_peers: Vec::new(),
            strip_headers: Vec::new(),
            logout_paths: Vec::new(),
        }
    }
}

impl IdentityConfig {
    pub fn mode(&self) -> IdentityMode {
        match self.settings {
            ModeSettings::Header(_) => IdentityMode::Header,
            ModeSettings::Introspect(_) => IdentityMode::Introspect,
            ModeSettings::Jwt(_) => IdentityMode::Jwt,
            ModeSettings::Static(_) => IdentityMode::Static,
        }
    }
}

impl TryFrom<ModeInput<'_>> for IdentityConfig {
    type Error = Invalid;
    fn try_from(input: ModeInput<'_>) -> Result<Self, Invalid> {
        let t = input.table;
        if t.strip_headers
            .iter()
            .any(|h| http::HeaderName::try_from(h.as_str()).is_err())
        {
            return invalid(
                "identity.strip_headers",
                "each entry must be a header name such as \"X-Portal-User\"",
            );
        }
        let settings = match t.mode {
            IdentityMode::Header => ModeSettings::Header(input.try_into()?),
            IdentityMode::Introspect => ModeSettings::Introspect(input.try_into()?),
            IdentityMode::Jwt => ModeSettings::Jwt(input.try_into()?),
            IdentityMode::Static => ModeSettings::Static(input.try_into()?),
        };
        Ok(IdentityConfig {
            settings,
            trusted_peers: t.trusted_peers.clone(),
            strip_headers: t.strip_headers.clone(),
            logout_paths: t.logout_paths.clone(),
        })
    }
}

/// How long an identity source (the CRM's whoami, a JWKS URL) may take to answer.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn or_default(d: Option<Duration>, default: std::time::Duration) -> std::time::Duration {
    d.map(|d| d.get()).unwrap_or(default)
}
