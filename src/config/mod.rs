//! The sidecar's configuration file (TOML), as fixed by the public contract.
//!
//! Parsing is strict: unknown keys are errors, and every error names the file, the line and
//! the key's path, in the `file:line: key: message` form that `check` prints. Values whose
//! syntax matters (durations, rates, CIDRs, URLs, closed sets of words) are parsed while
//! deserialising so that a bad value points at its own line. Each section then checks its
//! own rules (`validate` beside its type), and `[identity]` becomes one type per mode.

mod ccc;
mod error;
pub mod identity;
mod inject;
mod log;
mod login;
pub mod origin;
mod server;
pub mod types;
mod upstream;

pub use ccc::TcccConfig;
pub(crate) use error::line_of_key;
pub use error::ConfigError;
pub use identity::{IdentityConfig, IdentityMode, ModeSettings};
pub use inject::{CspMode, DialFormat, InjectConfig, InjectMode, Position};
pub use log::{LogConfig, LogFormat};
pub use login::{LoginConfig, SeatsConfig};
pub use server::{cipher_suites, CertificatePair, ServerConfig, TlsVersion};
pub use types::{Cidr, Duration, Rate};
pub use upstream::UpstreamConfig;

use error::{first_line, line_of_offset, Invalid};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file as written, before its sections' rules are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: ServerConfig,
    upstream: UpstreamConfig,
    #[serde(default)]
    tccc: TcccConfig,
    #[serde(default)]
    login: LoginConfig,
    #[serde(default)]
    identity: identity::IdentityTable,
    #[serde(default)]
    seats: SeatsConfig,
    #[serde(default)]
    inject: InjectConfig,
    #[serde(default)]
    log: LogConfig,
}

/// A loaded and checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub tccc: TcccConfig,
    pub login: LoginConfig,
    pub identity: IdentityConfig,
    pub seats: SeatsConfig,
    pub inject: InjectConfig,
    pub log: LogConfig,
    /// Where the file was read from; relative paths inside it are resolved against its folder.
    pub source: PathBuf,
    /// The file's text, kept so that later checks can point at a key's line.
    pub source_text: String,
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
        let raw: ConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
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
        Config::check(raw, path, text).map_err(|Invalid { key, message }| ConfigError {
            line: line_of_key(text, &key),
            file,
            key,
            message,
        })
    }

    /// Each section's rules, then the typed `[identity]`.
    fn check(raw: ConfigFile, path: &Path, text: &str) -> Result<Config, Invalid> {
        raw.server.validate()?;
        raw.upstream.validate()?;
        login::check_endpoint_path("login.path", &raw.login.path, "/loginTCCC")?;
        raw.inject.validate(&raw.login.path)?;
        raw.tccc.validate()?;
        let identity = IdentityConfig::try_from(identity::ModeInput {
            table: &raw.identity,
            upstream: &raw.upstream,
            listen: raw.server.listen,
        })?;
        raw.seats.validate()?;
        Ok(Config {
            server: raw.server,
            upstream: raw.upstream,
            tccc: raw.tccc,
            login: raw.login,
            identity,
            seats: raw.seats,
            inject: raw.inject,
            log: raw.log,
            source: path.to_path_buf(),
            source_text: text.to_string(),
        })
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

    /// The timeout for the upstream's response headers on `path`.
    pub fn response_timeout_for(&self, path: &str) -> std::time::Duration {
        self.upstream.response_timeout_for(path)
    }
}

#[cfg(test)]
mod tests;
