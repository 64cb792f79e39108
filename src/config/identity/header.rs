//! `mode = "header"`: a trusted SSO gateway names the user in a header.

use super::{invalid, Invalid, ModeInput};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct HeaderSettings {
    /// The header the gateway names the user in.
    pub header: String,
    /// A header carrying a secret shared with the gateway, checked beside its address.
    pub gateway_secret_header: Option<String>,
    pub gateway_secret_file: Option<PathBuf>,
}

impl Default for HeaderSettings {
    fn default() -> Self {
        HeaderSettings {
            header: "X-Remote-User".into(),
            gateway_secret_header: None,
            gateway_secret_file: None,
        }
    }
}

impl TryFrom<ModeInput<'_>> for HeaderSettings {
    type Error = Invalid;
    fn try_from(input: ModeInput<'_>) -> Result<Self, Invalid> {
        let t = input.table;
        let header = match t.header.as_deref() {
            Some("") => return invalid("identity.header", "must not be empty"),
            Some(h) => h.to_string(),
            None => HeaderSettings::default().header,
        };
        Ok(HeaderSettings {
            header,
            gateway_secret_header: t.gateway_secret_header.clone(),
            gateway_secret_file: t.gateway_secret_file.clone(),
        })
    }
}
