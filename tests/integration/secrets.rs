//! Secrets never leave by a side door. The built binary runs at the most verbose level
//! (`RUST_LOG=trace`, hyper, h2, rustls and reqwest included) with recognisable values for
//! the SecretId, SecretKey and session token, a CRM session cookie and an Authorization
//! header, in shell mode with a token request that succeeds, ones that fail, pages, the
//! loader, the diagnostics page and an error page. None of those values, nor an issued
//! SdkURL or its token, may appear (plain, URL-encoded, base64 at any alignment, or
//! JSON-escaped) in the logs, in `/metrics`, in any response but the 200 token answer, or in
//! the headers the upstream received (the cookie and Authorization may, where they belong).

use crate::common::*;
use base64::Engine;
use http::{Method, Request, Response};
use tccc_sidecar::emulator::EmulatorConfig;

const SECRET_ID: &str = "AKIDleakCheckId42x";
const SECRET_KEY: &str = "SKleak\"Check/Key+7f3a9c2e";
const SESSION_TOKEN: &str = "TOKleak-Check/Session+5d8e";
const COOKIE: &str = "CKleakCheckCookie91ab";
const AUTHORIZATION: &str = "Bearer AUleakCheckAuth44f0";

/// Every form a value might take on its way out.
fn encodings(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    let url: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    out.push(url.clone());
    out.push(url.to_ascii_lowercase().replace("%2b", "+"));
    out.push(
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_string(),
    );
    out.push(format!("{secret:?}").trim_matches('"').to_string());
    // base64 of the secret at each of the three alignments inside a longer text: the
    // characters that depend on the secret alone.
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        for pad in 0..3 {
            let mut text = vec![b'x'; pad];
            text.extend_from_slice(secret.as_bytes());
            let enc = engine.encode(&text);
            let skip = (pad * 4).div_ceil(3) + 1;
            let keep = enc.trim_end_matches('=');
            if keep.len() > skip + 4 {
                out.push(keep[skip..keep.len() - 2].to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn assert_clean(place: &str, text: &str, secrets: &[(&str, String)]) {
    for (name, secret) in secrets {
        for form in encodings(secret) {
            assert!(
                !text.contains(&form),
                "{name} ({form}) in {place}: {}",
                &text[text.find(&form).unwrap().saturating_sub(200)..]
                    .chars()
                    .take(400)
                    .collect::<String>()
            );
        }
    }
}

#[tokio::test]
async fn no_secret_reaches_logs_metrics_responses_or_the_upstream() {
    let (em_addr, em) = start_emulator_api(EmulatorConfig {
        sdk_app_id: 1400000000,
        secret_id: SECRET_ID.into(),
        secret_key: SECRET_KEY.into(),
        session_token: Some(SESSION_TOKEN.into()),
        seats: vec!["alice@seat.example".into()],
        clock: None,
        rate_limit: 0,
        sdk_origin: "https://127.0.0.1:9".into(),
    })
    .await;
    let crm = Upstream::start(crate::login_common::crm_handler()).await;
    let dir = TempDir::new("secrets");
    let ca = write_certs(&dir, &["localhost", "127.0.0.1"]);
    std::fs::write(dir.path("sid"), SECRET_ID).unwrap();
    std::fs::write(dir.path("skey"), SECRET_KEY).unwrap();
    std::fs::write(dir.path("token"), SESSION_TOKEN).unwrap();
    std::fs::write(dir.path("seats.toml"), "alice = \"alice@seat.example\"\n").unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ntls_cert = \"{d}/tls.crt\"\ntls_key = \"{d}/tls.key\"\n\n\
         [upstream]\nurl = \"{crm}\"\n\n\
         [tccc]\nsdk_app_id = 1400000000\nendpoint = \"http://{em_addr}\"\nsecret_id_file = \"{d}/sid\"\nsecret_key_file = \"{d}/skey\"\nsession_token_file = \"{d}/token\"\n\n\
         [login]\nper_user_rate = \"3/min\"\n\n\
         [identity]\nmode = \"introspect\"\nurl = \"/api/whoami\"\ncookies = [\"sid\"]\nuser_pointer = \"/user/id\"\n\n\
         [seats]\nfile = \"{d}/seats.toml\"\n\n\
         [inject]\nmode = \"shell\"\ndiag_hosts = []\n\n\
         [log]\nformat = \"json\"\nlevel = \"trace\"\n",
        d = dir.0.display(),
        crm = crm.url(),
    );
    let path = dir.path("sidecar.toml");
    std::fs::write(&path, text).unwrap();
    let running = crate::cli::run_json(&path, Some("trace"));
    let (addr, admin) = (running.addr, running.admin.expect("the admin listener"));

    let cookie = format!("sid=s-alice; other={COOKIE}");
    let mut responses = Vec::new();
    let mut token_bodies = Vec::new();
    for proto in BOTH {
        let mut c = Client::connect(addr, &ca, proto, None).await;
        let requests = [
            // A top-level navigation (the shell), a framed page, a plain page with secrets in
            // its headers, the loader and bridge, the diagnostics page.
            Request::get("/customers")
                .header("sec-fetch-dest", "document")
                .header("sec-fetch-mode", "navigate")
                .header("sec-fetch-site", "none")
                .header("cookie", &cookie)
                .body(empty())
                .unwrap(),
            Request::get("/customers")
                .header("sec-fetch-dest", "iframe")
                .header("sec-fetch-mode", "navigate")
                .header("sec-fetch-site", "same-origin")
                .header("cookie", &cookie)
                .body(empty())
                .unwrap(),
            Request::get(format!("/page;jsessionid={COOKIE}?q={COOKIE}"))
                .header("cookie", &cookie)
                .header("authorization", AUTHORIZATION)
                .body(empty())
                .unwrap(),
            Request::get("/__tccc/loader.js").body(empty()).unwrap(),
            Request::get("/__tccc/loader.js?bridge")
                .body(empty())
                .unwrap(),
            Request::get("/__tccc/diag")
                .header("cookie", &cookie)
                .body(empty())
                .unwrap(),
            // Token requests: one that succeeds, then refusals (cross-site, anonymous, and the
            // per-user limit of 3/min).
            crate::login_common::token_request(&[("cookie", &cookie)]),
            crate::login_common::token_request(&[("cookie", &cookie)]),
            Request::builder()
                .method(Method::POST)
                .uri("/loginTCCC")
                .header("sec-fetch-site", "cross-site")
                .header("cookie", &cookie)
                .body(empty())
                .unwrap(),
            crate::login_common::token_request(&[("cookie", "sid=nobody")]),
        ];
        for req in requests {
            let is_login = req.uri().path() == "/loginTCCC";
            let resp: Response<_> = c.send(req).await.unwrap();
            let (parts, body) = read(resp).await;
            let text = String::from_utf8_lossy(&body).into_owned();
            if is_login && parts.status == 200 {
                token_bodies.push(text);
            } else {
                responses.push(format!("{:?}\n{}", parts, text));
            }
        }
    }
    let statuses: Vec<String> = responses
        .iter()
        .map(|r| r.chars().take(60).collect::<String>())
        .collect();
    assert_eq!(
        token_bodies.len(),
        3,
        "three tokens, then the limit: {statuses:?}"
    );
    assert!(
        statuses.iter().any(|s| s.contains("status: 429")),
        "{statuses:?}"
    );
    let sdk_urls: Vec<String> = token_bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["SdkURL"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let tokens: Vec<String> = sdk_urls
        .iter()
        .map(|u| u.split("token=").nth(1).unwrap().to_string())
        .collect();
    assert!(
        em.stats_json().contains("\"tokens_issued\":3"),
        "the emulator checked the key and the session token: {}",
        em.stats_json()
    );
    let metrics = {
        let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        within("metrics", s.read_to_string(&mut out)).await.unwrap();
        out
    };
    assert!(
        metrics.contains("tccc_sidecar_login_requests_total"),
        "{metrics}"
    );
    let (code, logs) = running.stop().await;
    assert_eq!(code, Some(0));
    let logs = logs.join("\n");
    assert!(
        logs.contains("login token request"),
        "the audit lines are there"
    );

    let mut secrets: Vec<(&str, String)> = vec![
        ("SecretId", SECRET_ID.to_string()),
        ("SecretKey", SECRET_KEY.to_string()),
        ("session token", SESSION_TOKEN.to_string()),
        ("cookie value", COOKIE.to_string()),
        ("Authorization", "AUleakCheckAuth44f0".to_string()),
    ];
    for u in &sdk_urls {
        secrets.push(("SdkURL", u.clone()));
    }
    for t in &tokens {
        secrets.push(("SdkURL token", t.clone()));
    }
    assert_clean("the logs", &logs, &secrets);
    assert_clean("/metrics", &metrics, &secrets);
    for r in &responses {
        assert_clean("a response", r, &secrets);
    }
    // The upstream gets the CRM's own cookie and Authorization (they are its), in their own
    // headers only, and nothing of the sidecar's.
    let seen = crm.requests();
    assert!(seen.iter().any(|s| s
        .headers
        .get("authorization")
        .is_some_and(|v| v == AUTHORIZATION)));
    let credentials: Vec<(&str, String)> = secrets
        .iter()
        .filter(|(n, _)| *n != "cookie value" && *n != "Authorization")
        .cloned()
        .collect();
    for s in &seen {
        let mut others = String::new();
        for (k, v) in &s.headers {
            if k != "cookie" && k != "authorization" {
                others.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
            }
        }
        // The CRM's own values in its own fields (and the page's own address) are the CRM's.
        assert_clean("the headers the upstream received", &others, &secrets);
        let own = format!(
            "{} {} {}",
            s.uri,
            s.headers
                .get("cookie")
                .map(|v| v.to_str().unwrap())
                .unwrap_or(""),
            s.headers
                .get("authorization")
                .map(|v| v.to_str().unwrap())
                .unwrap_or("")
        );
        assert_clean(
            "the upstream's target, Cookie and Authorization",
            &own,
            &credentials,
        );
    }
}

/// The detector itself: a secret inside a longer text, base64-encoded at any offset, URL- or
/// JSON-encoded, is found.
#[test]
fn the_leak_detector_sees_every_encoding() {
    let found = |text: &str| {
        encodings(SECRET_KEY)
            .iter()
            .any(|f| text.contains(f.as_str()))
    };
    for prefix in ["", "a", "ab", "abc", "key=", "{\"k\":\""] {
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE,
        ] {
            let text = engine.encode(format!("{prefix}{SECRET_KEY};rest"));
            assert!(found(&text), "base64 after {prefix:?}: {text}");
        }
    }
    let json = serde_json::json!({ "k": format!("x{SECRET_KEY}y") }).to_string();
    assert!(found(&json), "{json}");
    let url: String = format!("q={SECRET_KEY}")
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'=' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    assert!(found(&url), "{url}");
    assert!(!found("nothing to see"));
}
