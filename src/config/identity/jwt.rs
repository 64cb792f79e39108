//! `mode = "jwt"`: a signed token in a cookie or header, verified locally.

use super::{invalid, or_default, Invalid, ModeInput, DEFAULT_TIMEOUT};
use std::path::PathBuf;
use std::time::Duration;

/// Where the token is.
#[derive(Debug, Clone)]
pub enum TokenSource {
    Cookie(String),
    Header(http::HeaderName),
}

#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub token: TokenSource,
    /// The claim that names the user.
    pub claim: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub hs256_secret_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub timeout: Duration,
    /// How often a JWKS URL is fetched again (an unknown `kid` also triggers a fetch).
    pub jwks_refresh: Duration,
}

impl TryFrom<ModeInput<'_>> for JwtSettings {
    type Error = Invalid;
    fn try_from(input: ModeInput<'_>) -> Result<Self, Invalid> {
        let t = input.table;
        let token = match (&t.cookie, &t.header) {
            (Some(c), _) => TokenSource::Cookie(c.clone()),
            (None, Some(h)) => match http::HeaderName::try_from(h.as_str()) {
                Ok(name) => TokenSource::Header(name),
                Err(_) => return invalid("identity.header", "not a valid header name"),
            },
            (None, None) => {
                return invalid(
                    "identity.cookie",
                    "jwt mode needs identity.cookie or identity.header (where the token is)",
                )
            }
        };
        if t.hs256_secret_file.is_none() && t.jwks_file.is_none() && t.jwks_url.is_none() {
            return invalid(
                "identity.mode",
                "jwt mode needs identity.hs256_secret_file, identity.jwks_file or identity.jwks_url",
            );
        }
        if let Some(u) = &t.jwks_url {
            if !u.starts_with("https://") && !crate::config::origin::is_loopback_http(u) {
                return invalid("identity.jwks_url", "must be https");
            }
        }
        Ok(JwtSettings {
            token,
            claim: t.claim.clone().unwrap_or_else(|| "sub".into()),
            issuer: t.issuer.clone(),
            audience: t.audience.clone(),
            hs256_secret_file: t.hs256_secret_file.clone(),
            jwks_file: t.jwks_file.clone(),
            jwks_url: t.jwks_url.clone(),
            timeout: or_default(t.timeout, DEFAULT_TIMEOUT),
            jwks_refresh: or_default(t.jwks_refresh, Duration::from_secs(300)),
        })
    }
}
