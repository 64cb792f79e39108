//! The demo CRM: a deliberately ordinary, legacy-style web app (plain HTTP, server-rendered
//! pages, a session cookie) for the sidecar to front. Two users, a customer list with phone
//! numbers, a page per customer with notes added by a form POST, a `target="_top"` link in
//! the header (as framed legacy apps have), and `/api/whoami` answering the logged-in
//! user's id as JSON.

use crate::wire::responses::full;
use crate::wire::Body;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A demo login: user id, display name, password.
pub const USERS: [(&str, &str, &str); 2] = [
    ("alice", "Alice Chen", "alice-demo"),
    ("bob", "Bob Li", "bob-demo"),
];

pub const SESSION_COOKIE: &str = "demo_session";

const CUSTOMERS: [(&str, &str, &str); 4] = [
    ("Shanghai Trading Co.", "Ms. Wang", "+86 21 5555 0101"),
    ("Shenzhen Devices Ltd.", "Mr. Zhao", "+86 755 5555 0102"),
    ("Beijing Logistics", "Ms. Sun", "+86 10 5555 0103"),
    ("Hangzhou Tea House", "Mr. Qian", "+86 571 5555 0104"),
];

/// The CRM's own integration, as the vendor's guide has an integrator write it: once the
/// workbench is ready, a click on a phone number calls it through the SDK instead of the OS
/// dialler. (It knows nothing of the sidecar beyond the `tccc` global.)
const CALL_SCRIPT: &str = "document.addEventListener('click', function (e) {\
  var a = e.target.closest && e.target.closest('a[href^=\"tel:\"]');\
  if (!a || !window.tccc || !tccc.Call || document.documentElement.getAttribute('data-tccc-state') !== 'ready') return;\
  e.preventDefault();\
  var n = a.getAttribute('href').slice(4);\
  var s = document.getElementById('call-status');\
  s.textContent = 'Calling ' + n + '…';\
  Promise.resolve(tccc.Call.startOutboundCall({ phoneNumber: n })).then(function () {\
    s.textContent = 'Call started: ' + n;\
  }, function (err) { s.textContent = 'Call failed: ' + (err && err.message || err); });\
});";

/// Sessions: random token → user id; notes per customer.
#[derive(Default, Clone)]
pub struct Crm {
    sessions: Arc<Mutex<HashMap<String, String>>>,
    notes: Arc<Mutex<HashMap<usize, Vec<String>>>>,
}

/// `/customers/N` (N from 1) → the customer's index.
fn customer_index(path: &str) -> Option<usize> {
    let n: usize = path.strip_prefix("/customers/")?.parse().ok()?;
    (1..=CUSTOMERS.len()).contains(&n).then(|| n - 1)
}

impl Crm {
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let user = self.session_user(&req);
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/") => redirect(if user.is_some() {
                "/customers"
            } else {
                "/login"
            }),
            (&Method::GET, "/login") => html(StatusCode::OK, &login_page(None)),
            (&Method::POST, "/login") => self.login(req).await,
            (&Method::GET, "/logout") => {
                if let Some(token) = session_token(&req) {
                    self.lock().remove(&token);
                }
                let mut r = redirect("/login");
                r.headers_mut().insert(
                    header::SET_COOKIE,
                    header::HeaderValue::from_static("demo_session=; Path=/; Max-Age=0; HttpOnly"),
                );
                r
            }
            (&Method::GET, "/customers") => match user {
                Some(u) => html_titled(StatusCode::OK, "Customers", &customers_page(&u)),
                None => redirect("/login"),
            },
            (&Method::GET, "/reports/legacy") => match user {
                Some(u) => html_titled(StatusCode::OK, "Legacy report", &legacy_report(&u)),
                None => redirect("/login"),
            },
            (&Method::GET, path) if customer_index(path).is_some() => {
                match (user, customer_index(path)) {
                    (Some(u), Some(i)) => {
                        let notes = self.notes_lock().get(&i).cloned().unwrap_or_default();
                        html_titled(
                            StatusCode::OK,
                            CUSTOMERS[i].0,
                            &customer_page(&u, i, &notes),
                        )
                    }
                    _ => redirect("/login"),
                }
            }
            (&Method::POST, path) if path.ends_with("/notes") => {
                let index = customer_index(path.trim_end_matches("/notes"));
                match (user, index) {
                    (Some(_), Some(i)) => self.add_note(req, i).await,
                    (None, _) => redirect("/login"),
                    _ => html(StatusCode::NOT_FOUND, "<h1>Not found</h1>"),
                }
            }
            (&Method::GET, "/api/whoami") => match user {
                Some(u) => {
                    let name = USERS.iter().find(|x| x.0 == u).map(|x| x.1).unwrap_or("");
                    let body = serde_json::json!({ "id": u, "name": name }).to_string();
                    let mut r = Response::new(full(body));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/json"),
                    );
                    r
                }
                // Like many legacy apps: not logged in means a redirect to the login page.
                None => redirect("/login"),
            },
            _ => html(StatusCode::NOT_FOUND, "<h1>Not found</h1>"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notes_lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Vec<String>>> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A note from the customer page's form; then back to the page (POST, redirect, GET).
    async fn add_note(&self, req: Request<Incoming>, customer: usize) -> Response<Body> {
        let body = match http_body_util::Limited::new(req.into_body(), 4096)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => return html(StatusCode::PAYLOAD_TOO_LARGE, "<h1>Too large</h1>"),
        };
        let form = form_decode(&String::from_utf8_lossy(&body));
        let note = form.get("note").map(|n| n.trim()).unwrap_or("");
        if !note.is_empty() {
            let mut notes = self.notes_lock();
            let list = notes.entry(customer).or_default();
            if list.len() < 50 {
                list.push(note.chars().take(500).collect());
            }
        }
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = header::HeaderValue::from_str(&format!("/customers/{}", customer + 1)) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    }

    fn session_user(&self, req: &Request<Incoming>) -> Option<String> {
        let token = session_token(req)?;
        self.lock().get(&token).cloned()
    }

    async fn login(&self, req: Request<Incoming>) -> Response<Body> {
        let body = match http_body_util::Limited::new(req.into_body(), 4096)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => return html(StatusCode::PAYLOAD_TOO_LARGE, "<h1>Too large</h1>"),
        };
        let form: HashMap<String, String> = form_decode(&String::from_utf8_lossy(&body));
        let user = form.get("user").map(String::as_str).unwrap_or("");
        let pass = form.get("password").map(String::as_str).unwrap_or("");
        if !USERS.iter().any(|(u, _, p)| *u == user && *p == pass) {
            return html(
                StatusCode::UNAUTHORIZED,
                &login_page(Some("Unknown user or wrong password.")),
            );
        }
        let token = format!("{:032x}", rand::random::<u128>());
        self.lock().insert(token.clone(), user.to_string());
        let mut r = redirect("/customers");
        if let Ok(v) = header::HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax"
        )) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    }
}

fn session_token(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn form_decode(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                crate::wire::urlenc::decode_component(k),
                crate::wire::urlenc::decode_component(v),
            )
        })
        .collect()
}

fn redirect(to: &'static str) -> Response<Body> {
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(header::LOCATION, header::HeaderValue::from_static(to));
    r
}

fn html(status: StatusCode, body: &str) -> Response<Body> {
    html_titled(status, "", body)
}

fn html_titled(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    let title = if title.is_empty() {
        "Demo CRM".to_string()
    } else {
        format!("{} — Demo CRM", crate::wire::html::escape(title))
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem}}table{{border-collapse:collapse}}\
         td,th{{padding:.4rem .8rem;border-bottom:1px solid #ddd;text-align:left}}</style></head>\
         <body>{body}</body></html>\n"
    );
    let mut r = Response::new(full(page));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // What security scanners make legacy apps send: no framing at all. Shell mode relaxes it
    // to same-origin for its own frame only.
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("frame-ancestors 'none'"),
    );
    r
}

fn login_page(error: Option<&str>) -> String {
    let err = error
        .map(|e| format!("<p style=\"color:#b00\">{e}</p>"))
        .unwrap_or_default();
    format!(
        "<h1>Demo CRM</h1>{err}<form method=\"post\" action=\"/login\">\
         <p><label>User <input name=\"user\" autocomplete=\"username\"></label></p>\
         <p><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label></p>\
         <p><button type=\"submit\">Log in</button></p></form>"
    )
}

fn display_name(user: &str) -> &str {
    USERS
        .iter()
        .find(|x| x.0 == user)
        .map(|x| x.1)
        .unwrap_or(user)
}

/// The header of every signed-in page. Its "Customers" link has `target="_top"`, as links in
/// the navigation of framed legacy apps often do.
fn header_bar(user: &str) -> String {
    format!(
        "<p>Logged in as <b id=\"user\">{}</b> · <a id=\"nav-customers\" href=\"/customers\" target=\"_top\">Customers</a> \
         · <a href=\"/logout\">Log out</a></p>",
        crate::wire::html::escape(display_name(user))
    )
}

fn phone_link(phone: &str) -> String {
    let digits: String = phone
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    format!("<a href=\"tel:{digits}\">{phone}</a>")
}

fn customers_page(user: &str) -> String {
    let rows: String = CUSTOMERS
        .iter()
        .enumerate()
        .map(|(i, (company, contact, phone))| {
            format!(
                "<tr><td><a class=\"customer\" href=\"/customers/{}\">{company}</a></td><td>{contact}</td><td>{}</td></tr>",
                i + 1,
                phone_link(phone)
            )
        })
        .collect();
    format!(
        "{}<h1>Customers</h1><table><tr><th>Company</th><th>Contact</th><th>Phone</th></tr>{rows}</table>\
         <p id=\"call-status\"></p><p><a id=\"legacy-report\" href=\"/reports/legacy\">Legacy report</a> \
         (an old page that breaks out of frames)</p><script>{CALL_SCRIPT}</script>",
        header_bar(user)
    )
}

fn customer_page(user: &str, index: usize, notes: &[String]) -> String {
    let (company, contact, phone) = CUSTOMERS[index];
    let notes: String = notes
        .iter()
        .map(|n| format!("<li class=\"note\">{}</li>", crate::wire::html::escape(n)))
        .collect();
    format!(
        "{}<h1 id=\"company\">{company}</h1><p>Contact: {contact} · Phone: {}</p>\
         <h2>Notes</h2><ul id=\"notes\">{notes}</ul>\
         <form method=\"post\" action=\"/customers/{}/notes\"><p><label>New note \
         <input name=\"note\" size=\"40\"></label> <button type=\"submit\">Add note</button></p></form>\
         <p><a href=\"/customers\">Back to the customer list</a></p>\
         <p id=\"call-status\"></p><script>{CALL_SCRIPT}</script>",
        header_bar(user),
        phone_link(phone),
        index + 1
    )
}

/// An old page that breaks out of any frame, as many pre-2010 apps do: shell mode notices and
/// shows it in script mode.
fn legacy_report(user: &str) -> String {
    format!(
        "<script>if (top !== self) {{ top.location = self.location; }}</script>{}\
         <h1>Legacy report</h1><p id=\"report\">Calls this week: 42</p>",
        header_bar(user)
    )
}
