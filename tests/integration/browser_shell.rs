//! Shell mode and click-to-call in a real browser (run by `browser.rs`'s one Chromium): the
//! demo CRM (several pages, a note form, a `target="_top"` link, `X-Frame-Options: DENY`)
//! behind the sidecar in shell mode. A call started on one page survives every way of going
//! to another (link, form POST, `_top` link, history back, frame reload) with one token, one
//! WebSocket and no disconnect; a user switch inside the frame tears the workbench down; a
//! page that breaks out of frames gets script mode; a hop that strips Fetch Metadata gets
//! script mode; other sites cannot frame the CRM; `tel:` links call when asked to and only then.

use crate::browser::*;
use crate::common::*;
use bytes::Bytes;
use chromiumoxide::browser::Browser;
use chromiumoxide::cdp::browser_protocol::network::CookieParam;
use chromiumoxide::Page;
use http::Response;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const ALICE_SEAT: &str = "alice@seat.example";
const BOB_SEAT: &str = "bob@seat.example";

/// `js` evaluated inside the shell's frame (`w`: its window, `d`: its document); `null` while
/// the frame is between two documents.
pub(crate) fn framed(js: &str) -> String {
    format!("(function(){{try{{var w=document.getElementById('tccc-shell-frame').contentWindow;var d=w.document;return ({js});}}catch(e){{return null}}}})()")
}

pub(crate) const FRAME_STATE: &str = "d.documentElement.getAttribute('data-tccc-state')";
pub(crate) const CALLS: &str = "(function(){try{return tccc.Call.getCalls().map(function(c){return c.state})}catch(e){return null}})()";

/// A demo CRM session for `user`, from its login form (plain HTTP, loopback).
async fn demo_session(crm: std::net::SocketAddr, user: &str, password: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(crm).await.unwrap();
    let form = format!("user={user}&password={password}");
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: {crm}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    within("demo login", s.read_to_string(&mut out))
        .await
        .unwrap();
    let cookie = out
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: demo_session="))
        .expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

async fn open_as(browser: &Browser, base: &str, path: &str, session: &str) -> Page {
    let page = browser.new_page("about:blank").await.unwrap();
    let mut cookie = CookieParam::new("demo_session", session.to_string());
    cookie.url = Some(format!("{base}/"));
    page.set_cookie(cookie).await.unwrap();
    page.evaluate_on_new_document(COLLECT_VIOLATIONS)
        .await
        .unwrap();
    page.goto(format!("{base}{path}")).await.unwrap();
    page
}

/// What an agent must see after each way of moving through the CRM with a call going on.
async fn assert_call_survives(page: &Page, w: &World, path: &str, title: &str, what: &str) {
    let here = wait_for(
        page,
        &framed("d.readyState === 'complete' && w.location.pathname"),
        &json!(path),
    )
    .await;
    assert_eq!(here, json!(path), "{what}: the frame shows {path}");
    let state = wait_for(page, &framed(FRAME_STATE), &json!("ready")).await;
    assert_eq!(
        state,
        json!("ready"),
        "{what}: data-tccc-state in the framed page"
    );
    let bar = wait_for(page, "location.pathname", &json!(path)).await;
    assert_eq!(bar, json!(path), "{what}: the address bar");
    let t = wait_for(page, "document.title", &json!(title)).await;
    assert_eq!(t, json!(title), "{what}: the tab title");
    assert_eq!(
        eval(page, STATE).await,
        json!("ready"),
        "{what}: the shell's workbench"
    );
    assert_eq!(
        eval(
            page,
            "document.documentElement.hasAttribute('data-tccc-shell')"
        )
        .await,
        json!(true),
        "{what}: still the shell"
    );
    let s = w.seat(ALICE_SEAT);
    assert_eq!(
        (
            s["tokens_issued"].clone(),
            s["websocket_connects"].clone(),
            s["websocket_disconnects"].clone()
        ),
        (json!(1), json!(1), json!(0)),
        "{what}: one token, one WebSocket, no disconnect"
    );
    let calls = eval(page, CALLS).await;
    assert_eq!(
        calls[0],
        json!("calling"),
        "{what}: the call is still active: {calls}"
    );
    assert_eq!(eval(page, "window.__csp").await, json!([]), "{what}: CSP");
}

/// Logs in through the demo CRM's form shown in the shell's frame.
async fn log_in_in_frame(page: &Page, user: &str, password: &str) {
    let form = wait_for(
        page,
        &framed("!!d.querySelector('input[name=user]')"),
        &json!(true),
    )
    .await;
    assert_eq!(form, json!(true), "the CRM's login form, in the shell");
    eval(page, &framed(&format!("(d.querySelector('input[name=user]').value = '{user}', d.querySelector('input[name=password]').value = '{password}', d.querySelector('button[type=submit]').click(), 1)"))).await;
}

/// Clicks the `n`th phone number of the framed page (the CRM's own integration calls it) and
/// waits for the page to say the call started.
async fn call_from_frame(page: &Page, n: usize, number: &str) {
    eval(
        page,
        &framed(&format!(
            "d.querySelectorAll(\"a[href^='tel:']\")[{n}].click(), 1"
        )),
    )
    .await;
    let want = json!(format!("Call started: {number}"));
    let status = wait_for(
        page,
        &framed("d.getElementById('call-status').textContent"),
        &want,
    )
    .await;
    assert_eq!(status, want);
}

pub(crate) async fn scenarios(browser: &Browser) {
    calls_survive_navigation_and_a_user_switch_tears_down(browser).await;
    a_page_that_breaks_out_of_frames_gets_script_mode(browser).await;
    without_fetch_metadata_every_page_gets_script_mode(browser).await;
    other_sites_cannot_frame_the_crm(browser).await;
    click_to_call_only_when_enabled(browser).await;
    a_refused_click_in_a_frame_is_announced_once(browser).await;
    demo_shell_as_a_newcomer(browser).await;
}

async fn calls_survive_navigation_and_a_user_switch_tears_down(browser: &Browser) {
    let w = world_on(true, "mode = \"shell\"").await;
    let alice = demo_session(w.crm, "alice", "alice-demo").await;
    let page = open_as(browser, &w.url(""), "/customers", &alice).await;
    assert_ready_with_button(&page, "the shell").await;
    // Page A; a call through the CRM's own integration, which uses window.tccc in the frame.
    let state = wait_for(&page, &framed(FRAME_STATE), &json!("ready")).await;
    assert_eq!(state, json!("ready"), "the framed page mirrors the state");
    assert_eq!(
        eval(&page, &framed("typeof w.tccc.Call.startOutboundCall")).await,
        json!("function"),
        "window.tccc in the framed page"
    );
    // The whole documented surface reaches the framed page, not four groups: the CRM's own
    // integration may use Chat, Video or overrideButtonConfig.
    assert_eq!(
        eval(&page, &framed("[w.tccc.Chat === tccc.Chat, w.tccc.Video === tccc.Video, typeof w.tccc.overrideButtonConfig, typeof w.tccc.Devices.getMicrophones]")).await,
        json!([true, true, "function", "function"]),
        "Chat, Video, overrideButtonConfig and every Devices method in the framed page"
    );
    // After a re-initialisation the shell holds a new SDK object: the framed page follows it.
    eval(&page, "window.__sdk = window.tccc; window.tccc = {events: __sdk.events, on: __sdk.on, off: __sdk.off, Chat: {marker: 1}}; 1").await;
    let followed = eval(&page, &framed("w.tccc.Chat.marker")).await;
    eval(&page, "window.tccc = window.__sdk; 1").await;
    assert_eq!(
        followed,
        json!(1),
        "the framed page uses the shell's current SDK"
    );
    eval(&page, &framed("(w.tccc.UI.showWorkbench(), 1)")).await;
    assert_eq!(
        eval(
            &page,
            "document.getElementById('tccc-standin-panel').style.display"
        )
        .await,
        json!("block"),
        "tccc.UI called from the framed page opens the shell's workbench"
    );
    eval(&page, &framed("(w.tccc.UI.hideWorkbench(), 1)")).await;
    assert_eq!(
        eval(
            &page,
            "document.getElementById('tccc-standin-panel').style.display"
        )
        .await,
        json!("none")
    );
    call_from_frame(&page, 0, "+862155550101").await;
    let rows = wait_for(
        &page,
        "document.querySelectorAll('.tccc-standin-call').length",
        &json!(1),
    )
    .await;
    assert_eq!(rows, json!(1), "the call in the workbench panel");
    assert_call_survives(&page, &w, "/customers", "Customers — Demo CRM", "page A").await;

    eval(&page, &framed("d.querySelector('a.customer').click(), 1")).await;
    assert_call_survives(
        &page,
        &w,
        "/customers/1",
        "Shanghai Trading Co. — Demo CRM",
        "B by a link",
    )
    .await;

    eval(&page, &framed("d.querySelector('input[name=note]').value = 'Asked about the order', d.querySelector('form button').click(), 1")).await;
    let notes = wait_for(
        &page,
        &framed("d.querySelectorAll('.note').length"),
        &json!(1),
    )
    .await;
    assert_eq!(notes, json!(1), "the note was posted");
    assert_call_survives(
        &page,
        &w,
        "/customers/1",
        "Shanghai Trading Co. — Demo CRM",
        "B by a form POST",
    )
    .await;

    eval(
        &page,
        &framed("d.getElementById('nav-customers').click(), 1"),
    )
    .await;
    assert_call_survives(
        &page,
        &w,
        "/customers",
        "Customers — Demo CRM",
        "A by a target=_top link",
    )
    .await;

    eval(&page, "history.back(), 1").await;
    assert_call_survives(
        &page,
        &w,
        "/customers/1",
        "Shanghai Trading Co. — Demo CRM",
        "B by history back",
    )
    .await;

    eval(&page, &framed("(w.__before = 1, w.location.reload(), 1)")).await;
    let reloaded = wait_for(
        &page,
        &framed("d.readyState === 'complete' && w.__before === undefined"),
        &json!(true),
    )
    .await;
    assert_eq!(reloaded, json!(true), "the frame reloaded");
    assert_call_survives(
        &page,
        &w,
        "/customers/1",
        "Shanghai Trading Co. — Demo CRM",
        "B by reloading the frame",
    )
    .await;

    // tcccSidecar.call from the framed page goes through the shell's workbench; the
    // configured deny prefixes hold there too.
    eval(&page, &framed("(w.tcccSidecar.call('+86 138-0000-0001').then(function (r) { w.__called = r.phoneNumber; }), w.tcccSidecar.call('+979 1234 5678').then(null, function (e) { w.__denied = e.code; }), 1)")).await;
    assert_eq!(
        wait_for(&page, &framed("w.__called"), &json!("+8613800000001")).await,
        json!("+8613800000001")
    );
    assert_eq!(
        wait_for(&page, &framed("w.__denied"), &json!("denied")).await,
        json!("denied")
    );
    assert_eq!(
        eval(
            &page,
            "document.querySelectorAll('.tccc-standin-call').length"
        )
        .await,
        json!(2)
    );
    assert_eq!(w.seat(ALICE_SEAT)["calls_started"], 2);

    // The user switches inside the frame: alice logs out (the workbench ends: one
    // disconnect), bob logs in (a workbench for bob's seat).
    eval(
        &page,
        &framed("d.querySelector(\"a[href='/logout']\").click(), 1"),
    )
    .await;
    let v = wait_for(&page, STATE, &json!("unauthorized")).await;
    assert_eq!(
        v,
        json!("unauthorized"),
        "nobody signed in inside the frame"
    );
    let deadline = Instant::now() + BROWSER_WAIT;
    while w.seat(ALICE_SEAT)["websocket_disconnects"] != 1 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        w.seat(ALICE_SEAT)["websocket_disconnects"],
        1,
        "alice's workbench ended"
    );
    assert_eq!(
        eval(&page, BUTTON).await,
        Value::Null,
        "no workbench for nobody"
    );
    log_in_in_frame(&page, "bob", "bob-demo").await;
    let v = wait_for(&page, STATE, &json!("ready")).await;
    assert_eq!(v, json!("ready"), "bob's workbench");
    let who = wait_for(
        &page,
        &framed("d.getElementById('user').textContent"),
        &json!("Bob Li"),
    )
    .await;
    assert_eq!(who, json!("Bob Li"));
    let s = w.seat(BOB_SEAT);
    assert_eq!(
        (s["tokens_issued"].clone(), s["websocket_connects"].clone()),
        (json!(1), json!(1))
    );
    let a = w.seat(ALICE_SEAT);
    assert_eq!(
        (a["tokens_issued"].clone(), a["websocket_connects"].clone()),
        (json!(1), json!(1)),
        "no second workbench for alice"
    );
    assert_eq!(
        eval(&page, CALLS).await,
        json!([]),
        "bob's workbench has none of alice's calls"
    );
    page.close().await.unwrap();
}

async fn a_page_that_breaks_out_of_frames_gets_script_mode(browser: &Browser) {
    let w = world_on(true, "mode = \"shell\"").await;
    let alice = demo_session(w.crm, "alice", "alice-demo").await;
    let page = open_as(browser, &w.url(""), "/customers", &alice).await;
    assert_ready_with_button(&page, "the shell").await;
    eval(
        &page,
        &framed("d.getElementById('legacy-report').click(), 1"),
    )
    .await;
    // The page takes the whole tab; the shell sees it come back and lets it be.
    let plain = wait_for(
        &page,
        "document.documentElement.hasAttribute('data-tccc-shell') === false && location.pathname",
        &json!("/reports/legacy"),
    )
    .await;
    assert_eq!(
        plain,
        json!("/reports/legacy"),
        "script mode at the page's own address"
    );
    assert_ready_with_button(&page, "the frame-busting page in script mode").await;
    assert_eq!(
        eval(&page, "document.getElementById('report').textContent").await,
        json!("Calls this week: 42")
    );
    let m = w.side.metrics();
    assert_eq!(
        metric(&m, "tccc_sidecar_shell_total{outcome=\"script_fallback\"}"),
        1.0,
        "{m}"
    );
    // Everything else still gets the shell.
    page.goto(w.url("/customers")).await.unwrap();
    let shell = wait_for(
        &page,
        "document.documentElement.hasAttribute('data-tccc-shell')",
        &json!(true),
    )
    .await;
    assert_eq!(shell, json!(true));
    assert_ready_with_button(&page, "the shell again").await;
    page.close().await.unwrap();
}

/// A TLS hop in front of the sidecar that drops every `Sec-Fetch-*` header, as some old
/// proxies do; the Host is kept, so the browser's origin is the sidecar's public origin.
async fn start_hop(side: &Sidecar) -> (String, tokio::task::JoinHandle<()>) {
    let certs = tccc_sidecar::listener::tls::devcert::generate(&["127.0.0.1".to_string()]).unwrap();
    let tls = std::sync::Arc::new(
        tccc_sidecar::listener::tls::simple_server_config(
            &certs.leaf_cert_pem,
            &certs.leaf_key_pem,
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let (target, ca) = (side.addr, side.ca_pem.clone());
    let task = tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, ca) = (acceptor.clone(), ca.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let ca = ca.clone();
                        async move {
                            let (mut parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let names: Vec<_> = parts
                                .headers
                                .keys()
                                .filter(|k| k.as_str().starts_with("sec-fetch-"))
                                .cloned()
                                .collect();
                            for n in names {
                                parts.headers.remove(n);
                            }
                            let mut c = Client::connect(target, &ca, Proto::H1, None).await;
                            let resp = c.send(http::Request::from_parts(parts, full(body))).await;
                            Ok::<_, hyper::Error>(match resp {
                                Ok(r) => {
                                    let (p, b) = r.into_parts();
                                    let b =
                                        b.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                    Response::from_parts(p, full(b))
                                }
                                Err(_) => Response::builder()
                                    .status(502)
                                    .body(full(Bytes::new()))
                                    .unwrap(),
                            })
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (url, task)
}

async fn without_fetch_metadata_every_page_gets_script_mode(browser: &Browser) {
    let w = world_on(true, "mode = \"shell\"").await;
    let (hop, task) = start_hop(&w.side).await;
    let alice = demo_session(w.crm, "alice", "alice-demo").await;
    let page = open_as(browser, &hop, "/customers", &alice).await;
    for (i, step) in [
        ("", "/customers", "page A"),
        ("d.querySelector('a.customer').click()", "/customers/1", "B by a link"),
        ("(d.querySelector('input[name=note]').value = 'x', d.querySelector('form button').click())", "/customers/1", "B by a form POST"),
        ("d.getElementById('nav-customers').click()", "/customers", "A by a target=_top link"),
        ("history.back()", "/customers/1", "B by history back"),
        ("location.reload()", "/customers/1", "B by reloading"),
    ]
    .into_iter()
    .enumerate()
    {
        let (js, path, what) = step;
        let n = i + 1;
        if !js.is_empty() {
            // The page goes away under the evaluation: its answer may never come.
            let _ = page
                .evaluate(format!("(function(){{var d=document;window.__gone=1;{js};return 1}})()"))
                .await;
        }
        let here = wait_for(&page, "window.__gone === undefined && document.readyState === 'complete' && location.pathname", &json!(path)).await;
        assert_eq!(here, json!(path), "{what}");
        assert_eq!(
            eval(&page, "document.documentElement.hasAttribute('data-tccc-shell')").await,
            json!(false),
            "{what}: no shell without Fetch Metadata"
        );
        assert_ready_with_button(&page, what).await;
        // Script mode: each page is a new workbench; the previous one has ended.
        let s = w.seat(ALICE_SEAT);
        assert_eq!(s["tokens_issued"], json!(n), "{what}");
        let deadline = Instant::now() + BROWSER_WAIT;
        while w.seat(ALICE_SEAT)["websocket_disconnects"] != json!(n - 1) && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(w.seat(ALICE_SEAT)["websocket_disconnects"], json!(n - 1), "{what}");
    }
    assert_eq!(
        metric(
            &w.side.metrics(),
            "tccc_sidecar_shell_total{outcome=\"shell\"}"
        ),
        0.0
    );
    page.close().await.unwrap();
    task.abort();
}

async fn other_sites_cannot_frame_the_crm(browser: &Browser) {
    let w = world("mode = \"shell\"").await;
    let side = w.url("");
    // Another site (localhost is not 127.0.0.1's site) frames a CRM page that refuses
    // framing, then, once that frame has finished loading, a page that allows it (the
    // positive control). A rendered document loads its image; a refused one does not.
    let attacker = Upstream::start(handler(move |_s: Seen| {
        let side = side.clone();
        async move {
            Response::builder()
                .header("content-type", "text/html")
                .body(full(format!(
                    "<!doctype html><html><body><iframe id=crm src=\"{side}/deny\" onload=\"document.getElementById('control').src='{side}/framable'\"></iframe><iframe id=control></iframe></body></html>"
                )))
                .unwrap()
        }
    }))
    .await;
    let page = browser.new_page("about:blank").await.unwrap();
    page.goto(format!("http://localhost:{}/", attacker.addr.port()))
        .await
        .unwrap();
    let crm = w.standin.as_ref().unwrap();
    let seen = |path: &str| {
        crm.requests()
            .iter()
            .filter(|s| s.uri.path() == path)
            .count()
    };
    let deadline = Instant::now() + BROWSER_WAIT;
    while seen("/pixel/framable") == 0 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen("/pixel/framable"), 1, "the control frame rendered");
    assert_eq!(seen("/deny"), 1, "the refusing page was asked for");
    assert_eq!(
        seen("/pixel/deny"),
        0,
        "and not rendered in another site's frame"
    );
    let deny = crm
        .requests()
        .into_iter()
        .find(|s| s.uri.path() == "/deny")
        .unwrap();
    assert_eq!(deny.headers["sec-fetch-site"], "cross-site");
    assert_eq!(
        metric(
            &w.side.metrics(),
            "tccc_sidecar_shell_total{outcome=\"shell\"}"
        ),
        0.0,
        "a frame is never given the shell"
    );
    page.close().await.unwrap();
}

/// Shell mode, click-to-call in a framed page: a number the shell refuses (premium-rate) is
/// announced once in that frame, with its reason, and a later call still goes through. The
/// shell answers the frame's request quietly; the frame's bridge announces the failure.
async fn a_refused_click_in_a_frame_is_announced_once(browser: &Browser) {
    let w = world("mode = \"shell\"\nclick_to_call = true\nclick_to_call_country = \"86\"").await;
    let page = crate::browser::open(browser, &w, "/plain", "alice").await;
    assert_ready_with_button(&page, "the shell").await;
    let state = wait_for(&page, &framed(FRAME_STATE), &json!("ready")).await;
    assert_eq!(state, json!("ready"));
    eval(&page, &framed("(w.__errs = [], w.__starts = 0, w.addEventListener('tccc:call-error', function (e) { w.__errs.push(e.detail.error + ' ' + e.detail.message); }), w.addEventListener('tccc:call-start', function () { w.__starts++; }), (function () { var a = d.createElement('a'); a.href = 'tel:+97912345678'; a.id = 'premium'; a.textContent = 'premium'; d.body.appendChild(a); a.click(); })(), 1)")).await;
    // A call that goes through afterwards: its tccc:call-start reaches the frame after every
    // message about the refused one.
    eval(
        &page,
        &framed("(d.querySelector(\"a[href^='tel:+86']\").click(), 1)"),
    )
    .await;
    let started = wait_for(&page, &framed("w.__starts"), &json!(1)).await;
    assert_eq!(started, json!(1), "the next call goes through");
    assert_eq!(
        eval(&page, &framed("w.__errs")).await,
        json!(["denied denied"]),
        "one tccc:call-error in the frame, with its reason"
    );
    assert_eq!(w.seat(ALICE_SEAT)["calls_started"], 1);
    page.close().await.unwrap();
}

async fn click_to_call_only_when_enabled(browser: &Browser) {
    // Enabled, script mode, on a page with no integration of its own.
    let w = world("click_to_call = true\nclick_to_call_country = \"86\"").await;
    let page = crate::browser::open(browser, &w, "/plain", "alice").await;
    assert_ready_with_button(&page, "click-to-call page").await;
    eval(&page, "window.__events = []; ['tccc:call-start', 'tccc:call-error'].forEach(function (n) { window.addEventListener(n, function (e) { window.__events.push(n + ' ' + (e.detail.phoneNumber || e.detail.error)); }); }); 1").await;
    page.find_element("a[href^='tel:']")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rows = wait_for(
        &page,
        "document.querySelectorAll('.tccc-standin-call').length",
        &json!(1),
    )
    .await;
    assert_eq!(rows, json!(1), "a click on the tel: link starts a call");
    let text = eval(
        &page,
        "document.querySelector('.tccc-standin-call').textContent",
    )
    .await;
    assert!(text.as_str().unwrap().contains("+862155550101"), "{text}");
    // A denied premium-rate number, and a national number made international.
    eval(&page, "var a = document.createElement('a'); a.href = 'tel:+979-1234-5678'; a.id = 'premium'; a.textContent = 'premium'; document.body.appendChild(a); var b = document.createElement('a'); b.href = 'tel:021 5555 0199'; b.id = 'national'; b.textContent = 'national'; document.body.appendChild(b); 1").await;
    page.find_element("#premium")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.find_element("#national")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rows = wait_for(
        &page,
        "document.querySelectorAll('.tccc-standin-call').length",
        &json!(2),
    )
    .await;
    assert_eq!(rows, json!(2));
    let events = wait_for(&page, "window.__events.length", &json!(3)).await;
    assert_eq!(events, json!(3));
    let mut events: Vec<String> =
        serde_json::from_value(eval(&page, "window.__events").await).unwrap();
    events.sort();
    assert_eq!(
        events,
        vec![
            "tccc:call-error denied",
            "tccc:call-start +862155550101",
            "tccc:call-start +862155550199"
        ]
    );
    assert_eq!(
        w.seat(ALICE_SEAT)["calls_started"],
        2,
        "the premium number never reached the workbench"
    );
    page.close().await.unwrap();

    // Not enabled: the link is left to the browser, and no call starts. A call made through
    // the API afterwards shows that the page was ready and calls do work.
    let w = world("").await;
    let page = crate::browser::open(browser, &w, "/plain", "alice").await;
    assert_ready_with_button(&page, "plain page").await;
    eval(&page, "window.__prevented = null; window.addEventListener('click', function (e) { if (e.target.tagName === 'A') { window.__prevented = e.defaultPrevented; e.preventDefault(); } }); 1").await;
    page.find_element("a[href^='tel:']")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        wait_for(&page, "window.__prevented", &json!(false)).await,
        json!(false),
        "untouched"
    );
    eval(
        &page,
        "tcccSidecar.call('+8613800000009').then(function () { window.__api = 1; }); 1",
    )
    .await;
    assert_eq!(wait_for(&page, "window.__api", &json!(1)).await, json!(1));
    let text = eval(&page, "Array.prototype.map.call(document.querySelectorAll('.tccc-standin-call'), function (r) { return r.firstChild.nodeValue; })").await;
    assert_eq!(text.as_array().unwrap().len(), 1, "{text}");
    assert!(
        text[0].as_str().unwrap().contains("+8613800000009"),
        "{text}"
    );
    page.close().await.unwrap();
}

/// `tccc-sidecar demo --shell` as a newcomer runs it: the login form inside the shell, the
/// workbench once signed in, a customer's page, a call from there. The screenshot (a call in
/// progress on the second page) is the README's (`target/screenshots/demo-shell.png`).
async fn demo_shell_as_a_newcomer(browser: &Browser) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tccc-sidecar"));
    cmd.args(["demo", "--shell", "--listen", "127.0.0.1:0"]);
    let (_child, rx) = crate::cli::spawn_reading(cmd, true);
    let port = loop {
        let line = rx.recv_timeout(WAIT).expect("the demo's instructions");
        if let Some(rest) = line.trim().strip_prefix("Open   https://localhost:") {
            break rest.trim_end_matches('/').parse::<u16>().unwrap();
        }
    };
    let page = browser.new_page("about:blank").await.unwrap();
    page.evaluate_on_new_document(COLLECT_VIOLATIONS)
        .await
        .unwrap();
    page.goto(format!("https://localhost:{port}/"))
        .await
        .unwrap();
    let bar = wait_for(&page, "location.pathname", &json!("/login")).await;
    assert_eq!(
        bar,
        json!("/login"),
        "the address bar follows the frame's redirect"
    );
    log_in_in_frame(&page, "alice", "alice-demo").await;
    assert_ready_with_button(&page, "demo --shell after login").await;
    // A call from the customer list (the CRM's own integration), then the second customer's
    // page: the call goes on.
    let ready = wait_for(&page, &framed(FRAME_STATE), &json!("ready")).await;
    assert_eq!(ready, json!("ready"));
    call_from_frame(&page, 1, "+8675555550102").await;
    eval(
        &page,
        &framed("d.querySelectorAll('a.customer')[1].click(), 1"),
    )
    .await;
    let here = wait_for(&page, "location.pathname", &json!("/customers/2")).await;
    assert_eq!(here, json!("/customers/2"));
    let ready = wait_for(
        &page,
        &framed(&format!(
            "w.location.pathname === '/customers/2' && {FRAME_STATE}"
        )),
        &json!("ready"),
    )
    .await;
    assert_eq!(ready, json!("ready"));
    assert_eq!(
        eval(&page, "document.title").await,
        json!("Shenzhen Devices Ltd. — Demo CRM")
    );
    assert_eq!(
        eval(&page, CALLS).await,
        json!(["calling"]),
        "the call goes on"
    );
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shot).unwrap();
    page.save_screenshot(
        chromiumoxide::page::ScreenshotParams::builder()
            .full_page(false)
            .build(),
        shot.join("demo-shell.png"),
    )
    .await
    .unwrap();
    // Hang up, so that closing the tab asks nothing.
    eval(&page, "tccc.Call.getCalls().forEach(function (c) { tccc.Call.hungUp({ sessionId: c.sessionId }); }); 1").await;
    assert_eq!(
        wait_for(&page, CALLS, &json!(["ended"])).await,
        json!(["ended"])
    );
    page.close().await.unwrap();
}
