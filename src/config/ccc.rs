//! `[tccc]`: the CCC account, its API endpoint and credentials, and what SdkURLs may be.

use super::error::{invalid, Rules};
use super::types::Duration;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcccConfig {
    pub sdk_app_id: Option<u64>,
    pub endpoint: String,
    pub region: Option<String>,
    pub secret_id_file: Option<PathBuf>,
    pub secret_key_file: Option<PathBuf>,
    pub session_token_file: Option<PathBuf>,
    pub sdk_url_hosts: Vec<String>,
    pub only_once: bool,
    pub timeout: Duration,
}

impl Default for TcccConfig {
    fn default() -> Self {
        TcccConfig {
            sdk_app_id: None,
            endpoint: "https://ccc.tencentcloudapi.com".into(),
            region: None,
            secret_id_file: None,
            secret_key_file: None,
            session_token_file: None,
            sdk_url_hosts: Vec::new(),
            only_once: true,
            timeout: Duration::secs(10),
        }
    }
}

impl TcccConfig {
    pub(super) fn validate(&self) -> Rules {
        if let Some(id) = self.sdk_app_id {
            if id == 0 || id > u32::MAX as u64 {
                return invalid("tccc.sdk_app_id", "must be a positive 32-bit integer");
            }
        }
        if !self.endpoint.starts_with("https://")
            && !super::origin::is_loopback_http(&self.endpoint)
        {
            return invalid(
                "tccc.endpoint",
                "must be https (plain http only for an emulator on a loopback address)",
            );
        }
        Ok(())
    }
}
