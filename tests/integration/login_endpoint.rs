//! `/loginTCCC` in header mode: the contract's table row by row, the same-origin rules, the
//! identity header's spoofing defences on both sides (the endpoint and what the CRM sees),
//! every CCC error through the emulator, and the three rate limits.

use crate::common::*;
use crate::login_common::*;
use http::{Method, Request};
use std::net::IpAddr;
use std::time::{Duration, Instant};

const UNTRUSTED: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)));

#[tokio::test]
async fn trusted_gateway_user_gets_a_fresh_sdk_url_for_their_seat_over_h1_and_h2() {
    let env = Env::start(Opts::default()).await;
    for proto in [Proto::H1, Proto::H2] {
        let mut c = env.side.client(proto, None).await;
        let (status, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
        assert_token(status, &v);
        let (status, _, v2) = login(&mut c, &[("x-remote-user", "bob")]).await;
        assert_token(status, &v2);
        assert_ne!(v["SdkURL"], v2["SdkURL"], "one token per request");
    }
    assert_eq!(env.issued(ALICE_SEAT), 2);
    assert_eq!(env.issued(BOB_SEAT), 2);
    assert!(
        env.crm.requests().is_empty(),
        "the CRM never sees /loginTCCC"
    );
    let m = env.side.metrics();
    assert_eq!(
        metric(&m, "tccc_sidecar_login_requests_total{outcome=\"ok\"}"),
        4.0
    );
    assert!(
        !m.contains("alice") && !m.contains(ALICE_SEAT),
        "no user or seat labels"
    );
}

#[tokio::test]
async fn spoofed_identity_headers_from_an_untrusted_peer_reach_neither_the_endpoint_nor_the_crm() {
    let env = Env::start(Opts::default()).await;
    for proto in [Proto::H1, Proto::H2] {
        let mut c = env.side.client(proto, UNTRUSTED).await;
        let (status, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
        assert_error(status, &v, 401, "unauthenticated");
        let req = Request::get("/page")
            .header("x-remote-user", "alice")
            .header("x_remote_user", "alice")
            .header("X_Remote_User", "alice")
            .header("x-remote_user", "alice")
            .header("x-gateway-other", "kept")
            .body(empty())
            .unwrap();
        let (parts, body) = read(c.send(req).await.unwrap()).await;
        assert_eq!(parts.status, 200);
        assert_eq!(&body[..], b"crm page");
    }
    let seen = env.crm_calls("/page");
    assert_eq!(seen.len(), 2);
    for s in seen {
        let names: Vec<&str> = s.headers.keys().map(|k| k.as_str()).collect();
        assert!(
            !names.iter().any(|n| n.replace('_', "-") == "x-remote-user"),
            "the CRM saw a spoofed identity: {names:?}"
        );
        assert_eq!(s.headers.get("x-gateway-other").unwrap(), "kept");
    }
    assert_eq!(env.api_requests(), 0, "CCC was never asked");
}

#[tokio::test]
async fn trusting_a_proxy_for_forwarding_never_means_trusting_it_for_identity() {
    // 127.0.0.1 is in server.trusted_proxies (base config) but not in identity.trusted_peers.
    let env = Env::start(Opts {
        identity: "mode = \"header\"\ntrusted_peers = [\"127.0.0.3\"]",
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    let (status, _, v) = login(
        &mut c,
        &[("x-remote-user", "alice"), ("x-forwarded-for", "127.0.0.3")],
    )
    .await;
    assert_error(status, &v, 401, "unauthenticated");
    let req = Request::get("/p")
        .header("x-remote-user", "alice")
        .header("x-forwarded-for", "127.0.0.3")
        .body(empty())
        .unwrap();
    assert_eq!(read(c.send(req).await.unwrap()).await.0.status, 200);
    let seen = env.crm_calls("/p");
    assert!(seen[0].headers.get("x-remote-user").is_none());
    assert!(
        seen[0].headers.get("x-forwarded-for").is_some(),
        "the forwarding chain itself is still believed"
    );
}

#[tokio::test]
async fn a_trusted_gateway_naming_two_users_is_refused_on_both_paths() {
    let env = Env::start(Opts::default()).await;
    let mut c = env.side.h1().await;
    let (status, _, v) = login(
        &mut c,
        &[("x-remote-user", "alice"), ("x-remote-user", "bob")],
    )
    .await;
    assert_error(status, &v, 401, "unauthenticated");
    let req = Request::get("/p")
        .header("x-remote-user", "alice")
        .header("x-remote-user", "bob")
        .body(empty())
        .unwrap();
    assert_eq!(read(c.send(req).await.unwrap()).await.0.status, 400);
    assert!(
        env.crm_calls("/p").is_empty(),
        "an ambiguous identity never reaches the CRM"
    );
    // From the trusted peer the exact header passes through to the CRM, variants do not.
    let req = Request::get("/q")
        .header("x-remote-user", "alice")
        .header("x_remote_user", "bob")
        .body(empty())
        .unwrap();
    assert_eq!(read(c.send(req).await.unwrap()).await.0.status, 200);
    let seen = env.crm_calls("/q");
    assert_eq!(seen[0].headers.get("x-remote-user").unwrap(), "alice");
    assert!(seen[0].headers.get("x_remote_user").is_none());
}

#[tokio::test]
async fn the_gateway_secret_must_match_before_its_header_is_believed() {
    let dir = TempDir::new("gw");
    std::fs::write(dir.path("gw"), "s3cret-gateway-value\n").unwrap();
    let identity = format!(
        "mode = \"header\"\ntrusted_peers = [\"127.0.0.1\"]\ngateway_secret_header = \"X-Gateway-Secret\"\ngateway_secret_file = \"{}\"",
        dir.path("gw").display()
    );
    let env = Env::start(Opts {
        identity: &identity,
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_error(s, &v, 401, "unauthenticated");
    let (s, _, v) = login(
        &mut c,
        &[("x-remote-user", "alice"), ("x-gateway-secret", "wrong")],
    )
    .await;
    assert_error(s, &v, 401, "unauthenticated");
    let (s, _, v) = login(
        &mut c,
        &[
            ("x-remote-user", "alice"),
            ("x-gateway-secret", "s3cret-gateway-value"),
        ],
    )
    .await;
    assert_token(s, &v);
    // Without the secret the header is stripped before the CRM too.
    let req = Request::get("/p")
        .header("x-remote-user", "alice")
        .header("x-gateway-secret", "wrong")
        .body(empty())
        .unwrap();
    assert_eq!(read(c.send(req).await.unwrap()).await.0.status, 200);
    let seen = env.crm_calls("/p");
    assert!(seen[0].headers.get("x-remote-user").is_none());
    assert!(seen[0].headers.get("x-gateway-secret").is_none());
    assert_eq!(env.issued(ALICE_SEAT), 1);
}

#[tokio::test]
async fn cross_site_and_headerless_requests_are_refused_before_anything_else() {
    let env = Env::start(Opts::default()).await;
    let mut c = env.side.h1().await;
    let user = ("x-remote-user", "alice");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("sec-fetch-site", "none")],
    ];
    for extra in cases {
        let mut req = Request::post("/loginTCCC")
            .header("x-tccc-loader", "1")
            .header(user.0, user.1);
        for (k, v) in &extra {
            req = req.header(*k, *v);
        }
        let (s, _, v) = send_json(&mut c, req.body(empty()).unwrap()).await;
        assert_error(s, &v, 403, "cross_site");
    }
    // No Sec-Fetch-Site: the Origin decides; `null` and foreign origins are refused.
    for origin in [
        Some("https://evil.example"),
        Some("null"),
        Some("http://localhost"),
        None,
    ] {
        let mut req = Request::post("/loginTCCC")
            .header("x-tccc-loader", "1")
            .header(user.0, user.1);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let (s, _, v) = send_json(&mut c, req.body(empty()).unwrap()).await;
        assert_error(s, &v, 403, "cross_site");
    }
    let req = Request::post("/loginTCCC")
        .header("x-tccc-loader", "1")
        .header("origin", "https://localhost")
        .header(user.0, user.1)
        .body(empty())
        .unwrap();
    let (s, _, v) = send_json(&mut c, req).await;
    assert_token(s, &v);
    // Same-origin but without the loader's header (a form post) is refused.
    let req = Request::post("/loginTCCC")
        .header("sec-fetch-site", "same-origin")
        .header(user.0, user.1)
        .body(empty())
        .unwrap();
    let (s, _, v) = send_json(&mut c, req).await;
    assert_error(s, &v, 403, "cross_site");
    for m in [Method::GET, Method::PUT, Method::DELETE] {
        let req = Request::builder()
            .method(m)
            .uri("/loginTCCC")
            .header("sec-fetch-site", "same-origin")
            .header("x-tccc-loader", "1")
            .header(user.0, user.1)
            .body(empty())
            .unwrap();
        let (s, h, v) = send_json(&mut c, req).await;
        assert_error(s, &v, 405, "method_not_allowed");
        assert_eq!(h.get("allow").unwrap(), "POST");
    }
    assert_eq!(
        env.issued(ALICE_SEAT),
        1,
        "only the one good request made a token"
    );
    assert!(env.crm.requests().is_empty());
}

#[tokio::test]
async fn allow_get_serves_the_vendor_snippet_but_still_only_same_origin() {
    let env = Env::start(Opts {
        login: "allow_get = true",
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    let req = Request::get("/loginTCCC")
        .header("sec-fetch-site", "same-origin")
        .header("x-remote-user", "alice")
        .body(empty())
        .unwrap();
    let (s, _, v) = send_json(&mut c, req).await;
    assert_token(s, &v);
    let req = Request::get("/loginTCCC")
        .header("sec-fetch-site", "cross-site")
        .header("x-remote-user", "alice")
        .body(empty())
        .unwrap();
    let (s, _, v) = send_json(&mut c, req).await;
    assert_error(s, &v, 403, "cross_site");
}

#[tokio::test]
async fn users_without_a_seat_get_no_seat_and_ccc_is_not_asked() {
    let env = Env::start(Opts {
        seats_extra: "template = \"tpl-{user}@corp.example\"",
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    // dave is not in the file: the template maps him, and CCC knows that seat.
    let (s, _, v) = login(&mut c, &[("x-remote-user", "dave")]).await;
    assert_token(s, &v);
    assert_eq!(env.issued("tpl-dave@corp.example"), 1);
    let before = env.api_requests();
    // An id the template refuses never reaches CCC.
    let (s, _, v) = login(&mut c, &[("x-remote-user", "eve@evil.example")]).await;
    assert_error(s, &v, 403, "no_seat");
    assert_eq!(env.api_requests(), before);
    // carol is mapped, but CCC does not know her seat: AccountNotExist is no_seat too.
    let (s, _, v) = login(&mut c, &[("x-remote-user", "carol")]).await;
    assert_error(s, &v, 403, "no_seat");
    assert_eq!(
        env.stats()["api_requests_by_code"]["InvalidParameterValue.AccountNotExist"],
        1
    );
}

#[tokio::test]
async fn unmapped_users_without_a_template_get_no_seat() {
    let env = Env::start(Opts::default()).await;
    let mut c = env.side.h2().await;
    let (s, _, v) = login(&mut c, &[("x-remote-user", "zoe")]).await;
    assert_error(s, &v, 403, "no_seat");
    assert_eq!(env.api_requests(), 0);
}

#[tokio::test]
async fn every_ccc_refusal_maps_to_the_contracts_answer() {
    let env = Env::start(Opts::default()).await;
    let mut c = env.side.h1().await;
    // (fault code, status, error, retryable)
    let table = [
        ("InternalError", 503, "ccc_unavailable", true),
        ("InternalError.DBError", 503, "ccc_unavailable", true),
        ("RequestLimitExceeded", 503, "ccc_unavailable", true),
        ("InvalidParameter.InstanceNotExist", 502, "ccc_error", false),
        (
            "InvalidParameterValue.InstanceNotExist",
            502,
            "ccc_error",
            false,
        ),
        ("OperationDenied.UinDisabled", 502, "ccc_error", false),
        ("AuthFailure.SignatureFailure", 502, "ccc_error", false),
    ];
    for (code, status, error, retryable) in table {
        env.em.set_fault(ALICE_SEAT, Some(code)).unwrap();
        let (s, h, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
        assert_error(s, &v, status, error);
        assert_eq!(v["code"], code, "{v}");
        assert_eq!(v["retryable"], retryable, "{v}");
        assert_eq!(v["request_id"].as_str().unwrap().len(), 36, "{v}");
        assert_eq!(h.contains_key("retry-after"), retryable, "{code}");
    }
    // A rate-limited call is retried (it was refused, not served): three attempts reached CCC.
    assert_eq!(
        env.stats()["api_requests_by_code"]["RequestLimitExceeded"],
        3
    );
    // Every other refusal was asked exactly once: tokens are never requested twice.
    assert_eq!(env.stats()["api_requests_by_code"]["InternalError"], 1);
    env.em.set_fault(ALICE_SEAT, None).unwrap();
    let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_token(s, &v);
}

#[tokio::test]
async fn wrong_credentials_are_a_permanent_ccc_error() {
    let env = Env::start(Opts::default()).await;
    std::fs::write(env.dir.path("skey"), "not-the-key\n").unwrap();
    let mut c = env.side.h1().await;
    // The key file is watched: within a bounded time the new (wrong) key is in use.
    let deadline = Instant::now() + WAIT;
    loop {
        let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
        if s == 502 {
            assert_eq!(v["code"], "AuthFailure.SignatureFailure");
            assert_eq!(v["retryable"], false);
            break;
        }
        assert_token(s, &v);
        assert!(
            Instant::now() < deadline,
            "the key file change was never picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_slow_ccc_is_a_timeout_and_an_absent_one_is_unavailable() {
    let env = Env::start(Opts::default()).await;
    env.em.set_delay(Duration::from_millis(3000));
    let mut c = env.side.h1().await;
    let t = Instant::now();
    let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_error(s, &v, 504, "ccc_timeout");
    assert_eq!(v["retryable"], true);
    assert!(
        t.elapsed() < Duration::from_millis(2900),
        "bounded by tccc.timeout"
    );

    // Nothing listening at the endpoint: a connection failure is retryable.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = TempDir::new("down");
    std::fs::write(dir.path("sid"), "AKIDlogin").unwrap();
    std::fs::write(dir.path("skey"), "k").unwrap();
    std::fs::write(dir.path("seats.toml"), "alice = \"a@x\"").unwrap();
    let crm = Upstream::ok("x").await;
    let extra = format!(
        "\n[tccc]\nsdk_app_id = {APP}\nendpoint = \"http://{closed}\"\nsecret_id_file = \"{}\"\nsecret_key_file = \"{}\"\n\n[identity]\nmode = \"header\"\ntrusted_peers = [\"127.0.0.1\"]\n\n[seats]\nfile = \"{}\"\n",
        dir.path("sid").display(),
        dir.path("skey").display(),
        dir.path("seats.toml").display()
    );
    let side = Sidecar::start(&crm.url(), "", &extra).await;
    let mut c = side.h1().await;
    let (s, h, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_error(s, &v, 503, "ccc_unavailable");
    assert_eq!(v["code"], "ConnectionFailed");
    assert_eq!(v["retryable"], true);
    assert!(h.contains_key("retry-after"));
}

#[tokio::test]
async fn an_sdk_url_that_fails_the_policy_never_reaches_the_browser() {
    let mut cfg = em_config();
    cfg.sdk_origin = "http://127.0.0.1:9".into(); // not https
    let env = Env::start_with_emulator(Opts::default(), cfg).await;
    let mut c = env.side.h1().await;
    let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_error(s, &v, 502, "ccc_error");
    assert_eq!(v["code"], "SdkURLRejected");
    assert_eq!(v["retryable"], false);
    assert!(!v.to_string().contains("127.0.0.1:9"), "{v}");
}

#[tokio::test]
async fn the_per_client_limit_applies_before_identity_is_looked_up() {
    let env = Env::start(Opts {
        login: "per_client_rate = \"3/min\"",
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    for _ in 0..3 {
        let (s, _, v) = login(&mut c, &[("x-remote-user", "nobody")]).await;
        assert_error(s, &v, 403, "no_seat");
    }
    let (s, h, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_error(s, &v, 429, "rate_limited");
    let ra: u64 = h
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&ra), "retry-after {ra}");
    // Another client address has its own allowance.
    let mut other = env.side.client(Proto::H1, UNTRUSTED).await;
    let (s, _, v) = login(&mut other, &[]).await;
    assert_error(s, &v, 401, "unauthenticated");
    assert_eq!(env.api_requests(), 0);
    assert_eq!(
        metric(
            &env.side.metrics(),
            "tccc_sidecar_login_requests_total{outcome=\"rate_limited_client\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn the_per_user_limit_counts_each_user_separately() {
    let env = Env::start(Opts {
        login: "per_user_rate = \"2/min\"",
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h2().await;
    for _ in 0..2 {
        let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
        assert_token(s, &v);
    }
    let (s, h, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_error(s, &v, 429, "rate_limited");
    assert!(h.contains_key("retry-after"));
    let (s, _, v) = login(&mut c, &[("x-remote-user", "bob")]).await;
    assert_token(s, &v);
    assert_eq!(env.issued(ALICE_SEAT), 2);
}

#[tokio::test]
async fn a_burst_is_queued_at_the_overall_rate_and_every_request_is_answered() {
    let mut cfg = em_config();
    cfg.rate_limit = 20;
    let env = Env::start_with_emulator(
        Opts {
            login: "total_rate = \"10/s\"\nqueue_timeout = \"1s\"",
            ..Opts::default()
        },
        cfg,
    )
    .await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let side_addr = env.side.addr;
        let ca = env.side.ca_pem.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(side_addr, &ca, Proto::H1, None).await;
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            let t = Instant::now();
            let (s, h, _) = login(&mut c, &[("x-remote-user", user)]).await;
            (s, h, t.elapsed())
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    let mut longest = Duration::ZERO;
    for t in tasks {
        let (s, h, took) = within("burst answer", t).await.unwrap();
        longest = longest.max(took);
        match s.as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert!(h.contains_key("retry-after"));
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok + limited, 40, "every request got an answer");
    // 10/s with a 1 s queue admits about 11: the first at once and one per 100 ms.
    assert!((9..=13).contains(&ok), "admitted {ok}");
    assert!(
        longest < Duration::from_millis(2500),
        "longest wait {longest:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let stats = env.stats();
    assert!(
        stats["api_requests_by_code"]["RequestLimitExceeded"].is_null(),
        "CCC never saw more than its limit: {stats}"
    );
}

#[tokio::test]
async fn static_mode_serves_its_one_seat_to_loopback_clients_with_no_identity() {
    let env = Env::start(Opts {
        identity: "mode = \"static\"\nseat = \"agent-bob@example.com\"",
        ..Opts::default()
    })
    .await;
    for proto in [Proto::H1, Proto::H2] {
        let mut c = env.side.client(proto, None).await;
        let (s, _, v) = login(&mut c, &[]).await;
        assert_token(s, &v);
    }
    assert_eq!(env.issued(BOB_SEAT), 2);
    // Still same-origin only.
    let mut c = env.side.h1().await;
    let req = Request::post("/loginTCCC")
        .header("sec-fetch-site", "cross-site")
        .header("x-tccc-loader", "1")
        .body(empty())
        .unwrap();
    let (s, _, v) = send_json(&mut c, req).await;
    assert_error(s, &v, 403, "cross_site");
    // A non-loopback listener is refused at load.
    let text = base_toml(
        &TempDir::new("st"),
        "http://127.0.0.1:1",
        "",
        "\n[identity]\nmode = \"static\"\nseat = \"a@b\"\n",
    )
    .replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
    let e = tccc_sidecar::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap_err();
    assert_eq!(e.key, "identity.mode", "{e}");
}
