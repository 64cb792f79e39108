//! `[login]` and `[seats]`: the `/loginTCCC` endpoint, its rate limits, and how users map to
//! seats.

use super::error::{invalid, Rules};
use super::types::{Duration, Rate};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    pub path: String,
    pub allow_get: bool,
    pub per_user_rate: Rate,
    pub total_rate: Rate,
    pub per_client_rate: Rate,
    /// How long a request may wait for the overall limit before it is answered 429.
    pub queue_timeout: Duration,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            path: "/loginTCCC".into(),
            allow_get: false,
            per_user_rate: Rate::per_minute(30),
            total_rate: Rate::per_second(15),
            per_client_rate: Rate::per_minute(60),
            queue_timeout: Duration::secs(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SeatsConfig {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub template: Option<String>,
}

impl SeatsConfig {
    pub(super) fn validate(&self) -> Rules {
        if let Some(t) = &self.template {
            if !t.contains("{user}") {
                return invalid("seats.template", "must contain {user}");
            }
        }
        Ok(())
    }
}

/// An endpoint path: absolute, with nothing a browser would split off.
pub(super) fn check_endpoint_path(key: &str, path: &str, example: &str) -> Rules {
    if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
        return invalid(key, format!("must be an absolute path such as {example}"));
    }
    Ok(())
}
