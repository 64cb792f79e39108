//! Zero-code identity in front of real third-party apps (Trac 1.6, Django 5.2's admin), each
//! in its stock configuration: the user is read from the app's own pages by a selector that
//! must match exactly one element, or proved by the Basic credentials the browser already
//! sends. Each test checks both sides: the token (or the refusal and its reason in the audit
//! line) the browser gets, and what the application was asked.

pub(crate) mod apps;
pub(crate) mod browser;

use crate::login_common::*;
use apps::*;
use base64::Engine;

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A refusal the browser sees as 401 `unauthenticated`, with `reason` in the audit line.
async fn refused(env: &Env, logs: &Logs, headers: &[(&str, &str)], reason: &str) {
    let mut c = env.side.h1().await;
    let (s, _, v) = login(&mut c, headers).await;
    assert_error(s, &v, 401, "unauthenticated");
    assert_eq!(logs.last_reason(), reason, "{headers:?}");
}

async fn token_for(env: &Env, headers: &[(&str, &str)], seat: &str) {
    let before = env.issued(seat);
    let mut c = env.side.h1().await;
    let (s, _, v) = login(&mut c, headers).await;
    assert_token(s, &v);
    assert_eq!(env.issued(seat), before + 1, "the token is {seat}'s");
}

const USERS: &[(&str, &str)] = &[("alice", "pw-alice"), ("bob", "pw-bob")];

#[tokio::test]
async fn trac_behind_basic_auth_names_each_user_by_their_own_credentials() {
    let (logs, _guard) = Logs::capture();
    // alice calls herself "bob" in Trac's Preferences: Trac's menu now shows "bob".
    let data = TracData {
        full_names: &[("alice", "bob")],
        tickets: &[],
    };
    let app = trac_behind_basic_auth(USERS, &data).await;
    let identity = "mode = \"introspect\"\nurl = \"/newticket\"\nforward_authorization = true\n\
                    user_selector = \"label[for=field-cc] em\"";
    let env = Env::start(Opts {
        identity,
        upstream: Some(&app.url),
        ..Opts::default()
    })
    .await;
    let alice = basic("alice", "pw-alice");
    let bob = basic("bob", "pw-bob");
    token_for(&env, &[("authorization", &alice)], ALICE_SEAT).await;
    token_for(&env, &[("authorization", &alice)], ALICE_SEAT).await;
    token_for(&env, &[("authorization", &bob)], BOB_SEAT).await;
    // The app was asked once per user (the second request of alice's was a cache hit), and
    // Apache itself checked each password: its log names the user it authenticated.
    let log = app
        .log_when(|l| l.contains("alice GET /newticket") && l.contains("bob GET /newticket"))
        .await;
    assert_eq!(
        log.matches("alice GET /newticket HTTP/1.1 200").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("bob GET /newticket HTTP/1.1 200").count(),
        1,
        "{log}"
    );

    refused(&env, &logs, &[], "no Authorization").await;
    refused(
        &env,
        &logs,
        &[("authorization", &basic("alice", "wrong"))],
        "anonymous: the application refused the credentials",
    )
    .await;
    let log = app
        .log_when(|l| l.contains("alice GET /newticket HTTP/1.1 401"))
        .await;
    assert!(log.contains("alice GET /newticket HTTP/1.1 401"), "{log}");
    let log = app.log();
    refused(
        &env,
        &logs,
        &[("authorization", "Digest username=\"alice\", realm=\"Trac\", uri=\"/loginTCCC\", response=\"0\"")],
        "Authorization scheme bound to its own request (Digest, NTLM, Negotiate) cannot be forwarded",
    )
    .await;
    // Refused before the app is asked: Apache saw no further request.
    assert_eq!(
        app.log().lines().count(),
        log.lines().count(),
        "{}",
        app.log()
    );
    let all = logs.text();
    for secret in ["pw-alice", "pw-bob", alice.as_str(), &alice[6..]] {
        assert!(!all.contains(secret), "a credential reached the logs");
    }

    // What the guide warns against: Trac's menu shows the full name a user chose for
    // herself, so a rule reading it hands alice bob's seat. The Cc label above shows the
    // login name, which nobody can change.
    let shown = Env::start(Opts {
        identity: "mode = \"introspect\"\nurl = \"/newticket\"\nforward_authorization = true\n\
                   user_selector = \"#metanav .trac-author-user\"",
        upstream: Some(&app.url),
        ..Opts::default()
    })
    .await;
    token_for(&shown, &[("authorization", &alice)], BOB_SEAT).await;
}

/// The sidecar with the emulator in front of `app`, with `identity` as its `[identity]`.
async fn in_front_of(app: &App, identity: &str) -> Env {
    Env::start(Opts {
        identity,
        upstream: Some(&app.url),
        ..Opts::default()
    })
    .await
}

/// `trac_auth` for `user`, from Trac's own `/login` (Basic there only, as `tracd` does).
async fn trac_cookie(app: &App, user: &str, password: &str) -> String {
    let client = no_redirects();
    let resp = client
        .get(format!("{}/login", app.url))
        .header("authorization", basic(user, password))
        .send()
        .await
        .unwrap();
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("trac_auth="))
        .unwrap_or_else(|| panic!("no trac_auth from /login: {}", resp.status()));
    format!("trac_auth={}", cookie.split(';').next().unwrap())
}

#[tokio::test]
async fn trac_with_its_cookie_is_read_from_one_element_and_never_from_what_others_wrote() {
    let (logs, _guard) = Logs::capture();
    // mallory's ticket: its title and text say "logged in as mallory", in emphasis too.
    let data = TracData {
        full_names: &[],
        tickets: &[(
            "mallory",
            "logged in as mallory",
            "''mallory'' -- logged in as mallory",
        )],
    };
    let app = trac_with_form_cookie(USERS, &data).await;
    let alice = trac_cookie(&app, "alice", "pw-alice").await;
    let bob = trac_cookie(&app, "bob", "pw-bob").await;
    let rule = |selector: &str, extra: &str| {
        format!(
            "mode = \"introspect\"\nurl = \"/ticket/1\"\ncookies = [\"trac_auth\"]\nuser_selector = {}\n{extra}",
            serde_json::to_string(selector).unwrap()
        )
    };
    let env = in_front_of(&app, &rule("label[for=field-cc] em", "")).await;
    token_for(&env, &[("cookie", &alice)], ALICE_SEAT).await;
    token_for(&env, &[("cookie", &bob)], BOB_SEAT).await;
    refused(&env, &logs, &[], "no session cookie").await;
    // Signed out (a cookie Trac no longer knows): the anonymous page has no Cc field.
    refused(
        &env,
        &logs,
        &[("cookie", "trac_auth=0123456789abcdef0123456789abcdef")],
        "selector matched no element",
    )
    .await;

    // The ticket's emphasis is a second <em>: a rule that is not specific is refused.
    let env = in_front_of(&app, &rule("em", "")).await;
    refused(
        &env,
        &logs,
        &[("cookie", &alice)],
        "selector matched several elements",
    )
    .await;
    // The menu entry holds a sentence, not a user id.
    let env = in_front_of(&app, &rule("#metanav li.first", "")).await;
    refused(
        &env,
        &logs,
        &[("cookie", &alice)],
        "text is not a valid user",
    )
    .await;
    // The same sentence is in mallory's ticket; the regex reads only the menu entry.
    let env = in_front_of(
        &app,
        &rule("#metanav li.first", "user_regex = \"^logged in as (.+)$\""),
    )
    .await;
    token_for(&env, &[("cookie", &alice)], ALICE_SEAT).await;
}

/// `sessionid` for `user`, signed in through the admin's own login form.
async fn django_session(app: &App, user: &str, password: &str) -> String {
    let client = no_redirects();
    let page = client
        .get(format!("{}/admin/login/", app.url))
        .send()
        .await
        .unwrap();
    let csrf_cookie = set_cookie(page.headers(), "csrftoken");
    let token = form_token(&page.text().await.unwrap());
    let resp = client
        .post(format!("{}/admin/login/?next=/admin/", app.url))
        .header("cookie", format!("csrftoken={csrf_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        // The values are plain letters, digits and dashes: nothing to escape but the slashes.
        .body(format!(
            "csrfmiddlewaretoken={token}&username={user}&password={password}&next=%2Fadmin%2F"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "signed in");
    format!("sessionid={}", set_cookie(resp.headers(), "sessionid"))
}

/// The CSRF token of the admin's login form.
fn form_token(html: &str) -> String {
    html.split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string()
}

fn set_cookie(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_string()
}

#[tokio::test]
async fn django_admin_is_read_from_its_user_menu_and_a_display_name_is_refused() {
    let (logs, _guard) = Logs::capture();
    // An administrator gave bob the first name "Alice": the admin's menu shows it instead
    // of his login name.
    let app = django_admin(
        &[("admin", "pw-admin"), ("bob", "pw-bob")],
        &[("bob", "Alice")],
        "",
    )
    .await;
    // Another user's name in the page: the admin created a group called "bob", which the
    // index lists under "Recent actions".
    django_shell(
        &app,
        "from django.contrib.auth.models import User, Group\n\
         from django.contrib.admin.models import LogEntry, ADDITION\n\
         from django.contrib.contenttypes.models import ContentType\n\
         g = Group.objects.create(name='bob')\n\
         LogEntry.objects.log_actions(User.objects.get(username='admin').pk, [g], ADDITION, single_object=True)\n",
    );
    let admin = django_session(&app, "admin", "pw-admin").await;
    let bob = django_session(&app, "bob", "pw-bob").await;
    let env = Env::start(Opts {
        identity: "mode = \"introspect\"\nurl = \"/admin/\"\ncookies = [\"sessionid\"]\n\
                   user_selector = \"#user-tools strong\"\nuser_pattern = \"[a-z0-9_.@-]+\"",
        seats: "admin = \"agent-alice@example.com\"\nbob = \"agent-bob@example.com\"\n",
        upstream: Some(&app.url),
        ..Opts::default()
    })
    .await;
    let index = reqwest::Client::new()
        .get(format!("{}/admin/", app.url))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(index.contains(">bob</a>"), "the group is on the page read");
    token_for(&env, &[("cookie", &admin)], ALICE_SEAT).await;
    // bob's menu says "Alice": a display name, refused by the login-name pattern rather than
    // mapped to anyone.
    refused(&env, &logs, &[("cookie", &bob)], "text is not a valid user").await;
    assert_eq!(env.issued(BOB_SEAT), 0);
    refused(&env, &logs, &[], "no session cookie").await;
    // Signed out: the admin redirects to its login page.
    refused(
        &env,
        &logs,
        &[("cookie", "sessionid=0000000000000000000000000000000a")],
        "anonymous: the application redirected (to its sign-in page?)",
    )
    .await;

    // Why docs/apps/django.md exists: this stock project does not trust X-Forwarded-Proto, so
    // its own login form, posted from the HTTPS page through the sidecar, is refused by its
    // CSRF origin check. (The browser scenarios sign in with the guide's setting.)
    let mut c = env.side.h1().await;
    let (parts, body) = c.get("/admin/login/").await;
    assert_eq!(parts.status, 200);
    let token = form_token(&String::from_utf8_lossy(&body));
    let csrf = set_cookie(&parts.headers, "csrftoken");
    let form = format!("csrfmiddlewaretoken={token}&username=admin&password=pw-admin");
    let req = http::Request::post("/admin/login/")
        .header("origin", "https://localhost")
        .header("referer", "https://localhost/admin/login/")
        .header("cookie", format!("csrftoken={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::common::full(form))
        .unwrap();
    let (parts, body) = crate::common::read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("Origin checking failed"),
        "the refusal the guide quotes"
    );
}
