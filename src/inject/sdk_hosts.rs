//! The hosts Tencent publishes for the agent Web SDK, in one place, each with the page it comes
//! from. The CSP sources the rewrite adds and the probes of the diagnostics page are both made
//! from this list, so that the two cannot disagree.
//!
//! Exact hosts are preferred. A wildcard appears only where Tencent publishes one (the RTC
//! families, whose hosts are assigned at run time), and never over shared tenant storage
//! (`*.myqcloud.com`, `*.cos.*`, `*.tencentcos.cn`): any Tencent customer can receive data
//! there, so a wildcard would let a page's script send the CRM's data to anyone's bucket.

/// The mainland firewall FAQ (TCP 443 hosts of the Web SDK).
pub const MAINLAND: &str = "cloud.tencent.com, product 679, FAQ 120903";
/// The international firewall page.
pub const INTERNATIONAL: &str = "tencentcloud.com, product 1229, page 71846";
/// The Web SDK integration guide, whose example SdkURL names the CDN host.
pub const SDK_GUIDE: &str = "cloud.tencent.com, product 679, Web SDK guide (example SdkURL)";

/// How the SDK reaches a host, as far as the pages and the host's name say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The SDK's script is loaded from it (`script-src`, exact hosts only).
    Script,
    /// HTTPS requests (`connect-src https://`).
    Https,
    /// WebSocket only (`connect-src wss://`): hosts named for it (`wss.`, `sip.`).
    Wss,
    /// Both: API families and the RTC wildcards, which serve signalling over either.
    Both,
    /// Audio as well as HTTPS (`media-src` and `connect-src`): the call-center hosts.
    Media,
}

/// One published host or host pattern.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    pub name: &'static str,
    pub uses: Use,
    /// The page that lists it.
    pub page: &'static str,
}

const fn h(name: &'static str, uses: Use, page: &'static str) -> Host {
    Host { name, uses, page }
}

/// Every host Tencent publishes for the Web SDK, mainland then international.
pub const HOSTS: [Host; 44] = [
    // The CDN of the documented example SdkURL.
    h("29294-22989-29805-29810.cdn-go.cn", Use::Script, SDK_GUIDE),
    // Mainland: the call center.
    h("tccc.qcloud.com", Use::Media, MAINLAND),
    h("api.tccc.qcloud.com", Use::Both, MAINLAND),
    h("api-bak.tccc.qcloud.com", Use::Both, MAINLAND),
    h("otlp.tccc.qcloud.com", Use::Https, MAINLAND),
    h("sip.tccc.qcloud.com", Use::Wss, MAINLAND),
    h("sip2.tccc.qcloud.com", Use::Wss, MAINLAND),
    // Mainland: instant messaging.
    h("yun.tim.qq.com", Use::Https, MAINLAND),
    h("wss.im.qcloud.com", Use::Wss, MAINLAND),
    h("wss.my-imcloud.com", Use::Wss, MAINLAND),
    h("events.im.qcloud.com", Use::Https, MAINLAND),
    h("events.my-imcloud.com", Use::Https, MAINLAND),
    h("cn.imrich.qcloud.com", Use::Https, MAINLAND),
    h("cn.rich.my-imcloud.com", Use::Https, MAINLAND),
    h("file.im.qcloud.com", Use::Https, MAINLAND),
    h("down.im.qcloud.com", Use::Https, MAINLAND),
    // Mainland: real-time audio (published as wildcards).
    h("*.rtc.qcloud.com", Use::Both, MAINLAND),
    h("*.rtc.qq.com", Use::Both, MAINLAND),
    h("*.cloud-rtc.com", Use::Both, MAINLAND),
    h("*.cloud-rtc.net", Use::Both, MAINLAND),
    h("*.my-imcloud.com", Use::Both, MAINLAND),
    h("*.rtc-web.com", Use::Both, MAINLAND),
    h("*.rtc-web.io", Use::Both, MAINLAND),
    // Mainland: storage (exact hosts only).
    h("cos.ap-shanghai.myqcloud.com", Use::Https, MAINLAND),
    h("cos.ap-guangzhou.myqcloud.com", Use::Https, MAINLAND),
    // International: the call center.
    h("connect.tencentcloud.com", Use::Media, INTERNATIONAL),
    h("api.connect.tencentcloud.com", Use::Both, INTERNATIONAL),
    h("otlp.connect.tencentcloud.com", Use::Https, INTERNATIONAL),
    h("sip.connect.tencentcloud.com", Use::Wss, INTERNATIONAL),
    // International: real-time audio. The page spells the first host "signailing".
    h("signailing.rtc.tencentcloud.com", Use::Both, INTERNATIONAL),
    h("schedule.rtc.tencentcloud.com", Use::Both, INTERNATIONAL),
    h("*.rtc.tencentcloud.com", Use::Both, INTERNATIONAL),
    // International: instant messaging (Singapore).
    h("wsssgp.im.qcloud.com", Use::Wss, INTERNATIONAL),
    h("apisgp.im.qcloud.com", Use::Https, INTERNATIONAL),
    h("webimsgp.im.qcloud.com", Use::Https, INTERNATIONAL),
    h("filesgp.im.qcloud.com", Use::Https, INTERNATIONAL),
    h("downsgp.im.qcloud.com", Use::Https, INTERNATIONAL),
    h("wsssgp.my-imcloud.com", Use::Wss, INTERNATIONAL),
    h("apisgp.my-imcloud.com", Use::Https, INTERNATIONAL),
    h("webimsgp.my-imcloud.com", Use::Https, INTERNATIONAL),
    h("sgp.imrich.qcloud.com", Use::Https, INTERNATIONAL),
    h("sgp.rich.my-imcloud.com", Use::Https, INTERNATIONAL),
    // International: storage (exact hosts only).
    h("cos.ap-singapore.myqcloud.com", Use::Https, INTERNATIONAL),
    h("cos.ap-singapore.tencentcos.cn", Use::Https, INTERNATIONAL),
];

impl Host {
    fn wildcard(&self) -> bool {
        self.name.starts_with("*.")
    }

    fn https(&self) -> bool {
        matches!(self.uses, Use::Https | Use::Both | Use::Media)
    }

    fn wss(&self) -> bool {
        matches!(self.uses, Use::Wss | Use::Both)
    }
}

/// Whether a source `pattern` (`*.example.com` or an exact host) covers `host`, as CSP
/// matches hosts: a wildcard covers subdomains at any depth, never the bare domain.
pub fn covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// `scheme://name` for every host used with `scheme`, leaving out exact hosts that a listed
/// wildcard already covers (a shorter policy header).
fn sources(scheme: &str, used: impl Fn(&Host) -> bool) -> Vec<String> {
    let chosen: Vec<&Host> = HOSTS.iter().filter(|h| used(h)).collect();
    chosen
        .iter()
        .filter(|h| {
            h.wildcard()
                || !chosen
                    .iter()
                    .any(|w| w.wildcard() && covers(w.name, h.name))
        })
        .map(|h| format!("{scheme}://{}", h.name))
        .collect()
}

/// The default `script-src` additions: exact origins only.
pub fn script_sources() -> Vec<String> {
    sources("https", |h| h.uses == Use::Script)
}

/// The default `connect-src` additions.
pub fn connect_sources() -> Vec<String> {
    let mut v = sources("https", Host::https);
    v.extend(sources("wss", Host::wss));
    v
}

/// The default `media-src` additions.
pub fn media_sources() -> Vec<String> {
    sources("https", |h| h.uses == Use::Media)
}

/// What the diagnostics page probes: every exact host, as the SDK reaches it (a WebSocket
/// host as `wss://`, the rest as `https://`, a host used both ways once each).
pub fn probes() -> Vec<String> {
    let mut v = Vec::new();
    for h in HOSTS.iter().filter(|h| !h.wildcard()) {
        if h.https() || h.uses == Use::Script {
            v.push(format!("https://{}", h.name));
        }
        if h.wss() {
            v.push(format!("wss://{}", h.name));
        }
    }
    v
}

/// The published wildcard patterns (shown on the diagnostics page, which cannot probe them).
pub fn patterns() -> Vec<String> {
    HOSTS
        .iter()
        .filter(|h| h.wildcard())
        .map(|h| h.name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether one of `sources` allows `scheme://host`.
    fn allowed(sources: &[String], scheme: &str, host: &str) -> bool {
        sources.iter().any(|s| {
            s.split_once("://")
                .is_some_and(|(sch, pat)| sch == scheme && covers(pat, host))
        })
    }

    #[test]
    fn every_published_host_is_allowed_as_the_sdk_uses_it() {
        let (script, connect, media) = (script_sources(), connect_sources(), media_sources());
        for h in HOSTS {
            let name = h.name.trim_start_matches("*.");
            // A wildcard is checked with a host under it.
            let host = if h.wildcard() {
                format!("x1.{name}")
            } else {
                name.to_string()
            };
            match h.uses {
                Use::Script => assert!(allowed(&script, "https", &host), "{host}"),
                _ => {
                    assert!(
                        !h.https() || allowed(&connect, "https", &host),
                        "https {host}"
                    );
                    assert!(!h.wss() || allowed(&connect, "wss", &host), "wss {host}");
                }
            }
            if h.uses == Use::Media {
                assert!(allowed(&media, "https", &host), "media {host}");
            }
            assert!(
                [MAINLAND, INTERNATIONAL, SDK_GUIDE].contains(&h.page),
                "{} names its page",
                h.name
            );
        }
        // The bare domains a wildcard does not cover are listed themselves.
        assert!(allowed(&connect, "https", "tccc.qcloud.com"));
        assert!(allowed(&connect, "https", "connect.tencentcloud.com"));
        assert!(allowed(&connect, "https", "cn.imrich.qcloud.com"));
        assert!(allowed(&connect, "wss", "x.cloud-rtc.net"));
    }

    #[test]
    fn no_wildcard_over_shared_storage_and_none_in_scripts() {
        for s in connect_sources().iter().chain(&media_sources()) {
            let host = s.split("://").nth(1).unwrap_or_default();
            if let Some(domain) = host.strip_prefix("*.") {
                for shared in [
                    "myqcloud.com",
                    "tencentcos.cn",
                    "qcloud.com",
                    "tencentcloud.com",
                ] {
                    assert_ne!(domain, shared, "{s}");
                }
                assert!(!domain.starts_with("cos."), "{s}");
                assert!(!domain.contains(".cos."), "{s}");
            }
        }
        assert!(script_sources().iter().all(|s| !s.contains('*')));
        // Exact hosts over wildcards: the call-center families are not wildcards any more.
        assert!(!connect_sources()
            .iter()
            .any(|s| s.contains("*.tccc.qcloud.com")));
        assert!(!connect_sources()
            .iter()
            .any(|s| s.contains("*.connect.tencentcloud.com")));
    }

    #[test]
    fn the_added_sources_stay_short() {
        // A proxy in front of the sidecar may hold a response head in 4 KiB (nginx's default
        // proxy_buffer_size), and pages often bring policies of their own: the additions stay
        // well under that, which is why exact hosts a published wildcard covers are left out.
        let added: usize = [script_sources(), connect_sources(), media_sources()]
            .iter()
            .map(|v| v.join(" ").len())
            .sum();
        assert!(added < 1600, "{added} bytes");
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        assert!(covers("*.rtc.qq.com", "a.rtc.qq.com"));
        assert!(covers("*.rtc.qq.com", "a.b.rtc.qq.com"));
        assert!(!covers("*.rtc.qq.com", "rtc.qq.com"));
        assert!(!covers("*.rtc.qq.com", "evilrtc.qq.com"));
        assert!(covers("API.tccc.qcloud.com", "api.tccc.qcloud.com"));
    }

    #[test]
    fn the_probes_are_the_exact_hosts_and_each_is_a_valid_probe() {
        let probes = probes();
        for h in HOSTS.iter().filter(|h| !h.wildcard()) {
            assert!(
                probes
                    .iter()
                    .any(|p| p.ends_with(&format!("://{}", h.name))),
                "{}",
                h.name
            );
        }
        for p in &probes {
            assert_eq!(
                crate::config::origin::probe_origin(p).as_deref(),
                Some(p.as_str())
            );
        }
        assert!(patterns().iter().all(|p| p.starts_with("*.")));
    }
}
