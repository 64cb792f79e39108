//! What crosses the proxy: method, target, bodies, hop-by-hop rules, forwarding headers,
//! Host, and the response rewrites for legacy HTTP apps. HTTP/1.1 and HTTP/2 clients alike.

use crate::common::*;
use http::{Method, Request, Response, StatusCode, Version};
use std::net::IpAddr;
use tokio::io::AsyncWriteExt;

const UNTRUSTED: &str = "127.0.0.2";

fn untrusted() -> Option<IpAddr> {
    Some(UNTRUSTED.parse().unwrap())
}

#[tokio::test]
async fn forwards_method_target_and_bodies_both_ways() {
    let up = Upstream::start(handler(|s| async move {
        Response::builder()
            .status(201)
            .header("x-from-upstream", "1")
            .body(full(format!("echo:{}", String::from_utf8_lossy(&s.body))))
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        let req = Request::post("/a/b%20c?x=1&y=%2F")
            .header("content-type", "text/plain")
            .body(full("hello"))
            .unwrap();
        let (parts, body) = read(c.send(req).await.unwrap()).await;
        assert_eq!(parts.status, StatusCode::CREATED, "{proto:?}");
        assert_eq!(body, "echo:hello");
        assert_eq!(parts.headers["x-from-upstream"], "1");
        let seen = up.requests().pop().unwrap();
        assert_eq!(seen.method, Method::POST);
        assert_eq!(seen.uri, "/a/b%20c?x=1&y=%2F");
        assert_eq!(
            seen.version,
            Version::HTTP_11,
            "upstream always gets HTTP/1.1"
        );
        assert_eq!(seen.body, "hello");
        assert_eq!(seen.headers["content-type"], "text/plain");
        assert_eq!(seen.headers["via"], "1.1 tccc-sidecar");
        assert_eq!(parts.headers["via"], "1.1 tccc-sidecar");
    }
}

#[tokio::test]
async fn removes_hop_by_hop_and_connection_listed_request_headers() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut s = side.raw().await;
    s.write_all(
        b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, X-Secret-Hop\r\n\
          X-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
          Trailer: X-T\r\nProxy-Authorization: Basic eDp5\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n",
    )
    .await
    .unwrap();
    let head = within("response", read_head(&mut s)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = up.requests().pop().unwrap();
    for name in [
        "x-secret-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "proxy-authorization",
        "upgrade",
    ] {
        assert!(
            !seen.headers.contains_key(name),
            "{name} reached the upstream"
        );
    }
    // The only Connection value the upstream sees is what hyper's client sends for pooling.
    assert!(seen
        .headers
        .get("connection")
        .is_none_or(|v| v != "keep-alive, X-Secret-Hop"));
    assert_eq!(seen.headers["x-kept"], "yes");
}

#[tokio::test]
async fn connection_header_cannot_strip_headers_the_proxy_sets() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.client(Proto::H1, untrusted()).await;
    let req = Request::get("/")
        .header(
            "connection",
            "X-Forwarded-For, X-Real-IP, Via, X-Request-Id, Forwarded, X-Forwarded-Proto",
        )
        .body(empty())
        .unwrap();
    let (parts, _) = read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 200);
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], UNTRUSTED);
    assert_eq!(seen.headers["x-real-ip"], UNTRUSTED);
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["via"], "1.1 tccc-sidecar");
    assert!(seen.headers.contains_key("x-request-id"));
    assert!(seen.headers["forwarded"]
        .to_str()
        .unwrap()
        .starts_with("for=127.0.0.2;proto=https"));
}

#[tokio::test]
async fn untrusted_client_cannot_spoof_its_address_or_routing_headers() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    for proto in BOTH {
        let mut c = side.client(proto, untrusted()).await;
        let req = Request::get("/")
            .header("x-forwarded-for", "10.9.9.9")
            .header("x-forwarded-host", "admin.internal")
            .header("x-forwarded-proto", "http")
            .header("forwarded", "for=10.9.9.9;host=admin.internal")
            .header("x-real-ip", "10.9.9.9")
            .header("true-client-ip", "10.9.9.9")
            .header("x-client-ip", "10.9.9.9")
            .header("x-forwarded-prefix", "/evil")
            .header("x-original-url", "/admin/delete")
            .header("x-rewrite-url", "/admin/delete")
            .header("x-request-id", "attacker-chosen")
            .body(empty())
            .unwrap();
        let (parts, _) = read(c.send(req).await.unwrap()).await;
        assert_eq!(parts.status, 200);
        let seen = up.requests().pop().unwrap();
        assert_eq!(seen.headers["x-forwarded-for"], UNTRUSTED, "{proto:?}");
        assert_eq!(seen.headers["x-real-ip"], UNTRUSTED);
        assert_eq!(seen.headers["x-forwarded-proto"], "https");
        assert_eq!(seen.headers["x-forwarded-host"], "localhost");
        assert_eq!(
            seen.headers["forwarded"],
            "for=127.0.0.2;proto=https;host=localhost"
        );
        for gone in [
            "true-client-ip",
            "x-client-ip",
            "x-forwarded-prefix",
            "x-original-url",
            "x-rewrite-url",
        ] {
            assert!(
                !seen.headers.contains_key(gone),
                "{gone} reached the upstream over {proto:?}"
            );
        }
        assert_ne!(seen.headers["x-request-id"], "attacker-chosen");
    }
}

#[tokio::test]
async fn trusted_proxy_chain_is_extended_and_its_request_id_kept() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.client(Proto::H1, None).await; // from 127.0.0.1, which the harness trusts
    let req = Request::get("/")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "oa.example.com")
        .header("x-request-id", "lb-1234")
        .header("true-client-ip", "203.0.113.7")
        .body(empty())
        .unwrap();
    read(c.send(req).await.unwrap()).await;
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen.headers["x-real-ip"], "203.0.113.7");
    assert_eq!(seen.headers["x-forwarded-host"], "oa.example.com");
    assert_eq!(seen.headers["x-request-id"], "lb-1234");
    assert_eq!(seen.headers["true-client-ip"], "203.0.113.7");
}

#[tokio::test]
async fn host_is_preserved_from_host_header_and_h2_authority() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        let req = Request::get("/")
            .header("host", "oa.example.com:8443")
            .body(empty())
            .unwrap();
        read(c.send(req).await.unwrap()).await;
        let seen = up.requests().pop().unwrap();
        assert_eq!(seen.headers["host"], "oa.example.com:8443", "{proto:?}");
        assert_eq!(seen.headers.get_all("host").iter().count(), 1);
    }
}

#[tokio::test]
async fn absolute_form_target_must_name_the_host_it_came_with() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    // Two hosts in one request: the sidecar and the upstream could each believe another.
    let out = raw_exchange(
        &side,
        b"GET http://oa.example.com/p?q=1 HTTP/1.1\r\nHost: other.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert_eq!(up.count(), 0);
    let out = raw_exchange(
        &side,
        b"GET http://OA.example.com/p?q=1 HTTP/1.1\r\nHost: oa.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.headers["host"], "OA.example.com");
    assert_eq!(seen.uri, "/p?q=1");
}

#[tokio::test]
async fn unknown_host_gets_421_and_never_reaches_the_upstream() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "server_names = [\"oa.example.com\"]", "").await;
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        let req = Request::get("/")
            .header("host", "evil.example.com")
            .body(empty())
            .unwrap();
        let (parts, body) = read(c.send(req).await.unwrap()).await;
        assert_eq!(parts.status, StatusCode::MISDIRECTED_REQUEST, "{proto:?}");
        assert!(String::from_utf8_lossy(&body).contains("421"));
        let req = Request::get("/")
            .header("host", "OA.example.com:8443")
            .body(empty())
            .unwrap();
        let (parts, _) = read(c.send(req).await.unwrap()).await;
        assert_eq!(
            parts.status, 200,
            "allowed names match case-insensitively, any port"
        );
    }
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn http11_request_without_host_is_refused() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let out = raw_exchange(&side, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    let out = raw_exchange(
        &side,
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn h2_cookie_crumbs_are_joined_for_the_h1_upstream() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h2().await;
    let req = Request::get("/")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(empty())
        .unwrap();
    read(c.send(req).await.unwrap()).await;
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.headers.get_all("cookie").iter().count(), 1);
    assert_eq!(seen.headers["cookie"], "a=1; b=2");
}

#[tokio::test]
async fn h2_client_never_receives_connection_specific_fields_from_h1_upstream() {
    let up = RawUpstream::start(|mut s, _| async move {
        while read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n\
                      Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Hop: 1\r\nTransfer-Encoding: chunked\r\n\
                      X-End-To-End: kept\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                )
                .await;
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        let (parts, body) = c.get("/").await;
        assert_eq!(parts.status, 200, "{proto:?}");
        assert_eq!(body, "hello");
        assert_eq!(parts.headers["x-end-to-end"], "kept");
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "upgrade",
            "x-hop",
        ] {
            assert!(
                !parts.headers.contains_key(name),
                "{name} reached the {proto:?} client"
            );
        }
        if proto == Proto::H2 {
            assert!(!parts.headers.contains_key("transfer-encoding"));
        }
    }
}

#[tokio::test]
async fn redirects_to_the_upstream_origin_are_rewritten_to_the_public_origin() {
    let up = Upstream::start(handler(|s| async move {
        let target = match s.uri.path() {
            "/own" => format!(
                "http://{}/login?next=%2F",
                s.headers["x-up-addr"].to_str().unwrap()
            ),
            "/host" => "http://localhost/home".to_string(),
            _ => "https://sso.example.com/auth".to_string(),
        };
        Response::builder()
            .status(302)
            .header("location", target.clone())
            .header("content-location", target.clone())
            .header("refresh", format!("0; url={target}"))
            .body(empty())
            .unwrap()
    }))
    .await;
    let up_addr = up.addr.to_string();
    let side = Sidecar::start(&up.url(), "", "").await;
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        let mut req = get("/own");
        req.headers_mut()
            .insert("x-up-addr", up_addr.parse().unwrap());
        let (parts, _) = read(c.send(req).await.unwrap()).await;
        assert_eq!(
            parts.headers["location"], "https://localhost/login?next=%2F",
            "{proto:?}"
        );
        assert_eq!(
            parts.headers["content-location"],
            "https://localhost/login?next=%2F"
        );
        assert_eq!(
            parts.headers["refresh"],
            "0; url=https://localhost/login?next=%2F"
        );
        let (parts, _) = c.get("/host").await;
        assert_eq!(parts.headers["location"], "https://localhost/home");
        let (parts, _) = c.get("/other").await;
        assert_eq!(parts.headers["location"], "https://sso.example.com/auth");
    }
}

#[tokio::test]
async fn an_app_that_knows_itself_by_an_internal_address_keeps_its_redirects_and_cookies() {
    // The app's configured base URL is http://oa.intranet:8080 (as legacy OA systems and
    // Roundup's `web` setting are): its redirects and its cookie's Domain name that host.
    let up = Upstream::start(handler(|s| async move {
        let target = match s.uri.path() {
            "/login" => "http://oa.intranet:8080/home?x=1",
            "/default-port" => "https://oa.intranet/secure",
            _ => "http://oa.intranet:8081/other-port",
        };
        Response::builder()
            .status(302)
            .header("location", target)
            .header(
                "set-cookie",
                "sid=s-1; Domain=oa.intranet; Path=/; HttpOnly",
            )
            .header("set-cookie", "lang=zh; Domain=.example.com; Path=/")
            .body(empty())
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(
        &up.url(),
        "",
        "internal_origins = [\"http://oa.intranet:8080\", \"https://oa.intranet\"]",
    )
    .await;
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        let (parts, _) = c.get("/login").await;
        assert_eq!(
            parts.headers["location"], "https://localhost/home?x=1",
            "{proto:?}"
        );
        let cookies: Vec<&str> = parts
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        // The browser would drop a cookie for oa.intranet: it becomes the public host's.
        assert_eq!(
            cookies,
            [
                "sid=s-1; Path=/; HttpOnly; Secure",
                "lang=zh; Domain=.example.com; Path=/; Secure"
            ]
        );
        let (parts, _) = c.get("/default-port").await;
        assert_eq!(parts.headers["location"], "https://localhost/secure");
        // Another port of that host is another origin: left alone.
        let (parts, _) = c.get("/x").await;
        assert_eq!(
            parts.headers["location"],
            "http://oa.intranet:8081/other-port"
        );
    }
    // Without the setting, the internal address is the app's business (and the browser's
    // problem): nothing is guessed.
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut c = side.h1().await;
    let (parts, _) = c.get("/login").await;
    assert_eq!(
        parts.headers["location"],
        "http://oa.intranet:8080/home?x=1"
    );
}

#[tokio::test]
async fn public_origin_is_used_for_rewrites_when_configured() {
    let up = Upstream::start(handler(|s| async move {
        let loc = format!("http://{}/x", s.headers["host"].to_str().unwrap());
        Response::builder()
            .status(301)
            .header("location", loc)
            .body(empty())
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "public_origin = \"https://oa.example.com\"", "").await;
    let mut c = side.h1().await;
    let (parts, _) = c.get("/").await;
    // The app built its URL from the Host it was given (localhost), over http.
    assert_eq!(parts.headers["location"], "https://oa.example.com/x");
}

#[tokio::test]
async fn cookies_get_secure_hsts_and_upgrade_insecure_requests_when_configured() {
    let up = Upstream::start(handler(|_| async move {
        Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("set-cookie", "JSESSIONID=abc; Path=/; HttpOnly")
            .header("set-cookie", "pref=1; Secure")
            .body(full("<html></html>"))
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(
        &up.url(),
        "hsts = \"max-age=31536000\"\nupgrade_insecure_requests = true",
        "",
    )
    .await;
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        let (parts, _) = c.get("/").await;
        let cookies: Vec<_> = parts
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            cookies,
            ["JSESSIONID=abc; Path=/; HttpOnly; Secure", "pref=1; Secure"],
            "{proto:?}"
        );
        assert_eq!(
            parts.headers["strict-transport-security"],
            "max-age=31536000"
        );
        assert_eq!(
            parts.headers["content-security-policy"],
            "upgrade-insecure-requests"
        );
    }
}

#[tokio::test]
async fn secure_cookies_can_be_turned_off() {
    let up = Upstream::start(handler(|_| async move {
        Response::builder()
            .header("set-cookie", "a=1")
            .body(empty())
            .unwrap()
    }))
    .await;
    let side = Sidecar::start(&up.url(), "secure_cookies = false\nvia = false", "").await;
    let (parts, _) = side.h1().await.get("/").await;
    assert_eq!(parts.headers["set-cookie"], "a=1");
    assert!(!parts.headers.contains_key("via"));
    assert!(!up.requests()[0].headers.contains_key("via"));
}
