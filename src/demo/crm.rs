//! The demo CRM: a deliberately ordinary, legacy-style web app (plain HTTP, server-rendered
//! pages, a session cookie) for the sidecar to front. Two users, a customer list with phone
//! numbers, and `/api/whoami` answering the logged-in user's id as JSON.

use crate::proxy::responses::full;
use crate::proxy::Body;
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

/// Sessions: random token → user id.
#[derive(Default, Clone)]
pub struct Crm {
    sessions: Arc<Mutex<HashMap<String, String>>>,
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
                Some(u) => html(StatusCode::OK, &customers_page(&u)),
                None => redirect("/login"),
            },
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
                crate::urlenc::decode_component(k),
                crate::urlenc::decode_component(v),
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
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Demo CRM</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem}}table{{border-collapse:collapse}}\
         td,th{{padding:.4rem .8rem;border-bottom:1px solid #ddd;text-align:left}}</style></head>\
         <body>{body}</body></html>\n"
    );
    let mut r = Response::new(full(page));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
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

fn customers_page(user: &str) -> String {
    let name = USERS
        .iter()
        .find(|x| x.0 == user)
        .map(|x| x.1)
        .unwrap_or(user);
    let rows: String = CUSTOMERS
        .iter()
        .map(|(company, contact, phone)| {
            let digits: String = phone.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
            format!("<tr><td>{company}</td><td>{contact}</td><td><a href=\"tel:{digits}\">{phone}</a></td></tr>")
        })
        .collect();
    format!(
        "<p>Logged in as <b id=\"user\">{name}</b> · <a href=\"/logout\">Log out</a></p>\
         <h1>Customers</h1><table><tr><th>Company</th><th>Contact</th><th>Phone</th></tr>{rows}</table>\
         <p id=\"call-status\"></p><script>{CALL_SCRIPT}</script>"
    )
}
