//! Shell mode over the wire: which request gets the shell, which the bridge and which script
//! mode; the user fingerprint both in framed pages and in the token answer; framing headers
//! relaxed for same-origin iframes only; cross-origin redirects in the frame; the sidecar's
//! own fallback cookie. Each test checks what the client got and what the upstream received.
//! (The browser side is in `browser.rs`.)

use crate::common::*;
use crate::login_common::*;
use http::{Method, Request, Response};
use serde_json::Value;

const INTROSPECT: &str =
    "mode = \"introspect\"\nurl = \"/api/whoami\"\ncookies = [\"sid\"]\nuser_pointer = \"/user/id\"";

/// A CRM whose pages say which path they are, with the framing headers scanners ask for, a
/// login page for nobody, and whoami from `login_common`.
fn crm() -> Handler {
    let whoami = crm_handler();
    handler(move |s: Seen| {
        let whoami = whoami.clone();
        async move {
            match s.uri.path() {
                "/api/whoami" => whoami(s).await,
                "/sso" => Response::builder()
                    .status(302)
                    .header("location", "https://sso.example/login?next=</script><b>x")
                    .header("set-cookie", "sso_state=abc; Path=/; Secure")
                    .body(empty())
                    .unwrap(),
                "/local-redirect" => Response::builder()
                    .status(302)
                    .header("location", "/login")
                    .body(empty())
                    .unwrap(),
                path => Response::builder()
                    .header("content-type", "text/html; charset=utf-8")
                    .header("x-frame-options", "DENY")
                    .header(
                        "content-security-policy",
                        "frame-ancestors 'none'; img-src 'self'",
                    )
                    .header("cache-control", "public, max-age=60")
                    .body(full(format!(
                        "<!doctype html><html><head><title>Page {path}</title></head><body><p>{} {path}</p></body></html>",
                        s.method
                    )))
                    .unwrap(),
            }
        }
    })
}

async fn env(inject: &str) -> Env {
    let seats_extra = format!("\n[inject]\n{inject}\n");
    Env::start(Opts {
        identity: INTROSPECT,
        crm: Some(crm()),
        seats_extra: &seats_extra,
        ..Default::default()
    })
    .await
}

fn nav(method: Method, path: &str, dest: &str, site: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("sec-fetch-dest", dest)
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", site);
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    b.body(empty()).unwrap()
}

async fn fetch(c: &mut Client, req: Request<Body>) -> (http::response::Parts, String) {
    let (parts, body) = read(c.send(req).await.unwrap()).await;
    (parts, String::from_utf8_lossy(&body).into_owned())
}

fn header<'a>(p: &'a http::response::Parts, name: &str) -> Vec<&'a str> {
    p.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// The loader-path tags a page carries.
fn tags(html: &str) -> Vec<String> {
    html.match_indices("<script src=\"/__tccc/loader.js")
        .map(|(i, _)| html[i..i + html[i..].find('>').unwrap() + 1].to_string())
        .collect()
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let v = tag.split(&format!(" {name}=\"")).nth(1)?;
    Some(v[..v.find('"')?].to_string())
}

#[tokio::test]
async fn a_top_level_navigation_gets_the_shell_and_the_upstream_is_not_asked() {
    let e = env("mode = \"shell\"").await;
    for mut c in [e.side.h1().await, e.side.h2().await] {
        let (p, html) = fetch(
            &mut c,
            nav(
                Method::GET,
                "/customers?id=7",
                "document",
                "none",
                Some("sid=s-alice"),
            ),
        )
        .await;
        assert_eq!(p.status, 200);
        assert_eq!(header(&p, "cache-control"), vec!["no-store"]);
        assert_eq!(header(&p, "vary"), vec!["Sec-Fetch-Dest"]);
        assert_eq!(header(&p, "x-frame-options"), vec!["DENY"]);
        let csp = header(&p, "content-security-policy").join(", ");
        assert!(csp.starts_with("frame-ancestors 'none';"), "{csp}");
        assert!(html.contains("<html data-tccc-shell>"), "{html}");
        assert!(html.contains("<iframe id=\"tccc-shell-frame\""), "{html}");
        assert!(!html.contains("GET /customers"), "not the CRM's page");
        // The loader (deferred) and the shell script, both with the policy's nonce.
        let t = tags(&html);
        assert_eq!(t.len(), 2, "{html}");
        let nonce = attr(&t[0], "nonce").unwrap();
        assert!(csp.contains(&format!("'nonce-{nonce}'")), "{csp}");
        assert!(
            t[0].contains(" defer") && t[1].contains("loader.js?shell"),
            "{t:?}"
        );
        assert_eq!(attr(&t[1], "nonce").unwrap(), nonce);
        // Without scripts the frame shows the same address, on this origin.
        assert!(
            html.contains("<noscript><iframe src=\"/customers?id=7\""),
            "{html}"
        );
    }
    assert_eq!(e.crm.count(), 0, "the upstream was not asked");
    assert_eq!(
        metric(
            &e.side.metrics(),
            "tccc_sidecar_shell_total{outcome=\"shell\"}"
        ),
        2.0
    );
    // A request target that would be another origin for the frame stays on this one.
    let mut c = e.side.h1().await;
    let (_, html) = fetch(
        &mut c,
        nav(Method::GET, "//evil.example/x", "document", "none", None),
    )
    .await;
    assert!(
        html.contains("<noscript><iframe src=\"/evil.example/x\""),
        "{html}"
    );
}

#[tokio::test]
async fn framed_pages_get_the_bridge_with_their_users_fingerprint() {
    let e = env("mode = \"shell\"").await;
    let mut c = e.side.h2().await;
    let mut seen = Vec::new();
    for cookie in [Some("sid=s-alice"), Some("sid=s-bob"), None] {
        let (p, html) = fetch(
            &mut c,
            nav(Method::GET, "/customers", "iframe", "same-origin", cookie),
        )
        .await;
        assert_eq!(p.status, 200);
        assert!(
            html.contains("<p>GET /customers</p>"),
            "the CRM's page: {html}"
        );
        let t = tags(&html);
        assert_eq!(t.len(), 1, "one tag: {html}");
        assert!(
            t[0].starts_with("<script src=\"/__tccc/loader.js?bridge\""),
            "{}",
            t[0]
        );
        assert!(
            !t[0].contains("defer"),
            "the bridge runs before the page's scripts"
        );
        assert!(t[0].contains(" data-tccc-loader"), "{}", t[0]);
        assert_eq!(
            header(&p, "cache-control"),
            vec!["no-store"],
            "not the upstream's public"
        );
        assert!(header(&p, "vary").contains(&"Sec-Fetch-Dest"));
        seen.push(attr(&t[0], "data-tccc-user").unwrap());
    }
    assert_eq!(seen[0].len(), 32, "{seen:?}");
    assert_ne!(seen[0], seen[1], "alice and bob differ");
    assert_eq!(seen[2], "-", "nobody signed in");
    assert!(!seen[0].contains("alice"));
    // The token answer names the same fingerprint, so the shell can compare them.
    let (status, _, v) = login(&mut c, &[("cookie", "sid=s-alice")]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["User"], Value::String(seen[0].clone()));
    // What the upstream received: the three page requests as sent, and whoami asked (once,
    // then cached) for each signed-in user, with their own session only.
    let pages = e.crm_calls("/customers");
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].headers["cookie"], "sid=s-alice");
    let whoami: Vec<String> = e
        .crm_calls("/api/whoami")
        .iter()
        .map(|s| s.headers["cookie"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(whoami, vec!["sid=s-alice", "sid=s-bob"]);
    // A framed page that answers a form POST gets its bridge too.
    let (p, html) = fetch(
        &mut c,
        nav(
            Method::POST,
            "/customers/1/notes",
            "iframe",
            "same-origin",
            Some("sid=s-alice"),
        ),
    )
    .await;
    assert_eq!(p.status, 200);
    assert!(html.contains("<p>POST /customers/1/notes</p>"), "{html}");
    assert_eq!(tags(&html).len(), 1, "{html}");
    assert_eq!(e.crm_calls("/customers/1/notes")[0].method, Method::POST);
    assert_eq!(
        metric(
            &e.side.metrics(),
            "tccc_sidecar_shell_total{outcome=\"framed\"}"
        ),
        4.0
    );
}

#[tokio::test]
async fn the_token_answer_is_unchanged_in_script_mode() {
    let e = env("").await;
    let mut c = e.side.h1().await;
    let (status, _, v) = login(&mut c, &[("cookie", "sid=s-alice")]).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("User").is_none(), "{v}");
}

#[tokio::test]
async fn requests_shell_mode_does_not_take_get_script_mode() {
    let e = env("mode = \"shell\"\nexclude = [\"/api/\"]").await;
    let mut c = e.side.h1().await;
    // No Fetch Metadata (an old browser, or a hop that strips it): the page with the loader.
    let (p, html) = fetch(
        &mut c,
        Request::get("/customers")
            .header("cookie", "sid=s-alice")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert!(html.contains("<p>GET /customers</p>"), "{html}");
    let t = tags(&html);
    assert_eq!(t.len(), 1);
    assert!(t[0].ends_with("data-tccc-loader defer>"), "{}", t[0]);
    assert!(header(&p, "vary").contains(&"Sec-Fetch-Dest"));
    assert_eq!(header(&p, "x-frame-options"), vec!["DENY"], "untouched");
    // A top-level POST (SAML or OIDC form_post) goes through.
    let (_, html) = fetch(
        &mut c,
        nav(Method::POST, "/sso/acs", "document", "cross-site", None),
    )
    .await;
    assert!(html.contains("<p>POST /sso/acs</p>"), "{html}");
    // A download and an excluded path: no shell left behind.
    for path in ["/files/q3-report.xlsx", "/api/page"] {
        let (_, html) = fetch(&mut c, nav(Method::GET, path, "document", "none", None)).await;
        assert!(html.contains(&format!("<p>GET {path}</p>")), "{html}");
    }
    // A frame of another site, or one a page of another site nests: never the shell, and the
    // framing headers stay.
    for site in ["cross-site", "same-site"] {
        let (p, html) = fetch(&mut c, nav(Method::GET, "/customers", "iframe", site, None)).await;
        assert!(html.contains("<p>GET /customers</p>"), "{html}");
        assert_eq!(header(&p, "x-frame-options"), vec!["DENY"], "{site}");
        assert!(tags(&html)[0].ends_with("defer>"), "script mode for {site}");
    }
    // The frame-busting fallback: the sidecar's cookie means script mode for a navigation,
    // and it never reaches the upstream (the other cookies do).
    let (_, html) = fetch(
        &mut c,
        nav(
            Method::GET,
            "/busting",
            "document",
            "same-origin",
            Some("sid=s-alice; __tccc_shell=off; theme=dark"),
        ),
    )
    .await;
    assert!(html.contains("<p>GET /busting</p>"), "{html}");
    assert!(tags(&html)[0].ends_with("defer>"));
    let busting = e.crm_calls("/busting");
    assert_eq!(busting[0].headers["cookie"], "sid=s-alice; theme=dark");
    assert_eq!(
        metric(
            &e.side.metrics(),
            "tccc_sidecar_shell_total{outcome=\"script_fallback\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &e.side.metrics(),
            "tccc_sidecar_shell_total{outcome=\"shell\"}"
        ),
        0.0
    );
}

#[tokio::test]
async fn framing_headers_are_relaxed_for_same_origin_iframes_only() {
    let e = env("mode = \"shell\"").await;
    let mut c = e.side.h1().await;
    let (p, _) = fetch(
        &mut c,
        nav(Method::GET, "/p", "iframe", "same-origin", None),
    )
    .await;
    assert_eq!(header(&p, "x-frame-options"), vec!["SAMEORIGIN"]);
    assert_eq!(
        header(&p, "content-security-policy"),
        vec!["frame-ancestors 'self'; img-src 'self'"],
        "'self' added, nothing else changed"
    );
    // The same page outside the shell's frame keeps DENY: a top-level load (fallback), a
    // frameset's frame, another site's frame, a browser without Fetch Metadata.
    let outside = [
        nav(
            Method::GET,
            "/p",
            "document",
            "none",
            Some("__tccc_shell=off"),
        ),
        nav(Method::GET, "/p", "frame", "same-origin", None),
        nav(Method::GET, "/p", "iframe", "cross-site", None),
        Request::get("/p").body(empty()).unwrap(),
    ];
    for req in outside {
        let (p, _) = fetch(&mut c, req).await;
        assert_eq!(header(&p, "x-frame-options"), vec!["DENY"]);
        assert_eq!(
            header(&p, "content-security-policy"),
            vec!["frame-ancestors 'none'; img-src 'self'"]
        );
    }
}

#[tokio::test]
async fn a_framed_redirect_to_another_origin_takes_the_whole_tab_there() {
    let e = env("mode = \"shell\"").await;
    let mut c = e.side.h1().await;
    let (p, html) = fetch(
        &mut c,
        nav(Method::GET, "/sso", "iframe", "same-origin", None),
    )
    .await;
    assert_eq!(p.status, 200);
    assert_eq!(
        header(&p, "set-cookie"),
        vec!["sso_state=abc; Path=/; Secure"],
        "kept"
    );
    assert_eq!(header(&p, "cache-control"), vec!["no-store"]);
    assert!(
        html.contains(
            "var u=\"https://sso.example/login?next=\\u003c/script\\u003e\\u003cb\\u003ex\""
        ),
        "the address as a script string, nothing that ends the script: {html}"
    );
    assert!(!html.contains("</script><b>"), "{html}");
    let nonce = attr(&html[html.find("<script").unwrap()..], "nonce").unwrap();
    let csp = header(&p, "content-security-policy").join("");
    assert!(
        csp.contains(&format!("script-src 'nonce-{nonce}'")),
        "{csp}"
    );
    assert_eq!(
        metric(
            &e.side.metrics(),
            "tccc_sidecar_shell_total{outcome=\"breakout\"}"
        ),
        1.0
    );
    // A redirect within the origin, and any redirect outside the shell's frame, pass as they came.
    let (p, _) = fetch(
        &mut c,
        nav(
            Method::GET,
            "/local-redirect",
            "iframe",
            "same-origin",
            None,
        ),
    )
    .await;
    assert_eq!(
        (p.status.as_u16(), header(&p, "location")),
        (302, vec!["/login"])
    );
    let (p, _) = fetch(
        &mut c,
        nav(
            Method::GET,
            "/sso",
            "document",
            "none",
            Some("__tccc_shell=off"),
        ),
    )
    .await;
    assert_eq!(p.status, 302);
}

#[tokio::test]
async fn the_loader_path_serves_the_shell_and_bridge_scripts_as_plain_es5() {
    let e = env("mode = \"shell\"\nclick_to_call = true\nlogout_paths = [\"/signout\"]").await;
    let mut c = e.side.h1().await;
    let mut etags = Vec::new();
    for variant in ["", "?shell", "?bridge"] {
        let path = format!("/__tccc/loader.js{variant}");
        let (p, body) = c.get(&path).await;
        assert_eq!(p.status, 200, "{path}");
        assert_eq!(
            header(&p, "content-type"),
            vec!["text/javascript; charset=utf-8"]
        );
        let js = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !js.contains("__CONFIG__") && !js.contains("__COMMON__"),
            "{path}"
        );
        if let Err(err) = crate::inject::parses_as_es5(&js) {
            panic!("{path} is not ES5: {err}");
        }
        let etag = header(&p, "etag")[0].to_string();
        let again = Request::get(&path)
            .header("if-none-match", &etag)
            .body(empty())
            .unwrap();
        let (p, _) = read(c.send(again).await.unwrap()).await;
        assert_eq!(p.status, 304, "{path}");
        etags.push(etag);
    }
    etags.dedup();
    assert_eq!(etags.len(), 3, "three scripts");
    let (_, bridge) = c.get("/__tccc/loader.js?bridge").await;
    let bridge = String::from_utf8(bridge.to_vec()).unwrap();
    assert!(
        bridge.contains("\"logout\":[\"/signout\"]"),
        "configured logout paths"
    );
    assert!(bridge.contains("\"clickToCall\":true"));
}
