//! Unit tests of configuration parsing: defaults, every value syntax, and that each error
//! names the file, the line and the key.

use super::*;
use crate::config::identity::AnswerKind;

const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:8443"
tls_cert = "c.pem"
tls_key = "k.pem"

[upstream]
url = "http://127.0.0.1:8080"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

fn error(text: &str) -> String {
    parse(text).expect_err("should fail").to_string()
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.login.path, "/loginTCCC");
    assert!(!c.login.allow_get);
    assert_eq!(c.login.per_user_rate, Rate::per_minute(30));
    assert_eq!(c.login.total_rate, Rate::per_second(15));
    assert_eq!(c.inject.loader_path, "/__tccc/loader.js");
    assert_eq!(c.inject.exclude, vec!["/api/".to_string()]);
    assert_eq!(c.identity.mode(), IdentityMode::Header);
    assert_eq!(c.tccc.endpoint, "https://ccc.tencentcloudapi.com");
    assert!(c.tccc.only_once);
    assert!(c.server.secure_cookies);
    assert_eq!(c.upstream.url.origin, "http://127.0.0.1:8080");
    assert_eq!(c.upstream.url.port, 8080);
}

#[test]
fn unknown_key_is_an_error_with_its_path_and_line() {
    let text = format!("{MINIMAL}\n[login]\npath = \"/x\"\nallow_gett = true\n");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.key, "login.allow_gett");
    assert_eq!(e.line, Some(12));
    assert!(e
        .to_string()
        .starts_with("test.toml:12: login.allow_gett: unknown field"));
}

#[test]
fn unknown_table_is_an_error() {
    let e = parse(&format!("{MINIMAL}\n[sever]\nx = 1\n")).unwrap_err();
    assert!(e.message.contains("unknown field `sever`"), "{e}");
}

#[test]
fn durations_rates_and_cidrs_parse_or_name_their_key() {
    let text = MINIMAL.replace(
        "tls_key = \"k.pem\"",
        "tls_key = \"k.pem\"\nheader_read_timeout = \"250ms\"\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]",
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.server.header_read_timeout.get(),
        std::time::Duration::from_millis(250)
    );
    assert!(c.server.trusted_proxies[1].contains("127.0.0.1".parse().unwrap()));
    assert!(!c.server.trusted_proxies[1].contains("127.0.0.2".parse().unwrap()));

    let bad = MINIMAL.replace(
        "tls_key = \"k.pem\"",
        "tls_key = \"k.pem\"\ntrusted_proxies = [\"10.0.0.0/33\"]",
    );
    assert!(
        error(&bad).starts_with("test.toml:6: server.trusted_proxies"),
        "{}",
        error(&bad)
    );
    let bad = format!("{MINIMAL}\n[login]\nper_user_rate = \"30/fortnight\"\n");
    assert!(error(&bad).contains("login.per_user_rate: invalid rate"));
    let bad = format!("{MINIMAL}\n[login]\nper_user_rate = \"0/s\"\n");
    assert!(error(&bad).contains("greater than zero"));
    let bad = MINIMAL.replace(
        "tls_key = \"k.pem\"",
        "tls_key = \"k.pem\"\nshutdown_timeout = \"0s\"",
    );
    assert!(error(&bad).contains("server.shutdown_timeout"));
}

#[test]
fn upstream_url_rules() {
    for (url, msg) in [
        ("ftp://x", "http:// or https://"),
        ("http://x/app", "must not have a path"),
        ("http://u:p@x", "credentials"),
        ("not a url", "invalid URL"),
    ] {
        let e = error(&MINIMAL.replace("http://127.0.0.1:8080", url));
        assert!(e.contains("upstream.url") && e.contains(msg), "{url}: {e}");
    }
    let c = parse(&MINIMAL.replace("http://127.0.0.1:8080", "https://legacy.internal")).unwrap();
    assert!(c.upstream.url.https);
    assert_eq!(c.upstream.url.port, 443);
}

#[test]
fn endpoint_must_be_https_unless_loopback() {
    let e = error(&format!(
        "{MINIMAL}\n[tccc]\nendpoint = \"http://ccc.example.com\"\n"
    ));
    assert!(
        e.starts_with("test.toml:11: tccc.endpoint: must be https"),
        "{e}"
    );
    parse(&format!(
        "{MINIMAL}\n[tccc]\nendpoint = \"http://127.0.0.1:9000\"\n"
    ))
    .unwrap();
}

#[test]
fn static_identity_refused_on_a_public_listener() {
    let text = MINIMAL.replace("127.0.0.1:8443", "0.0.0.0:8443")
        + "\n[identity]\nmode = \"static\"\nseat = \"dev@example.com\"\n";
    let e = error(&text);
    assert!(e.contains("identity.mode") && e.contains("loopback"), "{e}");
    let ok = MINIMAL.to_string() + "\n[identity]\nmode = \"static\"\nseat = \"dev@example.com\"\n";
    parse(&ok).unwrap();
}

#[test]
fn syntax_error_names_the_line() {
    let e = error("[server]\nlisten = \n");
    assert!(e.starts_with("test.toml:2:"), "{e}");
}

#[test]
fn response_timeout_overrides_pick_the_longest_prefix() {
    let text = format!(
        "{MINIMAL}response_timeout = \"5s\"\n[upstream.response_timeout_overrides]\n\"/reports/\" = \"10m\"\n\"/reports/quick/\" = \"20s\"\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.response_timeout_for("/reports/q1"),
        std::time::Duration::from_secs(600)
    );
    assert_eq!(
        c.response_timeout_for("/reports/quick/x"),
        std::time::Duration::from_secs(20)
    );
    assert_eq!(
        c.response_timeout_for("/other"),
        std::time::Duration::from_secs(5)
    );
}

#[test]
fn the_shipped_example_parses() {
    let text = include_str!("../../config/sidecar.example.toml");
    parse(text).unwrap();
}

#[test]
fn shell_and_click_to_call_settings_are_checked() {
    let ok = MINIMAL.to_string()
        + "\n[inject]\nmode = \"shell\"\nclick_to_call = true\nclick_to_call_allow = [\"+86\"]\nclick_to_call_country = \"86\"\nlogout_paths = [\"/logout\"]\n";
    let c = Config::parse(&ok, std::path::Path::new("t.toml")).unwrap();
    assert_eq!(c.inject.mode, InjectMode::Shell);
    assert!(c.inject.click_to_call);
    assert!(c.inject.click_to_call_deny.contains(&"+979".to_string()));
    for (bad, key) in [
        (
            "click_to_call_allow = [\"86\"]",
            "inject.click_to_call_allow[0]",
        ),
        (
            "click_to_call_deny = [\"+1900\", \"+\"]",
            "inject.click_to_call_deny[1]",
        ),
        (
            "click_to_call_deny = [\"+12a\"]",
            "inject.click_to_call_deny[0]",
        ),
        (
            "click_to_call_country = \"+86\"",
            "inject.click_to_call_country",
        ),
        (
            "click_to_call_country = \"0\"",
            "inject.click_to_call_country",
        ),
        ("logout_paths = [\"logout\"]", "inject.logout_paths[0]"),
        ("mode = \"frames\"", "inject.mode"),
    ] {
        let text = MINIMAL.to_string() + "\n[inject]\n" + bad + "\n";
        let e = error(&text);
        assert!(e.contains(key), "{bad}: {e}");
    }
}

#[test]
fn diag_settings_are_checked() {
    let off = MINIMAL.to_string() + "\n[inject]\ndiag_path = \"\"\n";
    assert!(Config::parse(&off, std::path::Path::new("t.toml")).is_ok());
    for bad in [
        "diag_path = \"diag\"",
        "diag_path = \"/loginTCCC\"",
        "diag_hosts = [\"https://*.tccc.qcloud.com\"]",
        "diag_hosts = [\"http://plain.example\"]",
        "diag_hosts = [\"https://ok.example\", \"https://x.example/path\"]",
    ] {
        let text = MINIMAL.to_string() + "\n[inject]\n" + bad + "\n";
        let e = error(&text);
        assert!(e.contains("inject.diag_"), "{bad}: {e}");
    }
    let wildcard = MINIMAL.to_string()
        + "\n[inject]\ndiag_hosts = [\"https://ok.example\", \"https://*.x\"]\n";
    assert!(error(&wildcard).contains("inject.diag_hosts[1]"));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Any text, and any valid configuration with one line replaced by noise, is either
        /// accepted or refused with one line naming the file: never a panic.
        #[test]
        fn any_config_text_is_answered_in_one_line(
            noise in "[\\[\\]a-z_.=\" 0-9/:,{}\n-]{0,200}",
            line in 0usize..12,
        ) {
            for text in [
                noise.clone(),
                MINIMAL
                    .lines()
                    .enumerate()
                    .map(|(i, l)| if i == line { noise.as_str() } else { l })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ] {
                if let Err(e) = parse(&text) {
                    let e = e.to_string();
                    prop_assert!(e.starts_with("test.toml"), "{}", e);
                    prop_assert_eq!(e.trim_end().lines().count(), 1, "{}", e);
                }
            }
        }
    }
}

#[test]
fn the_new_server_and_inject_settings_parse_with_their_defaults_or_name_their_key() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.server.allowed_upgrades, vec!["websocket".to_string()]);
    assert_eq!(
        c.server.send_timeout.get(),
        std::time::Duration::from_secs(60)
    );
    assert_eq!(
        c.server.client_body_timeout.get(),
        std::time::Duration::from_secs(60)
    );
    assert_eq!(c.server.max_requests_in_flight_per_client, 1024);
    assert_eq!(c.inject.dial_format, DialFormat::E164);
    assert_eq!(
        c.inject.sdk_ready_timeout.get(),
        std::time::Duration::from_secs(30)
    );
    let with = |extra: &str| format!("{MINIMAL}[inject]\n{extra}\n");
    for (value, want) in [
        ("e164", DialFormat::E164),
        ("00", DialFormat::International00),
    ] {
        let c = parse(&with(&format!("dial_format = \"{value}\""))).unwrap();
        assert_eq!(c.inject.dial_format, want);
    }
    let c = parse(&with(
        "dial_format = \"national\"\nclick_to_call_country = \"86\"",
    ))
    .unwrap();
    assert_eq!(c.inject.dial_format, DialFormat::National);
    let e = error(&with("dial_format = \"E.164\""));
    assert!(
        e.contains("test.toml:") && e.contains("inject.dial_format"),
        "{e}"
    );
    let e = error(&with("dial_format = \"national\""));
    assert!(
        e.contains("inject.dial_format") && e.contains("click_to_call_country"),
        "{e}"
    );
    let e = error(&with("sdk_ready_timeout = \"500ms\""));
    assert!(e.contains("inject.sdk_ready_timeout"), "{e}");
    let e = error(&MINIMAL.replace(
        "tls_key = \"k.pem\"",
        "tls_key = \"k.pem\"\nallowed_upgrades = [\"websocket\", \"H2C\"]",
    ));
    assert!(
        e.contains("test.toml:") && e.contains("server.allowed_upgrades"),
        "{e}"
    );
    let e = error(&format!(
        "{MINIMAL}[identity]\nstrip_headers = [\"bad name\"]\n"
    ));
    assert!(e.contains("identity.strip_headers"), "{e}");
}

#[test]
fn introspection_of_a_page_is_checked_at_load() {
    let with = |keys: &str| {
        format!("{MINIMAL}\n[identity]\nmode = \"introspect\"\nurl = \"/prefs\"\n{keys}\n")
    };
    let c = parse(&with(
        "cookies = [\"trac_auth\"]\nuser_selector = \"#metanav .user\"\nuser_regex = \"^as (.+)$\"",
    ))
    .unwrap();
    let ModeSettings::Introspect(s) = &c.identity.settings else {
        panic!("introspect")
    };
    assert!(matches!(s.answer, AnswerKind::Html(_)));
    let p = s.user_pattern.as_ref().unwrap();
    assert!(p.is_match("alice@corp.example") && !p.is_match("Alice Smith") && !p.is_match("a<b"));
    // Basic auth alone needs no cookie.
    let c = parse(&with(
        "forward_authorization = true\nuser_selector = \"#u\"",
    ))
    .unwrap();
    let ModeSettings::Introspect(s) = &c.identity.settings else {
        panic!("introspect")
    };
    assert!(s.forward_authorization && s.cookies.is_empty());
    // The JSON mode keeps its defaults and its own rule.
    let c = parse(&with("cookies = [\"sid\"]")).unwrap();
    let ModeSettings::Introspect(s) = &c.identity.settings else {
        panic!("introspect")
    };
    assert!(matches!(&s.answer, AnswerKind::Json { pointer } if pointer == "/id"));
    assert!(s.user_pattern.is_none() && !s.forward_authorization);

    for (keys, key, says) in [
        (
            "user_selector = \"#u\"",
            "identity.cookies",
            "forward_authorization",
        ),
        (
            "cookies = [\"s\"]\nuser_selector = \"##\"",
            "identity.user_selector",
            "CSS selector",
        ),
        (
            "cookies = [\"s\"]\nuser_selector = \"#u\"\nuser_pointer = \"/id\"",
            "identity.user_selector",
            "exclude",
        ),
        (
            "cookies = [\"s\"]\nuser_selector = \"#u\"\nuser_regex = \"as .+\"",
            "identity.user_regex",
            "exactly one capture group",
        ),
        (
            "cookies = [\"s\"]\nuser_selector = \"#u\"\nuser_regex = \"(a)(b)\"",
            "identity.user_regex",
            "exactly one capture group",
        ),
        (
            "cookies = [\"s\"]\nuser_selector = \"#u\"\nuser_regex = \"(\"",
            "identity.user_regex",
            "not a valid regular expression",
        ),
        (
            "cookies = [\"s\"]\nuser_regex = \"(.+)\"",
            "identity.user_regex",
            "user_selector",
        ),
        (
            "cookies = [\"s\"]\nuser_attribute = \"value\"",
            "identity.user_attribute",
            "user_selector",
        ),
        (
            "cookies = [\"s\"]\nuser_selector = \"#u\"\nuser_pattern = \"[\"",
            "identity.user_pattern",
            "not a valid",
        ),
        (
            "cookies = [\"s\"]\nuser_selector = \"#u\"\nuser_attribute = \"a b\"",
            "identity.user_attribute",
            "attribute name",
        ),
    ] {
        let e = error(&with(keys));
        assert!(e.contains(key) && e.contains(says), "{keys}: {e}");
        assert!(e.starts_with("test.toml:"), "located: {e}");
    }
}

#[test]
fn internal_origins_are_origins_and_name_the_apps_own_urls() {
    let text = MINIMAL.replace(
        "url = \"http://127.0.0.1:8080\"",
        "url = \"http://127.0.0.1:8080\"\ninternal_origins = [\"http://OA.intranet\", \"https://oa.intranet:443\", \"http://[::1]:8102\"]",
    );
    let c = parse(&text).unwrap();
    assert_eq!(
        c.upstream.own_origins(),
        [
            "http://127.0.0.1:8080",
            "http://oa.intranet",
            "http://oa.intranet:80",
            "https://oa.intranet:443",
            "https://oa.intranet",
            "http://[::1]:8102",
        ]
    );
    assert_eq!(c.upstream.own_hosts(), ["127.0.0.1", "oa.intranet", "::1"]);
    for bad in [
        "oa.intranet",
        "http://oa.intranet/app",
        "ftp://oa",
        "http://u:p@oa",
    ] {
        let e = error(&MINIMAL.replace(
            "url = \"http://127.0.0.1:8080\"",
            &format!("url = \"http://127.0.0.1:8080\"\ninternal_origins = [\"{bad}\"]"),
        ));
        assert!(
            e.contains("upstream.internal_origins") && e.contains("is not an origin"),
            "{bad}: {e}"
        );
    }
}
