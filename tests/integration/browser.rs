//! The whole product in a real browser: headless Chromium (Debian's `chromium`, driven over
//! CDP with chromiumoxide) in front of the sidecar, a CRM stand-in and the CCC emulator with
//! its stand-in Web SDK on an HTTPS origin of its own. Each scenario gets its own sidecar
//! (its own origin, so storage and Web Locks never leak between scenarios) and checks what an
//! agent would see: `data-tccc-state`, the call-center button at the bottom right, no CSP
//! violation (collected by a `securitypolicyviolation` listener installed before any page
//! script runs, proven by a positive control), and what the emulator counted.
//!
//! One test function runs every scenario with one browser, so that CI starts Chromium once.

use crate::common::*;
use bytes::Bytes;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::network::CookieParam;
use chromiumoxide::Page;
use futures_util::StreamExt;
use http::Response;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tccc_sidecar::emulator::{Emulator, EmulatorConfig};

pub(crate) const BROWSER_WAIT: Duration = Duration::from_secs(20);
pub(crate) const COLLECT_VIOLATIONS: &str = "window.__csp = []; window.__errors = []; document.addEventListener('securitypolicyviolation', function (e) { window.__csp.push(e.violatedDirective + ' ' + e.blockedURI); }); window.addEventListener('tccc:error', function (e) { window.__errors.push(JSON.stringify(e.detail)); }); window.__ready = 0; window.addEventListener('tccc:ready', function () { window.__ready++; });";

pub(crate) struct World {
    pub side: Sidecar,
    pub em: Arc<Emulator>,
    /// The CRM's address (the stand-in's, or the demo CRM's).
    pub crm: std::net::SocketAddr,
    /// The CRM stand-in, when the world has it (not the demo CRM).
    pub standin: Option<Upstream>,
    _dir: TempDir,
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn brotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = ::brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(b).unwrap();
    }
    out
}

const BASIC: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>CRM</title></head><body><h1>Customers</h1><a href=\"tel:+862155550101\">call</a></body></html>";

/// The CRM stand-in's pages: (content-type, extra headers, body).
fn page(path: &str) -> (String, Vec<(&'static str, String)>, Vec<u8>) {
    let html = "text/html; charset=utf-8".to_string();
    match path {
        "/gzip" => (html, vec![("content-encoding", "gzip".into())], gzip(BASIC.as_bytes())),
        "/br" => (html, vec![("content-encoding", "br".into())], brotli(BASIC.as_bytes())),
        "/strict" => (
            html,
            vec![(
                "content-security-policy",
                "script-src 'nonce-Pg9n0nce' 'strict-dynamic'; default-src 'self'".into(),
            )],
            b"<!doctype html><html><head><script nonce=\"Pg9n0nce\">window.pageRan = 1;</script></head><body><p>strict</p></body></html>".to_vec(),
        ),
        // Quotes written as `&#39;`, as Jinja2, Go templates and Rails escape them.
        "/meta-entities" => (
            html,
            vec![],
            b"<!doctype html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"script-src &#39;nonce-M3taN0nce&#39; &#39;strict-dynamic&#39;; object-src &#39;none&#39;; base-uri &#39;none&#39;\"><script nonce=\"M3taN0nce\">window.pageRan = 1;</script></head><body><p>meta</p></body></html>".to_vec(),
        ),
        "/unsafe-inline" => (
            html,
            vec![(
                "content-security-policy",
                "script-src 'self' 'unsafe-inline'; connect-src 'self'; default-src 'self'".into(),
            )],
            b"<!doctype html><html><head><script>window.inlineRan = 1;</script></head><body onload=\"window.onloadRan = 1\"><p>legacy</p></body></html>".to_vec(),
        ),
        "/violating" => (
            html,
            vec![("content-security-policy", "script-src 'nonce-abc' 'strict-dynamic'; default-src 'self'".into())],
            b"<!doctype html><html><head><script>window.shouldNotRun = 1;</script></head><body></body></html>".to_vec(),
        ),
        "/gbk" => {
            let (bytes, _, _) = encoding_rs::GBK.encode(
                "<!doctype html><html><head><title>客服工作台</title></head><body><p>电话客服</p></body></html>",
            );
            ("text/html; charset=gbk".into(), vec![], bytes.into_owned())
        }
        "/nohead" => (html, vec![], b"<html><body><p>no head at all</p></body></html>".to_vec()),
        // The stand-in SDK's switches (src/emulator/standin-sdk.js), set before it loads.
        "/variant-flat" | "/variant-refuse-resolve" | "/variant-refuse-reject"
        | "/variant-never-ready" => {
            let variant = match path {
                "/variant-flat" => "{payload: 'flat'}",
                "/variant-refuse-resolve" => "{call: 'error-resolve'}",
                "/variant-never-ready" => "{ready: 'never'}",
                _ => "{call: 'error-reject'}",
            };
            let page = format!("<!doctype html><html><head><script>window.__tcccStandInVariant = {variant};</script></head><body><p>variant</p></body></html>");
            (html, vec![], page.into_bytes())
        }
        // For framing checks: a page that refuses every frame, and one that allows them; each
        // loads an image only a rendered document asks for.
        "/deny" => (
            html,
            vec![
                ("x-frame-options", "DENY".into()),
                ("content-security-policy", "frame-ancestors 'none'".into()),
            ],
            b"<html><head><title>deny</title></head><body><img src=\"/pixel/deny\"></body></html>".to_vec(),
        ),
        "/framable" => (
            html,
            vec![],
            b"<html><head><title>framable</title></head><body><img src=\"/pixel/framable\"></body></html>".to_vec(),
        ),
        "/frameset" => (
            html,
            vec![],
            b"<html><head><title>OA</title></head><frameset cols=\"30%,70%\"><frame name=\"nav\" src=\"/frame-nav\"><frame name=\"main\" src=\"/frame-main\"></frameset></html>".to_vec(),
        ),
        _ => (html, vec![], BASIC.as_bytes().to_vec()),
    }
}

pub(crate) async fn world(extra_inject: &str) -> World {
    world_on(false, extra_inject).await
}

/// A world in front of the CRM stand-in (cookie `sid=s-<user>`), or with `demo_crm` in front
/// of the demo CRM (its login form and `demo_session` cookie; logout at `/logout`).
pub(crate) async fn world_on(demo_crm: bool, extra_inject: &str) -> World {
    let standin = Upstream::start(handler(|s: Seen| async move {
        if s.uri.path() == "/api/whoami" {
            // The CRM's own idea of who is logged in: cookie sid=s-<user>.
            let user = s
                .headers
                .get("cookie")
                .and_then(|v| v.to_str().ok())
                .and_then(|c| c.split(';').find_map(|p| p.trim().strip_prefix("sid=s-")))
                .map(str::to_string);
            return match user {
                Some(u) => Response::builder()
                    .header("content-type", "application/json")
                    .body(full(format!("{{\"id\":\"{u}\"}}")))
                    .unwrap(),
                None => Response::builder()
                    .status(302)
                    .header("location", "/login")
                    .body(empty())
                    .unwrap(),
            };
        }
        let (ct, headers, body) = page(s.uri.path());
        let mut b = Response::builder().header("content-type", ct);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b.body(full(Bytes::from(body))).unwrap()
    }))
    .await;
    let (crm, standin, identity) = if demo_crm {
        let addr = tccc_sidecar::demo::start_crm().await.unwrap();
        (
            addr,
            None,
            "mode = \"introspect\"\nurl = \"/api/whoami\"\ncookies = [\"demo_session\"]\nuser_pointer = \"/id\"\nlogout_paths = [\"/logout\"]",
        )
    } else {
        (
            standin.addr,
            Some(standin),
            "mode = \"introspect\"\nurl = \"/api/whoami\"\ncookies = [\"sid\"]\nuser_pointer = \"/id\"",
        )
    };
    let mut w = world_in_front_of(crm, identity, extra_inject).await;
    w.standin = standin;
    w
}

/// A world in front of any app at `crm` (plain HTTP on loopback), with `identity` as its
/// `[identity]` and users alice and bob on seats of their names.
pub(crate) async fn world_in_front_of(
    crm: std::net::SocketAddr,
    identity: &str,
    extra_inject: &str,
) -> World {
    let certs = tccc_sidecar::listener::tls::devcert::generate(&["127.0.0.1".to_string()]).unwrap();
    let tls = Arc::new(
        tccc_sidecar::listener::tls::simple_server_config(
            &certs.leaf_cert_pem,
            &certs.leaf_key_pem,
        )
        .unwrap(),
    );
    let sdk_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sdk_origin = format!("https://{}", sdk_listener.local_addr().unwrap());
    let (em_addr, em) = start_emulator_api(EmulatorConfig {
        sdk_app_id: 1400000000,
        secret_id: "AKIDbrowser".into(),
        secret_key: "browser-secret".into(),
        session_token: None,
        seats: vec!["alice@seat.example".into(), "bob@seat.example".into()],
        clock: None,
        rate_limit: 0,
        sdk_origin: sdk_origin.clone(),
    })
    .await;
    tokio::spawn(tccc_sidecar::emulator::sdk::serve_sdk(
        sdk_listener,
        tls,
        em.clone(),
        std::future::pending(),
    ));
    let dir = TempDir::new("browser");
    std::fs::write(dir.path("sid"), "AKIDbrowser").unwrap();
    std::fs::write(dir.path("skey"), "browser-secret").unwrap();
    std::fs::write(
        dir.path("seats.toml"),
        "alice = \"alice@seat.example\"\nbob = \"bob@seat.example\"\n",
    )
    .unwrap();
    let wss = sdk_origin.replacen("https://", "wss://", 1);
    let extra = format!(
        "\n[tccc]\nsdk_app_id = 1400000000\nendpoint = \"http://{em_addr}\"\nsecret_id_file = \"{}\"\nsecret_key_file = \"{}\"\n\n\
         [login]\nper_user_rate = \"1000/min\"\nper_client_rate = \"1000/min\"\n\n\
         [identity]\n{identity}\n\n\
         [seats]\nfile = \"{}\"\n\n\
         [inject]\n{extra_inject}\n\n\
         [inject.sdk_origins]\nscript-src = [\"{sdk_origin}\"]\nconnect-src = [\"{sdk_origin}\", \"{wss}\"]\nmedia-src = [\"{sdk_origin}\"]\n",
        dir.path("sid").display(),
        dir.path("skey").display(),
        dir.path("seats.toml").display(),
    );
    let side = Sidecar::start(&format!("http://{crm}"), "", &extra).await;
    World {
        side,
        em,
        crm,
        standin: None,
        _dir: dir,
    }
}

impl World {
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.side.addr.port())
    }

    pub fn seat(&self, seat: &str) -> Value {
        let v: Value = serde_json::from_str(&self.em.stats_json()).unwrap();
        v["seats"][seat].clone()
    }
}

/// Opens `path` as `user` (logged in to the CRM: its session cookie) in a new tab.
pub(crate) async fn open(browser: &Browser, w: &World, path: &str, user: &str) -> Page {
    let page = browser.new_page("about:blank").await.unwrap();
    let mut cookie = CookieParam::new("sid", format!("s-{user}"));
    cookie.url = Some(w.url("/"));
    page.set_cookie(cookie).await.unwrap();
    page.evaluate_on_new_document(COLLECT_VIOLATIONS)
        .await
        .unwrap();
    page.goto(w.url(path)).await.unwrap();
    page
}

pub(crate) async fn eval(page: &Page, js: &str) -> Value {
    page.evaluate(js)
        .await
        .unwrap_or_else(|e| panic!("evaluating {js}: {e}"))
        .into_value::<Value>()
        .unwrap_or(Value::Null)
}

/// Waits until `js` evaluates to `want`; returns the last value on timeout (the caller asserts).
/// An evaluation that fails (the page is between two documents) counts as `null`.
pub(crate) async fn wait_for(page: &Page, js: &str, want: &Value) -> Value {
    let deadline = Instant::now() + BROWSER_WAIT;
    loop {
        let v = match page.evaluate(js).await {
            Ok(v) => v.into_value::<Value>().unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if &v == want || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) const STATE: &str = "document.documentElement.getAttribute('data-tccc-state')";
pub(crate) const BUTTON: &str = "(function(){var b=document.getElementById('tccc-standin-button');if(!b)return null;var r=b.getBoundingClientRect();var s=getComputedStyle(b);return {right:innerWidth-r.right,bottom:innerHeight-r.bottom,visible:s.display!=='none'&&s.visibility!=='hidden'&&r.width>0}})()";

/// The stand-in SDK offers exactly the documented surface (`src/emulator/web-sdk-surface.json`)
/// plus its declared extras: the names of its groups, methods and events, both ways, so that
/// the two cannot drift apart silently.
async fn assert_standin_has_the_documented_surface(page: &Page) {
    let doc: Value =
        serde_json::from_str(include_str!("../../src/emulator/web-sdk-surface.json")).unwrap();
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        n.sort();
        n
    };
    let actual = eval(page, "(function () { var out = {top: [], groups: {}, events: Object.keys(tccc.events)}; for (var k in tccc) { if (k !== 'events' && tccc[k] && typeof tccc[k] === 'object') { out.groups[k] = Object.keys(tccc[k]); } else { out.top.push(k); } } return out; })()").await;
    assert_eq!(names(&actual["top"]), names(&doc["top"]), "top-level names");
    assert_eq!(names(&actual["events"]), names(&doc["events"]), "events");
    let groups = doc["groups"].as_object().unwrap();
    let mut actual_groups: Vec<&String> = actual["groups"].as_object().unwrap().keys().collect();
    actual_groups.sort();
    let mut documented: Vec<&String> = groups.keys().collect();
    documented.sort();
    assert_eq!(actual_groups, documented, "groups");
    for (group, methods) in groups {
        let mut want = names(methods);
        want.extend(names(&doc["standin_extras"][group]));
        want.sort();
        assert_eq!(names(&actual["groups"][group]), want, "tccc.{group}");
    }
}

pub(crate) async fn assert_ready_with_button(page: &Page, what: &str) {
    let state = wait_for(page, STATE, &json!("ready")).await;
    let violations = eval(page, "window.__csp").await;
    let errors = eval(page, "window.__errors").await;
    assert_eq!(
        state,
        json!("ready"),
        "{what}: state (CSP violations: {violations}; tccc:error: {errors})"
    );
    let b = eval(page, BUTTON).await;
    assert_eq!(b["visible"], json!(true), "{what}: button {b}");
    assert!(
        b["right"].as_f64().unwrap() < 60.0 && b["bottom"].as_f64().unwrap() < 60.0,
        "{what}: button at the bottom right {b}"
    );
    assert_eq!(violations, json!([]), "{what}: CSP violations");
}

pub(crate) fn chromium() -> BrowserConfig {
    let profile = std::env::temp_dir().join(format!("tccc-chromium-{}", std::process::id()));
    BrowserConfig::builder()
        .chrome_executable("/usr/bin/chromium")
        .new_headless_mode()
        .no_sandbox()
        .user_data_dir(&profile)
        .arg("--ignore-certificate-errors")
        .arg("--disable-gpu")
        .arg("--use-fake-ui-for-media-stream")
        .arg("--use-fake-device-for-media-stream")
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbench_appears_in_a_real_browser_in_every_kind_of_page() {
    let (mut browser, mut handler) = Browser::launch(chromium())
        .await
        .expect("chromium (scripts/test.sh installs Debian's package)");
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });

    // Plain, compressed, CSP, charset and markup variants: each reaches `ready` with the
    // button and without a violation.
    for (path, what) in [
        ("/plain", "plain page"),
        ("/gzip", "gzip page"),
        ("/br", "brotli page"),
        ("/strict", "strict nonce CSP"),
        ("/meta-entities", "entity-encoded <meta> CSP"),
        ("/unsafe-inline", "'unsafe-inline' CSP"),
        ("/gbk", "GBK page"),
        ("/nohead", "page without <head>"),
    ] {
        let w = world("").await;
        let page = open(&browser, &w, path, "alice").await;
        assert_ready_with_button(&page, what).await;
        let s = w.seat("alice@seat.example");
        assert_eq!(s["tokens_issued"], 1, "{what}: one token");
        assert_eq!(s["websocket_connects"], 1, "{what}: one SDK");
        match path {
            "/plain" => {
                // The stand-in behaves as the Web SDK is documented: an outbound call shows in
                // its panel and reaches the emulator, and a second initialisation throws.
                eval(
                    &page,
                    "tccc.Call.startOutboundCall({phoneNumber: '+8613800000000'}); 1",
                )
                .await;
                let rows = wait_for(
                    &page,
                    "document.querySelectorAll('.tccc-standin-call').length",
                    &json!(1),
                )
                .await;
                assert_eq!(rows, json!(1), "a visible call");
                let text = eval(
                    &page,
                    "document.querySelector('.tccc-standin-call').textContent",
                )
                .await;
                assert!(text.as_str().unwrap().contains("+8613800000000"), "{text}");
                // The panel never says "free" beside a call in progress, and says it again
                // once the call is hung up.
                let status = "document.getElementById('tccc-standin-status').textContent + '/' + tccc.Agent.getStatus()";
                assert_eq!(eval(&page, status).await, json!("Status: busy/busy"));
                eval(
                    &page,
                    "document.querySelector('.tccc-standin-hangup').click(); 1",
                )
                .await;
                assert_eq!(
                    wait_for(&page, status, &json!("Status: free/free")).await,
                    json!("Status: free/free")
                );
                let deadline = Instant::now() + BROWSER_WAIT;
                while w.seat("alice@seat.example")["calls_started"] != 1
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert_eq!(w.seat("alice@seat.example")["calls_started"], 1);
                eval(&page, "window.__second = null; window.addEventListener('error', function (e) { window.__second = e.message; }); var s = document.createElement('script'); s.crossOrigin = 'anonymous'; s.src = document.querySelector('script[crossorigin][src*=\"tccc-sdk.js\"]').src; document.head.appendChild(s); 1").await;
                let msg = wait_for(
                    &page,
                    "window.__second && window.__second.indexOf('already initialised') >= 0",
                    &json!(true),
                )
                .await;
                assert_eq!(msg, json!(true), "a second initialisation throws");
                assert_standin_has_the_documented_surface(&page).await;
                assert_eq!(
                    eval(&page, STATE).await,
                    json!("ready"),
                    "and the loader's SDK is unaffected"
                );
            }
            "/strict" => assert_eq!(eval(&page, "window.pageRan").await, json!(1)),
            "/meta-entities" => {
                assert_eq!(
                    eval(&page, "window.pageRan").await,
                    json!(1),
                    "the page's own nonce script ran"
                );
                // The policy the browser holds still has every directive the page wrote.
                let content = eval(
                    &page,
                    "document.querySelector('meta[http-equiv]').getAttribute('content')",
                )
                .await;
                let content = content.as_str().unwrap_or_default();
                for part in [
                    "script-src 'nonce-M3taN0nce' 'strict-dynamic'",
                    "object-src 'none'",
                    "base-uri 'none'",
                ] {
                    assert!(content.contains(part), "{part} lost: {content}");
                }
            }
            "/unsafe-inline" => {
                assert_eq!(
                    eval(&page, "window.inlineRan").await,
                    json!(1),
                    "the page's inline script ran"
                );
                assert_eq!(
                    eval(&page, "window.onloadRan").await,
                    json!(1),
                    "and its inline handler"
                );
            }
            "/gbk" => {
                assert_eq!(eval(&page, "document.characterSet").await, json!("GBK"));
                assert_eq!(eval(&page, "document.title").await, json!("客服工作台"));
            }
            _ => {}
        }
        page.close().await.unwrap();
    }

    // The loader against each shape the Web SDK is documented to answer in: event payloads
    // wrapped in `data` (the stand-in's default, as the current guides read them) or flat, and
    // a call the SDK refuses by resolving or by rejecting {status: 'error', errorMsg}.
    for (path, refusal) in [
        ("/plain", None),
        ("/variant-flat", None),
        (
            "/variant-refuse-resolve",
            Some("stand-in refused the call (resolved)"),
        ),
        (
            "/variant-refuse-reject",
            Some("stand-in refused the call (rejected)"),
        ),
    ] {
        let w = world("").await;
        let page = open(&browser, &w, path, "alice").await;
        assert_ready_with_button(&page, path).await;
        eval(&page, "window.__calls = []; ['tccc:call-start', 'tccc:call-error'].forEach(function (n) { window.addEventListener(n, function (e) { window.__calls.push([n, e.detail.sessionId || null, e.detail.message || null]); }); }); window.__result = null; tcccSidecar.call('+8613800000000').then(function (r) { window.__result = ['ok', r.sessionId]; }, function (e) { window.__result = ['error', e.code, e.message]; }); 1").await;
        let done = wait_for(&page, "window.__result !== null", &json!(true)).await;
        assert_eq!(done, json!(true), "{path}: the call settled");
        let result = eval(&page, "window.__result").await;
        match refusal {
            None => {
                let sid = result[1].as_str().unwrap_or_default().to_string();
                assert_eq!(result[0], "ok", "{path}: {result}");
                assert_eq!(
                    sid.len(),
                    36,
                    "{path}: the session id reaches the page: {result}"
                );
                let seen = wait_for(&page, "window.__calls.length", &json!(1)).await;
                assert_eq!(seen, json!(1), "{path}");
                assert_eq!(
                    eval(&page, "window.__calls[0]").await,
                    json!(["tccc:call-start", sid, null]),
                    "{path}: tccc:call-start carries the session id"
                );
                assert_eq!(
                    eval(&page, "tcccSidecar.activeCalls()").await,
                    json!(1),
                    "{path}: the call counts as active (the leave guard)"
                );
                assert_eq!(w.seat("alice@seat.example")["calls_started"], 1, "{path}");
            }
            Some(message) => {
                assert_eq!(result, json!(["error", "call_failed", message]), "{path}");
                let seen = wait_for(&page, "window.__calls.length", &json!(1)).await;
                assert_eq!(seen, json!(1), "{path}");
                assert_eq!(
                    eval(&page, "window.__calls[0]").await,
                    json!(["tccc:call-error", null, message]),
                    "{path}: the page hears the SDK's own message"
                );
                assert_eq!(eval(&page, "tcccSidecar.activeCalls()").await, json!(0));
                assert_eq!(w.seat("alice@seat.example")["calls_started"], 0, "{path}");
            }
        }
        page.close().await.unwrap();
    }

    // Dial formats: every check is made on E.164, then the SDK gets the configured form (its
    // panel shows what it was asked to dial); the page still hears E.164.
    let formats: [(&str, &[(&str, &str)]); 2] = [
        (
            "national",
            &[
                ("+862155550101", "02155550101"),
                ("+8613800000000", "13800000000"),
                ("+442071234567", "00442071234567"),
            ],
        ),
        (
            "00",
            &[
                ("+862155550101", "00862155550101"),
                ("+442071234567", "00442071234567"),
            ],
        ),
    ];
    for (format, cases) in formats {
        let w = world(&format!(
            "click_to_call_country = \"86\"\ndial_format = \"{format}\""
        ))
        .await;
        let page = open(&browser, &w, "/plain", "alice").await;
        assert_ready_with_button(&page, format).await;
        for (e164, want) in cases {
            assert_eq!(
                eval(&page, &format!("tcccSidecar.dialled('{e164}')")).await,
                json!(want),
                "{format}: {e164}"
            );
        }
        eval(&page, "window.__r = null; window.__denied = null; tcccSidecar.call('0097912345678').then(null, function (e) { window.__denied = e.code; }); tcccSidecar.call('021 5555 0101').then(function (r) { window.__r = r.phoneNumber; }); 1").await;
        let rows = wait_for(
            &page,
            "document.querySelectorAll('.tccc-standin-call').length",
            &json!(1),
        )
        .await;
        assert_eq!(rows, json!(1), "{format}");
        let text = eval(
            &page,
            "document.querySelector('.tccc-standin-call').textContent",
        )
        .await;
        assert!(
            text.as_str()
                .unwrap_or_default()
                .contains(&format!("Calling {} ", cases[0].1)),
            "{format}: the SDK was asked to dial {}: {text}",
            cases[0].1
        );
        assert_eq!(
            wait_for(&page, "window.__r", &json!("+862155550101")).await,
            json!("+862155550101"),
            "{format}: the page hears E.164"
        );
        assert_eq!(
            wait_for(&page, "window.__denied", &json!("denied")).await,
            json!("denied"),
            "{format}: the deny list is applied before formatting"
        );
        assert_eq!(w.seat("alice@seat.example")["calls_started"], 1, "{format}");
        page.close().await.unwrap();
    }

    // Positive control: the violation detector does fire on a page that breaks its policy.
    {
        let w = world("").await;
        let page = open(&browser, &w, "/violating", "alice").await;
        let v = wait_for(&page, "window.__csp.length > 0", &json!(true)).await;
        assert_eq!(v, json!(true), "the detector saw the page's own violation");
        assert_eq!(eval(&page, "window.shouldNotRun").await, Value::Null);
        assert_ready_with_button_except_violations(&page).await;
        page.close().await.unwrap();
    }

    // A frameset: exactly one SDK in the tab, in the configured frame.
    {
        let w = world("frame_name = \"main\"").await;
        let page = open(&browser, &w, "/frameset", "alice").await;
        let js = "(function(){try{return Array.prototype.map.call(window.frames,function(f){return f.name+':'+f.document.documentElement.getAttribute('data-tccc-state')})}catch(e){return String(e)}})()";
        let v = wait_for(&page, js, &json!(["nav:null", "main:ready"])).await;
        assert_eq!(v, json!(["nav:null", "main:ready"]));
        assert_eq!(
            eval(&page, STATE).await,
            Value::Null,
            "the frameset document itself holds none"
        );
        assert_eq!(w.seat("alice@seat.example")["websocket_connects"], 1);
        page.close().await.unwrap();
    }

    // An SPA that navigates with history.pushState keeps its one SDK.
    {
        let w = world("").await;
        let page = open(&browser, &w, "/plain", "alice").await;
        assert_ready_with_button(&page, "SPA start").await;
        eval(&page, "history.pushState({}, '', '/spa/one'); history.pushState({}, '', '/spa/two'); dispatchEvent(new PopStateEvent('popstate')); location.pathname").await;
        assert_eq!(eval(&page, "location.pathname").await, json!("/spa/two"));
        assert_eq!(eval(&page, STATE).await, json!("ready"));
        let s = w.seat("alice@seat.example");
        assert_eq!(
            (s["tokens_issued"].clone(), s["websocket_connects"].clone()),
            (json!(1), json!(1))
        );
        page.close().await.unwrap();
    }

    // Two tabs of one user: one SDK; the second tab takes over when the first closes.
    {
        let w = world("").await;
        let first = open(&browser, &w, "/plain", "alice").await;
        assert_ready_with_button(&first, "first tab").await;
        let second = open(&browser, &w, "/plain", "alice").await;
        let v = wait_for(&second, STATE, &json!("elsewhere")).await;
        assert_eq!(v, json!("elsewhere"));
        assert_eq!(
            eval(&second, "!!document.querySelector('[data-tccc-elsewhere]')").await,
            json!(true),
            "a way to reach the tab that has it"
        );
        assert_eq!(
            w.seat("alice@seat.example")["websocket_connects"],
            1,
            "one WebSocket for two tabs"
        );
        first.close().await.unwrap();
        assert_ready_with_button(&second, "second tab after the first closed").await;
        let s = w.seat("alice@seat.example");
        assert_eq!(s["websocket_connects"], 2);
        assert_eq!(s["websocket_disconnects"], 1);
        second.close().await.unwrap();
    }

    // A user with no seat: unauthorized, no button, and the next page does not ask again.
    {
        let w = world("").await;
        let page = open(&browser, &w, "/plain", "zoe").await;
        let v = wait_for(&page, STATE, &json!("unauthorized")).await;
        assert_eq!(v, json!("unauthorized"));
        assert_eq!(eval(&page, BUTTON).await, Value::Null);
        page.goto(w.url("/other")).await.unwrap();
        let v = wait_for(&page, STATE, &json!("unauthorized")).await;
        assert_eq!(v, json!("unauthorized"));
        let m = w.side.metrics();
        assert_eq!(
            metric(&m, "tccc_sidecar_login_requests_total{outcome=\"no_seat\"}"),
            1.0,
            "asked once"
        );
        page.close().await.unwrap();
    }

    // tokenExpired (verified against the stand-in SDK only): a stale first token is answered
    // by one fresh URL and a new initialisation.
    {
        let w = world("").await;
        w.em.stale_next_tokens(1);
        let page = open(&browser, &w, "/plain", "alice").await;
        assert_ready_with_button(&page, "after tokenExpired").await;
        let s = w.seat("alice@seat.example");
        assert_eq!(s["tokens_issued"], 2, "one fresh token after the stale one");
        assert_eq!(s["websocket_connects"], 1);
        // Re-initialised as documented: the stand-in refuses a second initialisation in a
        // page that kept the old window.tccc or SDK root, so reaching ready proves the clean-up.
        assert_eq!(
            eval(&page, "[document.querySelectorAll('#tcccSdkDomRoot').length, document.querySelectorAll('script[src*=\"tccc-sdk.js\"]').length, window.__ready]").await,
            json!([1, 1, 1]),
            "one SDK root, one SDK script, ready once"
        );
        eval(&page, "window.__starts = 0; window.addEventListener('tccc:call-start', function () { window.__starts++; }); tcccSidecar.call('+8613800000000'); 1").await;
        let started = wait_for(&page, "window.__starts", &json!(1)).await;
        assert_eq!(started, json!(1));
        assert_eq!(
            eval(&page, "tcccSidecar.activeCalls()").await,
            json!(1),
            "the call's events were heard once: the old SDK's listeners are gone"
        );
        page.close().await.unwrap();
    }

    // An SDK that never becomes ready: the agent sees an error within the bound, not
    // "loading" for ever, and the loader tries again with a fresh token.
    {
        let w = world("sdk_ready_timeout = \"1500ms\"").await;
        let page = open(&browser, &w, "/variant-never-ready", "alice").await;
        let state = wait_for(&page, STATE, &json!("error")).await;
        assert_eq!(state, json!("error"), "an error state within the bound");
        let errors = eval(&page, "window.__errors.join(' ')").await;
        assert!(
            errors
                .as_str()
                .unwrap_or_default()
                .contains("sdk_not_ready"),
            "{errors}"
        );
        let deadline = Instant::now() + BROWSER_WAIT;
        while w.seat("alice@seat.example")["tokens_issued"] != 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            w.seat("alice@seat.example")["tokens_issued"],
            2,
            "a retry with a fresh token"
        );
        page.close().await.unwrap();
    }

    demo_as_a_newcomer(&browser).await;
    crate::browser_shell::scenarios(&browser).await;
    crate::real_apps::browser::scenarios(&browser).await;

    // The diagnostics page names an unreachable SDK host (a closed loopback port here) as
    // the problem, beside the checks that pass.
    {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let w = world(&format!(
            "diag_hosts = [\"https://127.0.0.1:{closed_port}\"]"
        ))
        .await;
        let page = open(&browser, &w, "/__tccc/diag", "alice").await;
        let done = wait_for(&page, DIAG_STATE, &json!("done")).await;
        assert_eq!(done, json!("done"));
        let rows = eval(&page, DIAG_ROWS).await;
        assert_eq!(rows["secure-context"][0], "ok", "{rows}");
        assert_eq!(rows["sign-in"][0], "ok", "{rows}");
        // The CRM stand-in's cookie reaches the login path: the cookie row says so.
        assert_eq!(rows["session-cookie"][0], "ok", "{rows}");
        assert!(
            rows["sign-in"][1]
                .as_str()
                .unwrap()
                .contains("alice → seat alice@seat.example"),
            "{rows}"
        );
        let reach = &rows[format!("reach https://127.0.0.1:{closed_port}")];
        assert_eq!(reach[0], "fail", "{rows}");
        assert!(
            reach[2].as_str().unwrap().contains("network team"),
            "{rows}"
        );
        let summary = eval(&page, "document.getElementById('summary').textContent").await;
        assert!(
            summary.as_str().unwrap().starts_with("1 problem"),
            "{summary}"
        );
        assert_eq!(
            eval(&page, "window.__csp").await,
            json!([]),
            "its own CSP holds"
        );
        // Not signed in: the row says so, and what to do.
        let mut forget =
            chromiumoxide::cdp::browser_protocol::network::DeleteCookiesParams::new("sid");
        forget.url = Some(w.url("/"));
        page.delete_cookie(forget).await.unwrap();
        page.goto(w.url("/__tccc/diag")).await.unwrap();
        let done = wait_for(&page, DIAG_STATE, &json!("done")).await;
        assert_eq!(done, json!("done"));
        let rows = eval(&page, DIAG_ROWS).await;
        assert_eq!(rows["sign-in"][0], "fail", "{rows}");
        assert_eq!(rows["sign-in"][1], "not signed in", "{rows}");
        page.close().await.unwrap();
    }

    let _ = browser.close().await;
    let _ = browser.wait().await;
    driver.abort();
}

const DIAG_STATE: &str = "document.documentElement.getAttribute('data-diag-state')";
/// Each diagnostics row by its check id: [status, result, hint].
const DIAG_ROWS: &str = "(function(){var o={};var r=document.querySelectorAll('tr[data-check]');for(var i=0;i<r.length;i++){o[r[i].getAttribute('data-check')]=[r[i].getAttribute('data-status'),r[i].children[1].textContent,r[i].children[2].textContent];}return o})()";

/// `tccc-sidecar demo` as a newcomer runs it (the built binary, no configuration): log in
/// through the CRM's form, see the workbench, click a customer's phone number, see the
/// stand-in workbench start that call; then the diagnostics page. The screenshot of the
/// page with the call is the README's (`target/screenshots/demo.png`, copied to docs/).
async fn demo_as_a_newcomer(browser: &Browser) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tccc-sidecar"));
    cmd.args(["demo", "--listen", "127.0.0.1:0"]);
    let (_child, rx) = crate::cli::spawn_reading(cmd, true);
    let port = loop {
        let line = rx.recv_timeout(WAIT).expect("the demo's instructions");
        if let Some(rest) = line.trim().strip_prefix("Open   https://localhost:") {
            break rest.trim_end_matches('/').parse::<u16>().unwrap();
        }
    };
    let base = format!("https://localhost:{port}");
    let page = browser.new_page("about:blank").await.unwrap();
    page.evaluate_on_new_document(COLLECT_VIOLATIONS)
        .await
        .unwrap();
    page.goto(format!("{base}/")).await.unwrap();
    page.find_element("input[name=user]")
        .await
        .expect("the login form")
        .click()
        .await
        .unwrap()
        .type_str("alice")
        .await
        .unwrap();
    page.find_element("input[name=password]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str("alice-demo")
        .await
        .unwrap();
    page.find_element("button[type=submit]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The form posts and the browser follows the redirect: evaluations fail while the
    // document changes, so they are retried until the customer page has loaded.
    let deadline = Instant::now() + BROWSER_WAIT;
    let mut path = Value::Null;
    while Instant::now() < deadline {
        path = match page
            .evaluate("document.readyState === 'complete' ? location.pathname : null")
            .await
        {
            Ok(v) => v.into_value::<Value>().unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if path == json!("/customers") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(path, json!("/customers"), "logged in");
    assert_ready_with_button(&page, "demo").await;
    page.find_element("a[href^='tel:']")
        .await
        .expect("a phone number")
        .click()
        .await
        .unwrap();
    let rows = wait_for(
        &page,
        "document.querySelectorAll('.tccc-standin-call').length",
        &json!(1),
    )
    .await;
    assert_eq!(rows, json!(1), "the call shows in the stand-in workbench");
    let call = eval(
        &page,
        "document.querySelector('.tccc-standin-call').textContent",
    )
    .await;
    assert!(call.as_str().unwrap().contains("+862155550101"), "{call}");
    let status = wait_for(
        &page,
        "document.getElementById('call-status').textContent",
        &json!("Call started: +862155550101"),
    )
    .await;
    assert_eq!(status, json!("Call started: +862155550101"));
    assert_eq!(
        eval(&page, "location.pathname").await,
        json!("/customers"),
        "the OS dialler was not asked"
    );
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shot).unwrap();
    page.save_screenshot(
        chromiumoxide::page::ScreenshotParams::builder()
            .full_page(false)
            .build(),
        shot.join("demo.png"),
    )
    .await
    .unwrap();

    // The diagnostics page, from the same browser: everything passes, the emulator's SDK
    // origin (learned from the token just issued) is reachable, and the microphone works.
    page.goto(format!("{base}/__tccc/diag")).await.unwrap();
    let done = wait_for(&page, DIAG_STATE, &json!("done")).await;
    assert_eq!(done, json!("done"));
    let rows = eval(&page, DIAG_ROWS).await;
    for check in ["secure-context", "browser", "sign-in"] {
        assert_eq!(rows[check][0], "ok", "{check}: {rows}");
    }
    assert!(
        rows["sign-in"][1]
            .as_str()
            .unwrap()
            .contains("alice → seat alice@demo.tccc-sidecar.example"),
        "{rows}"
    );
    let reach: Vec<(&String, &Value)> = rows
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("reach https://localhost:"))
        .collect();
    assert_eq!(reach.len(), 1, "{rows}");
    assert_eq!(reach[0].1[0], "ok", "{rows}");
    page.find_element("#test-microphone")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // A capture is tried and answered: headless Chromium here may have no audio device even
    // with its fake-device flag, so a named failure with advice also counts as an answer.
    let deadline = Instant::now() + BROWSER_WAIT;
    let mut mic = Value::Null;
    while Instant::now() < deadline {
        mic = eval(&page, DIAG_ROWS).await["microphone"].clone();
        if mic[0] != "idle" && mic[1] != "" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered = mic[0] == "ok"
        || (mic[0] == "fail"
            && mic[1].as_str().unwrap_or("").starts_with("failed: ")
            && !mic[2].as_str().unwrap_or("").is_empty());
    assert!(answered, "{mic}");
    assert_eq!(eval(&page, "window.__csp").await, json!([]));
    page.save_screenshot(
        chromiumoxide::page::ScreenshotParams::builder()
            .full_page(true)
            .build(),
        shot.join("diag.png"),
    )
    .await
    .unwrap();
    page.close().await.unwrap();
}

/// The positive control's page still gets the workbench (its own inline script was blocked,
/// not ours).
async fn assert_ready_with_button_except_violations(page: &Page) {
    let state = wait_for(page, STATE, &json!("ready")).await;
    assert_eq!(state, json!("ready"));
    let b = eval(page, BUTTON).await;
    assert_eq!(b["visible"], json!(true));
}
