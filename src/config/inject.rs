//! `[inject]`: which pages get the loader and where, what happens to their CSP, shell mode,
//! click-to-call and the diagnostics page.

use super::error::{invalid, Rules};
use super::types::Duration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

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

/// `inject.position`: where the loader tag goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Position {
    /// At the end of `<head>` (the contract's default).
    #[default]
    Head,
    /// At the end of `<body>`.
    Body,
}

impl TryFrom<String> for Position {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "head" => Ok(Position::Head),
            "body" => Ok(Position::Body),
            _ => Err("must be \"head\" or \"body\""),
        }
    }
}

/// `inject.csp`: what happens to a page's CSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum CspMode {
    /// Policies are adjusted so the loader and the SDK run (the default).
    #[default]
    Rewrite,
    /// Canary: enforced policies are left as they are; the adjusted versions are added as
    /// `Content-Security-Policy-Report-Only`, so their reports show what would change.
    ReportOnly,
    /// Policies are not touched (the loader may then be blocked).
    Off,
}

impl TryFrom<String> for CspMode {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "rewrite" => Ok(CspMode::Rewrite),
            "report-only" => Ok(CspMode::ReportOnly),
            "off" => Ok(CspMode::Off),
            _ => Err("must be \"rewrite\", \"report-only\" or \"off\""),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InjectConfig {
    pub mode: InjectMode,
    pub loader_path: String,
    pub exclude: Vec<String>,
    pub click_to_call: bool,
    /// How numbers are handed to the SDK (after the E.164 checks): the SDK's examples use
    /// national digits and its events `0086…`; E.164 until a trial with a real account says
    /// otherwise.
    pub dial_format: DialFormat,
    /// How long the loader waits for the SDK's `ready` before it shows `error` and retries.
    pub sdk_ready_timeout: Duration,
    pub sdk_origins: Option<BTreeMap<String, Vec<String>>>,
    pub position: Position,
    /// Path prefixes whose pages get the loader; empty means every path not excluded.
    pub include: Vec<String>,
    /// In a frameset, the name of the frame whose document holds the SDK.
    pub frame_name: Option<String>,
    pub csp: CspMode,
    /// The diagnostics page for agents (`/__tccc/diag`); "" turns it off.
    pub diag_path: String,
    /// Origins the diagnostics page probes from the agent's browser (`https://host[:port]` or
    /// `wss://host[:port]`); default: Tencent's documented SDK hosts. SdkURL origins seen
    /// since start are always added.
    pub diag_hosts: Option<Vec<String>>,
    /// Click-to-call: E.164 prefixes (`+86`) a number must start with; empty allows any
    /// number that no deny prefix matches.
    pub click_to_call_allow: Vec<String>,
    /// Click-to-call: E.164 prefixes that are never dialled (premium-rate and international
    /// satellite ranges by default: `tel:` links in user-written notes are a toll-fraud path).
    pub click_to_call_deny: Vec<String>,
    /// Click-to-call: the country calling code (`"86"`) that makes a national number (no `+`)
    /// international; without it, only numbers written with `+` or `00` are dialled.
    pub click_to_call_country: Option<String>,
    /// Shell mode: paths whose activation in the frame ends the workbench (the agent goes
    /// offline); default: `identity.logout_paths`.
    pub logout_paths: Option<Vec<String>>,
    /// Shell mode: a file with the key that fingerprints users for the shell (at least 32
    /// bytes). Default: derived from the CCC SecretKey, so replicas with the same credentials
    /// agree.
    pub shell_key_file: Option<PathBuf>,
    /// Absolute URLs in the pages the sidecar rewrites (`href`, `src`, `action`, …) that name
    /// the app's own address (the upstream, `upstream.internal_origins`, `http://` + the
    /// public host) become the public origin. Off by default: it tokenizes whole pages.
    pub rewrite_urls: bool,
}

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            mode: InjectMode::Script,
            loader_path: "/__tccc/loader.js".into(),
            exclude: vec!["/api/".into()],
            click_to_call: false,
            // The SDK takes seconds to become ready on a good network; half a minute covers
            // a slow one without leaving an agent on "loading" for long.
            sdk_ready_timeout: Duration::secs(30),
            dial_format: DialFormat::E164,
            sdk_origins: None,
            position: Position::Head,
            include: Vec::new(),
            frame_name: None,
            csp: CspMode::Rewrite,
            diag_path: "/__tccc/diag".into(),
            diag_hosts: None,
            // Off until its cost is down: the whole page is tokenized instead of its head
            // (benches/results/2026-12-05-rewrite-urls-ab.md).
            rewrite_urls: false,
            click_to_call_allow: Vec::new(),
            // ITU-T international premium-rate (+979), shared-cost (+808) and international
            // networks and satellite services (+870, +881, +882, +883): ranges that cost the
            // caller far more than a call and that an agent's CRM never needs.
            click_to_call_deny: ["+979", "+808", "+870", "+881", "+882", "+883"]
                .map(String::from)
                .to_vec(),
            click_to_call_country: None,
            logout_paths: None,
            shell_key_file: None,
        }
    }
}

impl InjectConfig {
    /// The rules of `[inject]`; `login_path` is the other endpoint its paths must not shadow.
    pub(super) fn validate(&self, login_path: &str) -> Rules {
        if self.sdk_ready_timeout.get() < std::time::Duration::from_secs(1) {
            return invalid(
                "inject.sdk_ready_timeout",
                "must be at least 1s: the SDK takes seconds to become ready",
            );
        }
        super::login::check_endpoint_path("inject.loader_path", &self.loader_path, "/loginTCCC")?;
        if login_path == self.loader_path {
            return invalid("inject.loader_path", "must differ from login.path");
        }
        self.validate_click_to_call()?;
        for (i, p) in self.logout_paths.iter().flatten().enumerate() {
            if !p.starts_with('/') {
                return invalid(
                    format!("inject.logout_paths[{i}]"),
                    "must be an absolute path such as /logout",
                );
            }
        }
        self.validate_diag(login_path)?;
        if let Some(map) = &self.sdk_origins {
            for (directive, list) in map {
                let ok = match directive.as_str() {
                    "script-src" => list.iter().all(|s| super::origin::valid_script_origin(s)),
                    "connect-src" | "media-src" => {
                        list.iter().all(|s| super::origin::valid_other_origin(s))
                    }
                    _ => {
                        return invalid(
                            "inject.sdk_origins",
                            "keys are script-src, connect-src or media-src",
                        )
                    }
                };
                if !ok {
                    return invalid(
                        "inject.sdk_origins",
                        "script-src takes exact https://host[:port] origins; connect-src and media-src take https:// or wss:// hosts (no *, no keywords)",
                    );
                }
            }
        }
        for (key, list) in [
            ("inject.include", &self.include),
            ("inject.exclude", &self.exclude),
        ] {
            for (i, p) in list.iter().enumerate() {
                if !p.starts_with('/') {
                    return invalid(
                        format!("{key}[{i}]"),
                        "must be a path prefix starting with /",
                    );
                }
            }
        }
        Ok(())
    }

    fn validate_click_to_call(&self) -> Rules {
        for (key, list) in [
            ("inject.click_to_call_allow", &self.click_to_call_allow),
            ("inject.click_to_call_deny", &self.click_to_call_deny),
        ] {
            for (i, p) in list.iter().enumerate() {
                let digits = p.strip_prefix('+').unwrap_or("");
                if digits.is_empty()
                    || digits.len() > 15
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return invalid(
                        format!("{key}[{i}]"),
                        "must be a + and 1 to 15 digits, such as \"+86\"",
                    );
                }
            }
        }
        if let Some(cc) = &self.click_to_call_country {
            if cc.is_empty()
                || cc.len() > 3
                || !cc.bytes().all(|b| b.is_ascii_digit())
                || cc.starts_with('0')
            {
                return invalid(
                    "inject.click_to_call_country",
                    "must be a country calling code of 1 to 3 digits, such as \"86\"",
                );
            }
        }
        if self.dial_format == DialFormat::National && self.click_to_call_country.is_none() {
            return invalid(
                "inject.dial_format",
                "\"national\" needs inject.click_to_call_country (the country whose numbers are dialled nationally)",
            );
        }
        Ok(())
    }

    fn validate_diag(&self, login_path: &str) -> Rules {
        let diag = &self.diag_path;
        if !diag.is_empty() {
            if !diag.starts_with('/') || diag.contains(['?', '#', ' ']) {
                return invalid(
                    "inject.diag_path",
                    "must be an absolute path such as /__tccc/diag, or \"\" for none",
                );
            }
            if diag == login_path || diag == &self.loader_path {
                return invalid(
                    "inject.diag_path",
                    "must differ from login.path and inject.loader_path",
                );
            }
        }
        for (i, h) in self.diag_hosts.iter().flatten().enumerate() {
            if super::origin::probe_origin(h).is_none() {
                return invalid(
                    format!("inject.diag_hosts[{i}]"),
                    "must be https://host[:port] or wss://host[:port] (no wildcard, no path)",
                );
            }
        }
        Ok(())
    }
}
