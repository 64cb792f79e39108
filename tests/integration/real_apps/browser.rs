//! Real third-party apps in a real browser (run by `browser.rs`'s one Chromium): Trac 1.6
//! under `tracd` and Django 5.2's admin, each unmodified on plain HTTP on loopback behind the
//! sidecar and the CCC emulator, in script mode and in shell mode. An agent signs in with the
//! app's own login (Trac's Basic auth answered through DevTools' `Fetch.authRequired`, as a
//! person answers the browser's dialog; Django's form), sees the workbench, moves through
//! four pages, sends a form with the app's CSRF token and follows its redirect, signs out
//! (the workbench ends) and signs in again. In shell mode a call started after signing in
//! survives all of it on one token and one WebSocket, and the shell stays the shell across
//! every sign-in and sign-out, also when the app lands on the address it started from.
//! Django's settings and both apps' identity rules are read from their guides in `docs/apps/`,
//! so that the guides are what is tested.

use super::apps::*;
use crate::browser::*;
use crate::browser_shell::{framed, ALICE_SEAT, CALLS, FRAME_STATE};
use chromiumoxide::auth::Credentials;
use chromiumoxide::browser::Browser;
use chromiumoxide::cdp::browser_protocol::fetch::EventAuthRequired;
use chromiumoxide::cdp::browser_protocol::network::ClearBrowserCookiesParams;
use chromiumoxide::Page;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: &[(&str, &str)] = &[("alice", "pw-alice"), ("bob", "pw-bob")];

pub(crate) async fn scenarios(browser: &Browser) {
    let started = Instant::now();
    let trac = trac_with_form_cookie(
        USERS,
        &TracData {
            full_names: &[],
            tickets: &[("bob", "Printer on fire", "Call the customer back.")],
        },
    )
    .await;
    let identity = guide_block("trac.md", "toml");
    for shell in [false, true] {
        trac_scenario(browser, &trac, &identity, shell).await;
    }
    let settings = guide_block("django.md", "python");
    let identity = guide_block("django.md", "toml");
    let django = django_admin(USERS, &[], &settings).await;
    for shell in [false, true] {
        django_scenario(browser, &django, &identity, shell).await;
    }
    eprintln!(
        "real apps in Chromium: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The app's page: the top document in script mode, the shell's frame in shell mode (`w`: its
/// window, `d`: its document); `null` while it is between two documents.
fn app(shell: bool, js: &str) -> String {
    if shell {
        framed(js)
    } else {
        format!("(function(){{try{{var w=window;var d=document;return ({js});}}catch(e){{return null}}}})()")
    }
}

/// A new tab whose Basic-auth challenges are answered with `user`'s credentials, as a person
/// answers the browser's dialog: chromiumoxide pauses requests with DevTools' `Fetch` domain
/// and answers each `Fetch.authRequired` with `Fetch.continueWithAuth`. Counts the challenges.
async fn tab_answering_basic(
    browser: &Browser,
    user: &str,
    password: &str,
) -> (Page, Arc<AtomicUsize>) {
    let page = fresh_tab(browser).await;
    let mut auth = page.event_listener::<EventAuthRequired>().await.unwrap();
    page.authenticate(Credentials {
        username: user.to_string(),
        password: password.to_string(),
    })
    .await
    .unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    tokio::spawn(async move {
        while auth.next().await.is_some() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    page.evaluate_on_new_document(COLLECT_VIOLATIONS)
        .await
        .unwrap();
    (page, asked)
}

/// A new tab with no cookie from an earlier scenario: cookies belong to a host, not to a port,
/// so the app's session from the other mode would otherwise reach this sidecar too.
async fn fresh_tab(browser: &Browser) -> Page {
    let page = browser.new_page("about:blank").await.unwrap();
    page.execute(ClearBrowserCookiesParams::default())
        .await
        .unwrap();
    page
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + BROWSER_WAIT;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done(), "{what}");
}

/// What the emulator counted for alice's seat: tokens, WebSocket connects, disconnects.
fn alice(w: &World) -> (Value, Value, Value) {
    let s = w.seat(ALICE_SEAT);
    (
        s["tokens_issued"].clone(),
        s["websocket_connects"].clone(),
        s["websocket_disconnects"].clone(),
    )
}

/// The app shows `path`, and the agent sees what each mode promises there. Shell mode: the
/// shell is still the shell (never fallen back to script mode), its workbench ready with
/// `workbenches` tokens and WebSockets so far, the address bar following the frame, and the
/// call (when one was started) still going on.
async fn on_page(page: &Page, w: &World, shell: bool, path: &str, workbenches: u64, call: bool) {
    let what = format!("{} mode, {path}", if shell { "shell" } else { "script" });
    let here = wait_for(
        page,
        &app(
            shell,
            "d.readyState === 'complete' && w.location.pathname + w.location.search",
        ),
        &json!(path),
    )
    .await;
    assert_eq!(here, json!(path), "{what}: the page shown");
    if shell {
        assert_eq!(
            wait_for(page, &framed(FRAME_STATE), &json!("ready")).await,
            json!("ready"),
            "{what}: the framed page's state"
        );
        assert_eq!(
            eval(page, "document.documentElement.hasAttribute('data-tccc-shell') && document.cookie.indexOf('__tccc_shell=') < 0").await,
            json!(true),
            "{what}: still the shell, with no fallback to script mode"
        );
        assert_eq!(
            wait_for(page, "location.pathname + location.search", &json!(path)).await,
            json!(path),
            "{what}: the address bar"
        );
        assert_eq!(
            alice(w),
            (
                json!(workbenches),
                json!(workbenches),
                json!(workbenches - 1)
            ),
            "{what}: tokens, WebSockets and disconnects"
        );
        if call {
            let calls = eval(page, CALLS).await;
            assert_eq!(calls, json!(["calling"]), "{what}: the call goes on");
        }
    }
    assert_ready_with_button(page, &what).await;
}

/// No workbench: nobody is signed in (`state`: the loader's answer; `null` for a page that
/// answers a form in script mode, which gets no loader). Shell mode: the workbench ended
/// (one more disconnect) and the tab is still the shell.
async fn signed_out(page: &Page, w: &World, shell: bool, path: &str, state: Value) {
    let what = format!(
        "{} mode, signed out",
        if shell { "shell" } else { "script" }
    );
    let shown = wait_for(
        page,
        &app(
            shell,
            "d.readyState === 'complete' && w.location.pathname + w.location.search",
        ),
        &json!(path),
    )
    .await;
    assert_eq!(shown, json!(path), "{what}: the page shown");
    let want = state;
    let state = wait_for(page, STATE, &want).await;
    assert_eq!(
        state,
        want,
        "{what}: nobody signed in; the page: {}",
        eval(
            page,
            &app(
                shell,
                "w.location.href + ' ' + d.title + ' ' + d.body.textContent.slice(0, 300)"
            )
        )
        .await
    );
    assert_eq!(
        eval(page, BUTTON).await,
        Value::Null,
        "{what}: no workbench"
    );
    if shell {
        wait_until(&format!("{what}: alice's workbench ended"), || {
            w.seat(ALICE_SEAT)["websocket_disconnects"] == 1
        })
        .await;
        assert_eq!(
            eval(page, "document.documentElement.hasAttribute('data-tccc-shell') && document.cookie.indexOf('__tccc_shell=') < 0").await,
            json!(true),
            "{what}: still the shell"
        );
    }
}

/// Clicks what `selector` finds in the app's page.
async fn click(page: &Page, shell: bool, selector: &str) {
    let found = wait_for(
        page,
        &app(
            shell,
            &format!(
                "d.readyState === 'complete' && !!d.querySelector({})",
                json!(selector)
            ),
        ),
        &json!(true),
    )
    .await;
    assert_eq!(found, json!(true), "{selector} on the page");
    eval(
        page,
        &app(
            shell,
            &format!("(d.querySelector({}).click(), 1)", json!(selector)),
        ),
    )
    .await;
}

async fn fill(page: &Page, shell: bool, selector: &str, value: &str) {
    let set = eval(
        page,
        &app(
            shell,
            &format!(
                "(d.querySelector({}).value = {}, 1)",
                json!(selector),
                json!(value)
            ),
        ),
    )
    .await;
    assert_eq!(set, json!(1), "{selector} filled");
}

/// A call from the app's page through the sidecar's API (in shell mode, the bridge's: the
/// shell's workbench places it).
async fn start_call(page: &Page, w: &World) {
    eval(
        page,
        &framed("(w.tcccSidecar.call('+8613800000000').then(function (r) { w.__called = r.phoneNumber; }), 1)"),
    )
    .await;
    assert_eq!(
        wait_for(page, &framed("w.__called"), &json!("+8613800000000")).await,
        json!("+8613800000000"),
        "the call started"
    );
    assert_eq!(eval(page, CALLS).await, json!(["calling"]));
    assert_eq!(w.seat(ALICE_SEAT)["calls_started"], 1);
}

async fn trac_scenario(browser: &Browser, trac: &App, identity: &str, shell: bool) {
    let crm = trac.url.trim_start_matches("http://").parse().unwrap();
    let inject = if shell { "mode = \"shell\"" } else { "" };
    let w = world_in_front_of(crm, identity, inject).await;
    let (page, asked) = tab_answering_basic(browser, "alice", "pw-alice").await;
    page.goto(w.url("/")).await.unwrap();
    let mode = if shell { "shell" } else { "script" };
    // Nobody signed in: no workbench, and Trac offers its login.
    assert_eq!(
        wait_for(&page, STATE, &json!("unauthorized")).await,
        json!("unauthorized"),
        "{mode}: anonymous"
    );
    // Sign in: Trac's /login asks for Basic auth and returns to the page it came from,
    // which is the very address the agent started at.
    click(&page, shell, "#metanav a[href='/login']").await;
    let who = wait_for(
        &page,
        &app(
            shell,
            "d.querySelector('#metanav .trac-author-user').textContent",
        ),
        &json!("alice"),
    )
    .await;
    assert_eq!(
        who,
        json!("alice"),
        "{mode}: signed in to Trac (asked {} times; the page: {})",
        asked.load(Ordering::SeqCst),
        eval(
            &page,
            &app(
                shell,
                "w.location.href + ' ' + d.title + ' ' + d.body.textContent.slice(0, 200)"
            )
        )
        .await
    );
    assert!(
        asked.load(Ordering::SeqCst) >= 1,
        "the browser was asked for Basic credentials"
    );
    on_page(&page, &w, shell, "/", 1, false).await;
    if shell {
        start_call(&page, &w).await;
    }
    for (link, path) in [
        ("#mainnav a[href='/timeline']", "/timeline"),
        ("#mainnav a[href='/roadmap']", "/roadmap"),
        ("#mainnav a[href='/report']", "/report"),
        ("#mainnav a[href='/wiki']", "/wiki"),
    ] {
        click(&page, shell, link).await;
        on_page(&page, &w, shell, path, 1, shell).await;
    }
    // A form with Trac's own CSRF token (__FORM_TOKEN), answered by a redirect to the new
    // ticket.
    click(&page, shell, "#mainnav a[href='/newticket']").await;
    on_page(&page, &w, shell, "/newticket", 1, shell).await;
    let summary = format!("Callback from the {mode} workbench");
    fill(&page, shell, "#field-summary", &summary).await;
    let token = eval(
        &page,
        &app(
            shell,
            "d.querySelector('#propertyform input[name=__FORM_TOKEN]').value.length",
        ),
    )
    .await;
    assert!(token.as_u64().unwrap_or(0) > 0, "Trac's form token");
    click(&page, shell, "#propertyform input[name=submit]").await;
    let n = if shell { 3 } else { 2 };
    let ticket = format!("/ticket/{n}");
    on_page(&page, &w, shell, &ticket, 1, shell).await;
    // Trac has the ticket, reported by alice: asked directly, past the sidecar.
    let text = no_redirects()
        .get(format!("{}/ticket/{n}", trac.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(&summary), "{mode}: Trac stored the ticket");
    assert!(
        text.contains("trac-author-user\">alice<") || text.contains(">alice</a>"),
        "{mode}: reported by alice"
    );
    // Sign out (Trac's logout form, with its token): the workbench ends; Trac returns to the
    // ticket.
    click(&page, shell, "#logout button[type=submit]").await;
    signed_out(&page, &w, shell, &ticket, json!("unauthorized")).await;
    // Sign in again, on the same ticket.
    click(&page, shell, "#metanav a[href='/login']").await;
    on_page(&page, &w, shell, &ticket, 2, false).await;
    assert_eq!(
        eval(&page, "window.__csp").await,
        json!([]),
        "{mode}: no CSP violation"
    );
    page.close().await.unwrap();
}

/// The first fenced block in `lang` of `docs/apps/<page>`: the settings a guide tells an
/// admin to use, which the tests use as they are. A `[identity]` header line is dropped
/// (the test's sidecar writes its own).
pub(crate) fn guide_block(page: &str, lang: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/apps")
        .join(page);
    let doc = std::fs::read_to_string(&path).unwrap();
    let fence = format!("```{lang}\n");
    let start = doc
        .find(&fence)
        .unwrap_or_else(|| panic!("a {lang} block in {}", path.display()))
        + fence.len();
    let len = doc[start..].find("```").unwrap();
    doc[start..start + len]
        .lines()
        .filter(|l| l.trim() != "[identity]")
        .collect::<Vec<_>>()
        .join("\n")
}

async fn django_scenario(browser: &Browser, django: &App, identity: &str, shell: bool) {
    let crm = django.url.trim_start_matches("http://").parse().unwrap();
    let inject = if shell { "mode = \"shell\"" } else { "" };
    let w = world_in_front_of(crm, identity, inject).await;
    let page = fresh_tab(browser).await;
    page.evaluate_on_new_document(COLLECT_VIOLATIONS)
        .await
        .unwrap();
    page.goto(w.url("/admin/")).await.unwrap();
    let mode = if shell { "shell" } else { "script" };
    // The admin sends the anonymous agent to its login form.
    let login = "/admin/login/?next=/admin/";
    let here = wait_for(
        &page,
        &app(shell, "w.location.pathname + w.location.search"),
        &json!(login),
    )
    .await;
    assert_eq!(here, json!(login), "{mode}: the admin's login form");
    assert_eq!(
        wait_for(&page, STATE, &json!("unauthorized")).await,
        json!("unauthorized"),
        "{mode}: anonymous"
    );
    sign_in_to_django(&page, shell).await;
    on_page(&page, &w, shell, "/admin/", 1, false).await;
    if shell {
        start_call(&page, &w).await;
    }
    for (link, path) in [
        ("a[href='/admin/auth/user/']", "/admin/auth/user/"),
        (
            "a[href='/admin/auth/user/1/change/']",
            "/admin/auth/user/1/change/",
        ),
        ("#site-name a", "/admin/"),
        ("a[href='/admin/auth/group/']", "/admin/auth/group/"),
    ] {
        click(&page, shell, link).await;
        on_page(&page, &w, shell, path, 1, shell).await;
    }
    // The admin's own form, with its CSRF token, answered by a redirect to the list.
    let group = format!("Support {mode}");
    click(&page, shell, "a[href='/admin/auth/group/add/']").await;
    on_page(&page, &w, shell, "/admin/auth/group/add/", 1, shell).await;
    fill(&page, shell, "#id_name", &group).await;
    click(&page, shell, "input[name=_save]").await;
    on_page(&page, &w, shell, "/admin/auth/group/", 1, shell).await;
    let listed = wait_for(
        &page,
        &app(
            shell,
            &format!("d.body.textContent.indexOf({}) >= 0", json!(group)),
        ),
        &json!(true),
    )
    .await;
    assert_eq!(listed, json!(true), "{mode}: the new group is listed");
    // Django has it (the admin's own models, asked directly).
    django_shell(
        django,
        &format!(
            "from django.contrib.auth.models import Group\nassert Group.objects.filter(name={}).exists()",
            json!(group)
        ),
    );
    // Sign out: the admin's logout is a form (POST) answered by its "Logged out" page.
    click(&page, shell, "#logout-form button[type=submit]").await;
    // Script mode: the "Logged out" page answers the form and gets no loader.
    let state = if shell {
        json!("unauthorized")
    } else {
        Value::Null
    };
    let path = if shell {
        "/admin/login/?next=/admin/auth/group/"
    } else {
        "/admin/logout/"
    };
    signed_out(&page, &w, shell, path, state).await;
    // Sign in again. Script mode: from the admin's "Logged out" page. Shell mode: the shell
    // reloaded at the last page the agent saw (the sign-out's answer is not asked for
    // again), which the admin now answers with its login form.
    let back = if shell {
        "/admin/auth/group/"
    } else {
        click(&page, shell, "#content a[href='/admin/']").await;
        "/admin/"
    };
    sign_in_to_django(&page, shell).await;
    on_page(&page, &w, shell, back, 2, false).await;
    assert_eq!(
        eval(&page, "window.__csp").await,
        json!([]),
        "{mode}: no CSP violation"
    );
    page.close().await.unwrap();
}

async fn sign_in_to_django(page: &Page, shell: bool) {
    let form = wait_for(
        page,
        &app(
            shell,
            "d.readyState === 'complete' && !!d.querySelector('#login-form input[name=csrfmiddlewaretoken]')",
        ),
        &json!(true),
    )
    .await;
    assert_eq!(
        form,
        json!(true),
        "the admin's login form, with its CSRF token"
    );
    fill(page, shell, "#id_username", "alice").await;
    fill(page, shell, "#id_password", "pw-alice").await;
    click(page, shell, "#login-form input[type=submit]").await;
}
