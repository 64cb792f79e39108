//! `identity.mode = "introspect"` against a real CRM stand-in that counts its whoami calls:
//! what the whoami request carries, positive and negative caching, one call per session under
//! concurrency, timeouts and a CRM that is down (503, never 401), and logout invalidation.

use crate::common::*;
use crate::login_common::*;
use http::{Request, Response};
use std::time::{Duration, Instant};

const IDENTITY: &str = "mode = \"introspect\"\nurl = \"/api/whoami\"\ncookies = [\"sid\"]\nuser_pointer = \"/user/id\"\nlogout_paths = [\"/logout\"]";

fn whoami_calls(env: &Env) -> usize {
    env.crm_calls("/api/whoami").len()
}

#[tokio::test]
async fn whoami_gets_only_the_session_cookie_and_answers_are_cached() {
    let env = Env::start(Opts {
        identity: IDENTITY,
        ..Opts::default()
    })
    .await;
    for proto in [Proto::H1, Proto::H2] {
        let mut c = env.side.client(proto, None).await;
        let (s, _, v) = login(
            &mut c,
            &[
                ("cookie", "tracking=t1; sid=s-alice; theme=dark"),
                ("authorization", "Bearer crm-api-token"),
                ("x-forwarded-for", "198.51.100.7"),
                ("x-remote-user", "bob"),
            ],
        )
        .await;
        assert_token(s, &v);
    }
    assert_eq!(
        env.issued(ALICE_SEAT),
        2,
        "the user came from whoami, not a header"
    );
    let calls = env.crm_calls("/api/whoami");
    assert_eq!(calls.len(), 1, "the second request was a cache hit");
    let h = &calls[0].headers;
    assert_eq!(h.get("cookie").unwrap(), "sid=s-alice");
    assert!(h.get("authorization").is_none());
    assert!(h.get("x-forwarded-for").is_none());
    assert!(h.get("x-real-ip").is_none());
    assert!(h.get("x-remote-user").is_none());
    assert_eq!(h.get("accept").unwrap(), "application/json");
    // Another session is another lookup.
    let mut c = env.side.h1().await;
    let (s, _, v) = login(&mut c, &[("cookie", "sid=s-bob")]).await;
    assert_token(s, &v);
    assert_eq!(whoami_calls(&env), 2);
    let m = env.side.metrics();
    assert_eq!(
        metric(
            &m,
            "tccc_sidecar_identity_lookups_total{result=\"cache_hit\"}"
        ),
        1.0
    );
    assert!(!m.contains("s-alice"), "no cookie value in metrics");
}

#[tokio::test]
async fn not_logged_in_is_401_and_cached_briefly_and_no_cookie_asks_nobody() {
    let env = Env::start(Opts {
        identity: &format!("{IDENTITY}\nnegative_cache_ttl = \"300ms\""),
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    let (s, _, v) = login(&mut c, &[]).await;
    assert_error(s, &v, 401, "unauthenticated");
    assert_eq!(
        whoami_calls(&env),
        0,
        "no session cookie: the CRM is not asked"
    );
    // whoami redirects to the login page: not logged in.
    for _ in 0..3 {
        let (s, _, v) = login(&mut c, &[("cookie", "sid=expired")]).await;
        assert_error(s, &v, 401, "unauthenticated");
    }
    assert_eq!(whoami_calls(&env), 1, "the negative answer was cached");
    // ... but only briefly.
    let deadline = Instant::now() + WAIT;
    while whoami_calls(&env) < 2 {
        assert!(Instant::now() < deadline, "negative entry never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (s, _, _) = login(&mut c, &[("cookie", "sid=expired")]).await;
        assert_eq!(s, 401);
    }
    assert_eq!(env.api_requests(), 0);
}

#[tokio::test]
async fn an_html_login_page_or_a_missing_field_is_not_an_identity() {
    let crm = handler(|s: Seen| async move {
        let cookie = s
            .headers
            .get("cookie")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        if cookie == "sid=html" {
            return Response::builder()
                .header("content-type", "text/html")
                .body(full("<html><form action=/login>Sign in</form></html>"))
                .unwrap();
        }
        Response::builder()
            .header("content-type", "application/json; charset=utf-8")
            .body(full("{\"user\":null}"))
            .unwrap()
    });
    let env = Env::start(Opts {
        identity: IDENTITY,
        crm: Some(crm),
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    for cookie in ["sid=html", "sid=json-null"] {
        let (s, _, v) = login(&mut c, &[("cookie", cookie)]).await;
        assert_error(s, &v, 401, "unauthenticated");
    }
    assert_eq!(whoami_calls(&env), 2);
}

#[tokio::test]
async fn a_slow_or_failing_crm_is_identity_unavailable_and_never_cached() {
    let crm = handler(|s: Seen| async move {
        let cookie = s
            .headers
            .get("cookie")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        if cookie == "sid=slow" {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        if cookie == "sid=broken" {
            return Response::builder().status(500).body(full("oops")).unwrap();
        }
        Response::builder()
            .header("content-type", "application/json")
            .body(full("{\"user\":{\"id\":\"alice\"}}"))
            .unwrap()
    });
    let env = Env::start(Opts {
        identity: &format!("{IDENTITY}\ntimeout = \"300ms\""),
        crm: Some(crm),
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    for cookie in ["sid=slow", "sid=broken"] {
        for _ in 0..2 {
            let t = Instant::now();
            let (s, h, v) = login(&mut c, &[("cookie", cookie)]).await;
            assert_error(s, &v, 503, "identity_unavailable");
            assert_eq!(v["retryable"], true);
            assert!(h.contains_key("retry-after"));
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "bounded by identity.timeout"
            );
        }
    }
    assert_eq!(
        whoami_calls(&env),
        4,
        "failures are asked again, not cached"
    );
    assert_eq!(env.api_requests(), 0);
}

#[tokio::test]
async fn a_crm_that_is_down_is_identity_unavailable() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (em_addr, _em) = start_emulator_api(em_config()).await;
    let dir = TempDir::new("down");
    std::fs::write(dir.path("sid"), "AKIDlogin").unwrap();
    std::fs::write(dir.path("skey"), "login-secret-key").unwrap();
    std::fs::write(
        dir.path("seats.toml"),
        "alice = \"agent-alice@example.com\"",
    )
    .unwrap();
    let extra = format!(
        "\n[tccc]\nsdk_app_id = {APP}\nendpoint = \"http://{em_addr}\"\nsecret_id_file = \"{}\"\nsecret_key_file = \"{}\"\n\n[identity]\n{IDENTITY}\n\n[seats]\nfile = \"{}\"\n",
        dir.path("sid").display(),
        dir.path("skey").display(),
        dir.path("seats.toml").display()
    );
    let side = Sidecar::start(&format!("http://{closed}"), "", &extra).await;
    let mut c = side.h1().await;
    let (s, _, v) = login(&mut c, &[("cookie", "sid=s-alice")]).await;
    assert_error(s, &v, 503, "identity_unavailable");
}

#[tokio::test]
async fn concurrent_requests_for_one_session_make_one_whoami_call() {
    let crm = handler(|_s: Seen| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Response::builder()
            .header("content-type", "application/json")
            .body(full("{\"user\":{\"id\":\"alice\"}}"))
            .unwrap()
    });
    let env = Env::start(Opts {
        identity: IDENTITY,
        crm: Some(crm),
        ..Opts::default()
    })
    .await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (addr, ca) = (env.side.addr, env.side.ca_pem.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, &ca, Proto::H1, None).await;
            login(&mut c, &[("cookie", "sid=same")]).await.0
        }));
    }
    for t in tasks {
        assert_eq!(within("login", t).await.unwrap(), 200);
    }
    assert_eq!(whoami_calls(&env), 1);
    assert_eq!(env.issued(ALICE_SEAT), 10);
}

#[tokio::test]
async fn a_proxied_logout_forgets_the_session() {
    let env = Env::start(Opts {
        identity: IDENTITY,
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    let (s, _, _) = login(&mut c, &[("cookie", "sid=s-alice")]).await;
    assert_eq!(s, 200);
    let (s, _, _) = login(&mut c, &[("cookie", "sid=s-alice")]).await;
    assert_eq!(s, 200);
    assert_eq!(whoami_calls(&env), 1);
    // Case, a ;jsessionid= parameter and the query do not hide the logout path.
    let req = Request::get("/LogOut;jsessionid=ABC123?next=/")
        .header("cookie", "sid=s-alice")
        .body(empty())
        .unwrap();
    let (parts, _) = read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 200);
    assert_eq!(
        env.crm_calls("/LogOut;jsessionid=ABC123").len(),
        1,
        "the CRM saw the logout"
    );
    let (s, _, _) = login(&mut c, &[("cookie", "sid=s-alice")]).await;
    assert_eq!(s, 200);
    assert_eq!(
        whoami_calls(&env),
        2,
        "the session was asked about again after logout"
    );
    // Other paths do not invalidate.
    let (parts, _) = c.get("/logout-help").await;
    assert_eq!(parts.status, 200);
    let (s, _, _) = login(&mut c, &[("cookie", "sid=s-alice")]).await;
    assert_eq!(s, 200);
    assert_eq!(whoami_calls(&env), 2);
}

#[tokio::test]
async fn a_whoami_url_on_another_origin_is_refused_at_load() {
    let text = base_toml(
        &TempDir::new("x"),
        "http://127.0.0.1:8080",
        "",
        "\n[identity]\nmode = \"introspect\"\nurl = \"https://sso.example.com/whoami\"\ncookies = [\"sid\"]\n",
    );
    let e = tccc_sidecar::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap_err();
    assert_eq!(e.key, "identity.url");
    assert!(e.to_string().contains("upstream's origin"), "{e}");
    let ok = base_toml(
        &TempDir::new("y"),
        "http://127.0.0.1:8080",
        "",
        "\n[identity]\nmode = \"introspect\"\nurl = \"http://127.0.0.1:8080/api/me\"\ncookies = [\"sid\"]\n",
    );
    assert!(tccc_sidecar::config::Config::parse(&ok, std::path::Path::new("t.toml")).is_ok());
}

#[tokio::test]
async fn random_cookies_cannot_hammer_whoami_past_the_per_client_limit() {
    let env = Env::start(Opts {
        identity: IDENTITY,
        login: "per_client_rate = \"3/min\"",
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    for i in 0..10 {
        let cookie = format!("sid=random-{i}");
        let (s, _, v) = login(&mut c, &[("cookie", &cookie)]).await;
        let want = if i < 3 { 401 } else { 429 };
        assert_eq!(s, want, "request {i}: {v}");
    }
    assert_eq!(
        whoami_calls(&env),
        3,
        "limited requests never reached the CRM"
    );
}

/// The page source with Basic credentials keeps the rest of introspection: what the request
/// carries, one call per key under concurrency, logout, and a slow app being 503, uncached.
#[tokio::test]
async fn a_page_read_with_basic_credentials_is_cached_shared_under_load_and_forgotten_on_logout() {
    let crm = handler(|s: Seen| async move {
        let auth = s
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        if auth == "Basic c2xvdzp4" {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let user = match auth.as_str() {
            "Basic YWxpY2U6eA==" => "alice",
            "Basic Ym9iOng=" => "bob",
            _ => return Response::builder().status(401).body(empty()).unwrap(),
        };
        Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .body(full(format!(
                "<html><body><p class=who>Signed in: <b>{user}</b></p><p>Signed in: <b>mallory</b></p></body></html>"
            )))
            .unwrap()
    });
    let env = Env::start(Opts {
        identity: "mode = \"introspect\"\nurl = \"/whoami.html\"\nforward_authorization = true\n\
                   user_selector = \"p.who b\"\nlogout_paths = [\"/logout\"]\ntimeout = \"300ms\"",
        crm: Some(crm),
        ..Opts::default()
    })
    .await;
    let calls = |env: &Env| env.crm_calls("/whoami.html").len();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (addr, ca) = (env.side.addr, env.side.ca_pem.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, &ca, Proto::H1, None).await;
            login(
                &mut c,
                &[
                    ("authorization", "Basic YWxpY2U6eA=="),
                    ("cookie", "tracking=t1"),
                ],
            )
            .await
            .0
        }));
    }
    for t in tasks {
        assert_eq!(within("login", t).await.unwrap(), 200);
    }
    assert_eq!(calls(&env), 1, "one call for ten concurrent requests");
    assert_eq!(env.issued(ALICE_SEAT), 10);
    let seen = &env.crm_calls("/whoami.html")[0].headers;
    assert_eq!(seen.get("authorization").unwrap(), "Basic YWxpY2U6eA==");
    assert!(seen.get("cookie").is_none(), "no cookie is configured");
    assert_eq!(seen.get("accept").unwrap(), "text/html");

    let mut c = env.side.h1().await;
    let (s, _, v) = login(&mut c, &[("authorization", "Basic Ym9iOng=")]).await;
    assert_token(s, &v);
    assert_eq!(env.issued(BOB_SEAT), 1);
    assert_eq!(calls(&env), 2);
    // A logout through the proxy forgets alice's entry: the next request asks again.
    let req = Request::get("/logout")
        .header("authorization", "Basic YWxpY2U6eA==")
        .body(empty())
        .unwrap();
    let (parts, _) = read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 200);
    let (s, _, _) = login(&mut c, &[("authorization", "Basic YWxpY2U6eA==")]).await;
    assert_eq!(s, 200);
    assert_eq!(calls(&env), 3);
    // A wrong password is the app's 401: refused, and cached briefly like any "no".
    let (s, _, v) = login(&mut c, &[("authorization", "Basic ZXZlOng=")]).await;
    assert_error(s, &v, 401, "unauthenticated");
    // A slow app is 503 and is asked again next time.
    for _ in 0..2 {
        let (s, _, v) = login(&mut c, &[("authorization", "Basic c2xvdzp4")]).await;
        assert_error(s, &v, 503, "identity_unavailable");
    }
    assert_eq!(calls(&env), 6);
}

/// What `/__tccc/diag` says (the JSON the page is built from): its `cookies` list.
async fn diag_cookies(env: &Env) -> serde_json::Value {
    let mut c = env.side.h1().await;
    let (parts, body) = c.get("/__tccc/diag").await;
    assert_eq!(parts.status, 200);
    let html = String::from_utf8_lossy(&body).to_string();
    let json = html
        .split("id=\"tccc-diag-config\">")
        .nth(1)
        .and_then(|r| r.split("</script>").next())
        .expect("the diagnostics page's data");
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["cookies"].clone()
}

#[tokio::test]
async fn a_session_cookie_that_cannot_reach_the_login_path_is_named_once_with_the_fix() {
    let (logs, _guard) = Logs::capture();
    // An app as Roundup is: its session cookie scoped to the tracker's path, and renamed with
    // a __Secure- prefix once it knows it is served over HTTPS.
    let crm = handler(|s: Seen| async move {
        let cookie = match s.uri.path() {
            "/demo/login" => "sid=s-alice; Path=/demo/; HttpOnly",
            "/secure/login" => "__Secure-sid=s-alice; Path=/; Secure; HttpOnly",
            _ => "theme=dark; Path=/elsewhere/",
        };
        Response::builder()
            .header("set-cookie", cookie)
            .body(full("signed in"))
            .unwrap()
    });
    let env = Env::start(Opts {
        identity: IDENTITY,
        crm: Some(crm),
        ..Opts::default()
    })
    .await;
    assert_eq!(
        diag_cookies(&env).await,
        serde_json::json!([]),
        "nothing seen yet"
    );
    let mut c = env.side.h1().await;
    // Another cookie's path is nobody's business.
    c.get("/home").await;
    for _ in 0..3 {
        let (parts, _) = c.get("/demo/login").await;
        // The app's cookie reaches the browser as the app set it (plus Secure).
        assert_eq!(
            parts.headers["set-cookie"],
            "sid=s-alice; Path=/demo/; HttpOnly; Secure"
        );
    }
    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("will not reach the login endpoint"))
        .collect();
    assert_eq!(lines.len(), 1, "said once: {text}");
    assert!(
        lines[0].contains(
            "sets its session cookie sid with Path=/demo/, so browsers never send it to /loginTCCC"
        ) && lines[0].contains("set login.path under /demo/ (for example /demo/loginTCCC)"),
        "{}",
        lines[0]
    );
    assert!(
        !text.contains("s-alice"),
        "a cookie's value reached the log"
    );
    c.get("/secure/login").await;
    let text = logs.text();
    assert!(
        text.contains("sets its session cookie as __Secure-sid, but [identity] names sid")
            && text.contains("name the cookie __Secure-sid in identity.cookies"),
        "{text}"
    );
    // The diagnostics page shows both, with their fixes, and no cookie value.
    let cookies = diag_cookies(&env).await;
    assert_eq!(cookies.as_array().map(Vec::len), Some(2), "{cookies}");
    assert!(cookies[0]["fix"]
        .as_str()
        .unwrap()
        .contains("set login.path under /demo/"));
    assert!(cookies[1]["fix"]
        .as_str()
        .unwrap()
        .contains("__Secure-sid in identity.cookies"));
    assert!(!cookies.to_string().contains("s-alice"));
    assert_eq!(
        text.matches("will not reach the login endpoint").count(),
        2,
        "each problem once"
    );

    // With the login path under the cookie's, the same answers say nothing.
    let logs_before = logs.text().len();
    let env = Env::start(Opts {
        identity: IDENTITY,
        login: "path = \"/demo/loginTCCC\"",
        crm: Some(handler(|_s: Seen| async move {
            Response::builder()
                .header("set-cookie", "sid=s-alice; Path=/demo/")
                .body(full("signed in"))
                .unwrap()
        })),
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    c.get("/demo/login").await;
    assert!(!logs.text()[logs_before..].contains("will not reach"));
    assert_eq!(diag_cookies(&env).await, serde_json::json!([]));
}
