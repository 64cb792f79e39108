//! Which SdkURLs may reach a browser. An SdkURL becomes a `<script src>` in every agent's
//! page, so a compromised or misrouted API answer must not be able to point it anywhere:
//! it must be `https`, carry no credentials, and name an allowed host.

/// Tencent's hosts for the Web SDK: the TCCC domains and the CDN the documented example
/// SdkURL is served from. Operators can pin a narrower list with `tccc.sdk_url_hosts`.
pub const DEFAULT_HOSTS: [&str; 5] = [
    "tccc.qcloud.com",
    "*.tccc.qcloud.com",
    "*.cdn-go.cn",
    "connect.tencentcloud.com",
    "*.connect.tencentcloud.com",
];

#[derive(Debug, Clone)]
pub struct SdkUrlPolicy {
    /// Exact host names, and `*.suffix` patterns (any deeper name, not the suffix itself).
    hosts: Vec<String>,
}

impl SdkUrlPolicy {
    /// `configured` empty means Tencent's hosts; `emulator_host` is added when the endpoint
    /// is a loopback emulator, which serves its stand-in SDK from its own host.
    pub fn new(configured: &[String], emulator_host: Option<&str>) -> SdkUrlPolicy {
        let mut hosts: Vec<String> = if configured.is_empty() {
            DEFAULT_HOSTS.iter().map(|s| s.to_string()).collect()
        } else {
            configured.iter().map(|s| s.to_ascii_lowercase()).collect()
        };
        hosts.extend(emulator_host.map(|h| h.to_ascii_lowercase()));
        SdkUrlPolicy { hosts }
    }

    /// Ok when `url` may be handed to a browser; else why not (without echoing the URL,
    /// which carries the token).
    pub fn check(&self, url: &str) -> Result<(), &'static str> {
        let uri: http::Uri = url.parse().map_err(|_| "SdkURL is not a valid URL")?;
        if uri.scheme_str() != Some("https") {
            return Err("SdkURL is not https");
        }
        let authority = uri.authority().ok_or("SdkURL has no host")?;
        if authority.as_str().contains('@') {
            return Err("SdkURL carries credentials");
        }
        let host = authority
            .host()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let allowed = self
            .hosts
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}"))
                }
                None => *pattern == host,
            });
        if allowed {
            Ok(())
        } else {
            Err("SdkURL host is not in tccc.sdk_url_hosts")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_accept_tencent_hosts_only_over_https() {
        let p = SdkUrlPolicy::new(&[], None);
        assert!(p
            .check("https://29294-22989-29805-29810.cdn-go.cn/tccc-agent-sdk/latest/?token=x")
            .is_ok());
        assert!(p.check("https://tccc.qcloud.com/sdk.js").is_ok());
        assert!(p.check("https://a.tccc.qcloud.com/sdk.js").is_ok());
        assert_eq!(
            p.check("http://tccc.qcloud.com/sdk.js"),
            Err("SdkURL is not https")
        );
        assert!(
            p.check("https://cdn-go.cn/x").is_err(),
            "the wildcard needs a subdomain"
        );
        assert!(p.check("https://evil.com/x").is_err());
        assert!(p.check("https://tccc.qcloud.com.evil.com/x").is_err());
        assert!(p.check("https://evilcdn-go.cn/x").is_err());
        assert_eq!(
            p.check("https://user:pw@tccc.qcloud.com/x"),
            Err("SdkURL carries credentials")
        );
        assert!(p.check("javascript:alert(1)").is_err());
        assert!(p.check("//tccc.qcloud.com/x").is_err());
    }

    #[test]
    fn configured_list_replaces_defaults_and_emulator_host_is_added() {
        let p = SdkUrlPolicy::new(&["sdk.example.com".into()], Some("127.0.0.1"));
        assert!(p.check("https://sdk.example.com/x").is_ok());
        assert!(p.check("https://127.0.0.1:9443/sdk.js?t=1").is_ok());
        assert!(p.check("https://tccc.qcloud.com/x").is_err());
    }
}
