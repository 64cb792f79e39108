//! The CreateSDKLoginToken client against the emulator, end to end: success, every error
//! the emulator gives, timeouts, the retry rules (counted at the emulator), the SdkURL
//! policy, and the captured SDK requests replayed against the emulator with a frozen clock.

use crate::common::*;
use base64::Engine;
use std::sync::Arc;
use std::time::Duration;
use tccc_sidecar::ccc::{CccClient, CccError, ClientOptions, CredentialStore, Credentials, Secret};
use tccc_sidecar::emulator::{Emulator, EmulatorConfig};
use tokio::io::AsyncWriteExt;

const APP: u64 = 1400000000;

fn em_config() -> EmulatorConfig {
    EmulatorConfig {
        sdk_app_id: APP,
        secret_id: "AKIDtest".into(),
        secret_key: "test-secret-key".into(),
        session_token: None,
        seats: vec!["agent@example.com".into(), "张三@example.com".into()],
        clock: None,
        rate_limit: 0,
        sdk_origin: "https://127.0.0.1:9".into(),
    }
}

async fn start_emulator(cfg: EmulatorConfig) -> (String, Arc<Emulator>) {
    let em = Arc::new(Emulator::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(tccc_sidecar::emulator::server::serve_api(
        l,
        em.clone(),
        std::future::pending(),
    ));
    (format!("http://{addr}"), em)
}

fn creds(id: &str, key: &str, token: Option<&str>) -> Arc<CredentialStore> {
    CredentialStore::fixed(Credentials {
        secret_id: id.into(),
        secret_key: Secret::new(key),
        token: token.map(Secret::new),
    })
}

fn client(endpoint: &str, id: &str, key: &str) -> CccClient {
    CccClient::new(ClientOptions::new(endpoint, APP), creds(id, key, None)).unwrap()
}

fn stats(em: &Emulator) -> serde_json::Value {
    serde_json::from_str(&em.stats_json()).unwrap()
}

fn api_code(r: Result<tccc_sidecar::ccc::LoginToken, CccError>) -> String {
    match r {
        Err(CccError::Api {
            code, request_id, ..
        }) => {
            assert_eq!(request_id.len(), 36, "every answer carries a RequestId");
            code
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn issues_a_token_for_a_known_seat() {
    let (url, em) = start_emulator(em_config()).await;
    let c = client(&url, "AKIDtest", "test-secret-key");
    for seat in ["agent@example.com", "张三@example.com"] {
        let t = c.create_sdk_login_token(seat).await.unwrap();
        assert!(
            t.sdk_url
                .starts_with("https://127.0.0.1:9/tccc-sdk.js?token="),
            "{}",
            t.sdk_url
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((t.expired_time - now - 600).abs() <= 2);
        assert_eq!(t.request_id.len(), 36);
        assert!(
            !format!("{t:?}").contains("token="),
            "Debug never shows the SdkURL"
        );
    }
    let s = stats(&em);
    assert_eq!(s["seats"]["agent@example.com"]["tokens_issued"], 1);
    assert_eq!(s["seats"]["张三@example.com"]["tokens_issued"], 1);
    assert_eq!(s["api_requests_by_code"]["Success"], 2);
}

#[tokio::test]
async fn every_refusal_is_a_typed_error_with_its_code() {
    let (url, em) = start_emulator(em_config()).await;
    assert_eq!(
        api_code(
            client(&url, "AKIDother", "test-secret-key")
                .create_sdk_login_token("agent@example.com")
                .await
        ),
        "AuthFailure.SecretIdNotFound"
    );
    assert_eq!(
        api_code(
            client(&url, "AKIDtest", "wrong-key")
                .create_sdk_login_token("agent@example.com")
                .await
        ),
        "AuthFailure.SignatureFailure"
    );
    let c = client(&url, "AKIDtest", "test-secret-key");
    assert_eq!(
        api_code(c.create_sdk_login_token("nobody@example.com").await),
        "InvalidParameterValue.AccountNotExist"
    );
    let other_app = CccClient::new(
        ClientOptions::new(&url, 1400000001),
        creds("AKIDtest", "test-secret-key", None),
    )
    .unwrap();
    assert_eq!(
        api_code(other_app.create_sdk_login_token("agent@example.com").await),
        "InvalidParameterValue.InstanceNotExist"
    );
    // A session token the emulator does not expect.
    let with_token = CccClient::new(
        ClientOptions::new(&url, APP),
        creds("AKIDtest", "test-secret-key", Some("tok")),
    )
    .unwrap();
    assert_eq!(
        api_code(with_token.create_sdk_login_token("agent@example.com").await),
        "AuthFailure.TokenFailure"
    );
    // None of these is retried: one request each.
    assert_eq!(stats(&em)["api_requests_total"], 5);
    let e = CccError::Api {
        code: "AuthFailure.SignatureFailure".into(),
        message: String::new(),
        request_id: String::new(),
    };
    assert!(!e.retryable());
}

#[tokio::test]
async fn temporary_credentials_need_the_matching_token() {
    let mut cfg = em_config();
    cfg.session_token = Some("session-tok".into());
    let (url, _) = start_emulator(cfg).await;
    let good = CccClient::new(
        ClientOptions::new(&url, APP),
        creds("AKIDtest", "test-secret-key", Some("session-tok")),
    )
    .unwrap();
    good.create_sdk_login_token("agent@example.com")
        .await
        .unwrap();
    let wrong = CccClient::new(
        ClientOptions::new(&url, APP),
        creds("AKIDtest", "test-secret-key", Some("other")),
    )
    .unwrap();
    assert_eq!(
        api_code(wrong.create_sdk_login_token("agent@example.com").await),
        "AuthFailure.TokenFailure"
    );
    assert_eq!(
        api_code(
            client(&url, "AKIDtest", "test-secret-key")
                .create_sdk_login_token("agent@example.com")
                .await
        ),
        "AuthFailure.TokenFailure"
    );
}

#[tokio::test]
async fn clock_skew_over_five_minutes_is_signature_expire() {
    let mut cfg = em_config();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    cfg.clock = Some(now - 301);
    let (url, _) = start_emulator(cfg).await;
    assert_eq!(
        api_code(
            client(&url, "AKIDtest", "test-secret-key")
                .create_sdk_login_token("agent@example.com")
                .await
        ),
        "AuthFailure.SignatureExpire"
    );
    let mut cfg = em_config();
    cfg.clock = Some(now - 250);
    let (url, _) = start_emulator(cfg).await;
    client(&url, "AKIDtest", "test-secret-key")
        .create_sdk_login_token("agent@example.com")
        .await
        .unwrap();
}

#[tokio::test]
async fn rate_limited_calls_are_retried_with_backoff_and_counted() {
    let mut cfg = em_config();
    cfg.rate_limit = 1;
    let (url, em) = start_emulator(cfg).await;
    let mut opts = ClientOptions::new(&url, APP);
    opts.max_attempts = 3;
    opts.deadline = Duration::from_secs(5);
    opts.rate_limit_cooldown = Duration::from_millis(1100);
    let c = CccClient::new(opts, creds("AKIDtest", "test-secret-key", None)).unwrap();
    c.create_sdk_login_token("agent@example.com").await.unwrap();
    // The second call within the same second is refused once, waits out the cooldown, then succeeds.
    let started = std::time::Instant::now();
    c.create_sdk_login_token("agent@example.com").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for the window"
    );
    let s = stats(&em);
    assert_eq!(s["api_requests_by_code"]["RequestLimitExceeded"], 1);
    assert_eq!(s["api_requests_by_code"]["Success"], 2);
    assert_eq!(
        s["seats"]["agent@example.com"]["tokens_issued"], 2,
        "no token was minted twice"
    );
}

#[tokio::test]
async fn rate_limit_gives_up_within_the_deadline() {
    let mut cfg = em_config();
    cfg.rate_limit = 1;
    let (url, em) = start_emulator(cfg).await;
    let mut opts = ClientOptions::new(&url, APP);
    opts.max_attempts = 3;
    opts.rate_limit_cooldown = Duration::from_millis(10);
    opts.deadline = Duration::from_millis(400);
    let c = CccClient::new(opts, creds("AKIDtest", "test-secret-key", None)).unwrap();
    c.create_sdk_login_token("agent@example.com").await.unwrap();
    let err = c
        .create_sdk_login_token("agent@example.com")
        .await
        .unwrap_err();
    assert!(err.is_rate_limited() && err.retryable(), "{err:?}");
    let limited = stats(&em)["api_requests_by_code"]["RequestLimitExceeded"]
        .as_u64()
        .unwrap();
    assert!(
        (1..=3).contains(&limited),
        "at most max_attempts requests: {limited}"
    );
}

#[tokio::test]
async fn a_stalled_endpoint_times_out_without_a_second_request() {
    let up = RawUpstream::start(|mut s, _| async move {
        let _ = read_head(&mut s).await;
        std::future::pending::<()>().await;
    })
    .await;
    let mut opts = ClientOptions::new(&up.url(), APP);
    opts.timeout = Duration::from_millis(300);
    let c = CccClient::new(opts, creds("AKIDtest", "k", None)).unwrap();
    let started = std::time::Instant::now();
    let err = c
        .create_sdk_login_token("agent@example.com")
        .await
        .unwrap_err();
    assert_eq!(err, CccError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        up.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "an answered-or-not request is never resent"
    );
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(&format!("http://127.0.0.1:{port}"), "AKIDtest", "k");
    let err = c
        .create_sdk_login_token("agent@example.com")
        .await
        .unwrap_err();
    assert!(matches!(err, CccError::Connect(_)), "{err:?}");
    assert!(err.retryable());
}

async fn answering(resp: &'static [u8]) -> RawUpstream {
    RawUpstream::start(move |mut s, _| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s.write_all(resp).await;
        }
    })
    .await
}

#[tokio::test]
async fn answers_that_are_not_ccc_answers_are_invalid() {
    let cases: [&'static [u8]; 4] = [
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"Other\": {}}",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 60\r\nConnection: close\r\n\r\n{\"Response\": {\"RequestId\": \"r\", \"ExpiredTime\": 1}}          ",
    ];
    for raw in cases {
        let up = answering(raw).await;
        let err = client(&up.url(), "AKIDtest", "k")
            .create_sdk_login_token("a")
            .await
            .unwrap_err();
        assert!(matches!(err, CccError::Invalid(_)), "{err:?}");
        assert!(!err.retryable());
    }
    // A huge answer is cut off at 64 KiB.
    let up = RawUpstream::start(|mut s, _| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n").await;
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..200 {
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let err = client(&up.url(), "AKIDtest", "k")
        .create_sdk_login_token("a")
        .await
        .unwrap_err();
    assert_eq!(err, CccError::Invalid("answer larger than 64 KiB".into()));
}

#[tokio::test]
async fn sdk_urls_outside_the_allowed_hosts_never_leave_the_client() {
    for origin in ["https://evil.example.com", "http://127.0.0.1:9"] {
        let mut cfg = em_config();
        cfg.sdk_origin = origin.into();
        let (url, _) = start_emulator(cfg).await;
        let err = client(&url, "AKIDtest", "test-secret-key")
            .create_sdk_login_token("agent@example.com")
            .await
            .unwrap_err();
        match &err {
            CccError::SdkUrlRejected { request_id, .. } => assert_eq!(request_id.len(), 36),
            other => panic!("{origin}: {other:?}"),
        }
        assert!(
            !err.to_string().contains("token="),
            "the error never carries the URL"
        );
    }
    assert!(
        CccClient::new(
            ClientOptions::new("http://ccc.example.com", APP),
            creds("a", "b", None)
        )
        .is_err(),
        "plain http only for loopback"
    );
}

/// Sends a request exactly as captured (headers and body bytes) to the emulator.
async fn replay(
    url: &str,
    v: &serde_json::Value,
    body: Vec<u8>,
    tweak: impl Fn(&str, &str) -> Option<String>,
) -> serde_json::Value {
    let http = reqwest::Client::new();
    let method = v["method"].as_str().unwrap();
    let query = v["canonical_query"].as_str().unwrap();
    let target = if query.is_empty() {
        format!("{url}/")
    } else {
        format!("{url}/?{query}")
    };
    let mut req = http.request(method.parse().unwrap(), target);
    for h in v["headers_as_sent"].as_array().unwrap() {
        let (k, val) = (h[0].as_str().unwrap(), h[1].as_str().unwrap());
        if ["content-length", "connection", "accept-encoding"]
            .contains(&k.to_ascii_lowercase().as_str())
        {
            continue;
        }
        let val = tweak(k, val).unwrap_or_else(|| val.to_string());
        req = req.header(k, val);
    }
    let resp = req.body(body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn captured_sdk_requests_replay_against_the_emulator_with_a_frozen_clock() {
    let text = include_str!("../fixtures/tc3_vectors.json");
    let all: serde_json::Value = serde_json::from_str(text).unwrap();
    for v in all["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let body = base64::engine::general_purpose::STANDARD
            .decode(v["body_base64"].as_str().unwrap())
            .unwrap();
        let seat = if v["method"] == "GET" {
            let q = v["canonical_query"].as_str().unwrap();
            let enc = q
                .split('&')
                .find_map(|p| p.strip_prefix("SeatUserId="))
                .unwrap();
            percent_decode(enc)
        } else {
            let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
            j["SeatUserId"].as_str().unwrap().to_string()
        };
        let cfg = EmulatorConfig {
            sdk_app_id: APP,
            secret_id: v["secret_id"].as_str().unwrap().into(),
            secret_key: v["secret_key"].as_str().unwrap().into(),
            session_token: v["token"].as_str().map(String::from),
            seats: vec![seat],
            clock: Some(v["timestamp"].as_i64().unwrap()),
            rate_limit: 0,
            sdk_origin: "https://127.0.0.1:9".into(),
        };
        let (url, _) = start_emulator(cfg).await;
        let ok = replay(&url, v, body.clone(), |_, _| None).await;
        assert!(ok["Response"]["SdkURL"].is_string(), "{name}: {ok}");

        // One byte of the body changed: the signature no longer holds.
        let mut tampered = body.clone();
        if tampered.is_empty() {
            tampered.push(b' ');
        } else {
            let last = tampered.len() - 1;
            tampered[last] ^= 0x20;
        }
        let bad = replay(&url, v, tampered, |_, _| None).await;
        let unsigned = v["headers_as_sent"]
            .to_string()
            .contains("UNSIGNED-PAYLOAD");
        if !unsigned {
            assert_eq!(
                bad["Response"]["Error"]["Code"], "AuthFailure.SignatureFailure",
                "{name}"
            );
        }
        // The Host as signed matters: another host is another signature.
        let bad = replay(&url, v, body.clone(), |k, _| {
            k.eq_ignore_ascii_case("host")
                .then(|| "ccc.ap-guangzhou.tencentcloudapi.com".into())
        })
        .await;
        assert_eq!(
            bad["Response"]["Error"]["Code"], "AuthFailure.SignatureFailure",
            "{name}"
        );
        // Five minutes and a second later, the same request has expired.
        let mut later = em_config();
        later.secret_id = v["secret_id"].as_str().unwrap().into();
        later.secret_key = v["secret_key"].as_str().unwrap().into();
        later.session_token = v["token"].as_str().map(String::from);
        later.clock = Some(v["timestamp"].as_i64().unwrap() + 301);
        let (late_url, _) = start_emulator(later).await;
        let expired = replay(&late_url, v, body.clone(), |_, _| None).await;
        assert_eq!(
            expired["Response"]["Error"]["Code"], "AuthFailure.SignatureExpire",
            "{name}"
        );
    }
}

#[tokio::test]
async fn malformed_requests_get_the_real_codes_in_order() {
    let (url, _) = start_emulator(em_config()).await;
    let http = reqwest::Client::new();
    let send = |headers: Vec<(&'static str, String)>, body: &'static str| {
        let mut r = http.post(format!("{url}/")).body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        async move {
            let resp = r.send().await.unwrap();
            let v: serde_json::Value = resp.json().await.unwrap();
            v["Response"]["Error"]["Code"]
                .as_str()
                .unwrap_or("Success")
                .to_string()
        }
    };
    let base = |action: &str, version: &str| {
        vec![
            ("X-TC-Action", action.to_string()),
            ("X-TC-Version", version.to_string()),
            ("Content-Type", "application/json".to_string()),
        ]
    };
    assert_eq!(
        send(base("DescribeNothing", "2020-02-10"), "{}").await,
        "InvalidAction"
    );
    assert_eq!(
        send(base("CreateSDKLoginToken", "2099-01-01"), "{}").await,
        "NoSuchVersion"
    );
    assert_eq!(
        send(base("CreateSDKLoginToken", "2020-02-10"), "{}").await,
        "AuthFailure.InvalidAuthorization"
    );
    let mut h = base("CreateSDKLoginToken", "2020-02-10");
    h.push(("Authorization", "Bearer xyz".into()));
    assert_eq!(send(h, "{}").await, "AuthFailure.InvalidAuthorization");
    // Correctly signed bodies with bad parameters.
    for (body, want) in [
        (r#"{"SdkAppId": 1400000000}"#, "MissingParameter"),
        (r#"{"SeatUserId": "agent@example.com"}"#, "MissingParameter"),
        (
            r#"{"SdkAppId": 1400000000, "SeatUserId": "agent@example.com", "Extra": 1}"#,
            "UnknownParameter",
        ),
        (
            r#"{"SdkAppId": "abc", "SeatUserId": "agent@example.com"}"#,
            "InvalidParameterValue",
        ),
        (
            r#"{"SdkAppId": 1400000000, "SeatUserId": 5}"#,
            "InvalidParameterValue",
        ),
        (r#"[1,2]"#, "InvalidParameter"),
        (
            r#"{"SdkAppId": 1400000000, "SeatUserId": "agent@example.com", "OnlyOnce": true}"#,
            "Success",
        ),
    ] {
        let host = url.trim_start_matches("http://").to_string();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let signed = tccc_sidecar::tc3::sign(
            &tccc_sidecar::tc3::Request {
                method: "POST",
                host: &host,
                query: "",
                content_type: "application/json",
                body: body.as_bytes(),
                unsigned_payload: false,
                timestamp: ts,
                service: "ccc",
            },
            "AKIDtest",
            "test-secret-key",
        )
        .unwrap();
        let mut h = base("CreateSDKLoginToken", "2020-02-10");
        h.push(("X-TC-Timestamp", ts.to_string()));
        h.push(("Authorization", signed.authorization));
        h.push(("X-TC-Language", "en-US".into()));
        assert_eq!(send(h, body).await, want, "{body}");
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn connect_tunnels_only_to_the_ccc_api_hosts() {
    let (url, _) = start_emulator(em_config()).await;
    let addr = url.trim_start_matches("http://").to_string();
    for (target, want) in [
        ("evil.example.com:443", "403"),
        ("ccc.tencentcloudapi.com:80", "200"),
    ] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let head = within("CONNECT answer", read_head(&mut s)).await.unwrap();
        assert_eq!(&head[9..12], want, "{target}: {head}");
    }
}
