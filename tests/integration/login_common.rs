//! Shared set-up for the login endpoint tests: a sidecar with `[tccc]` pointed at a loopback
//! emulator, credential and seats files in a temporary folder, and a CRM stand-in.
#![allow(dead_code)]

use crate::common::*;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tccc_sidecar::emulator::{Emulator, EmulatorConfig};

pub const APP: u64 = 1400000000;
pub const ALICE_SEAT: &str = "agent-alice@example.com";
pub const BOB_SEAT: &str = "agent-bob@example.com";

pub struct Env {
    pub side: Sidecar,
    pub em: Arc<Emulator>,
    pub em_addr: std::net::SocketAddr,
    pub crm: Upstream,
    pub dir: TempDir,
}

pub struct Opts<'a> {
    pub identity: &'a str,
    pub login: &'a str,
    pub seats: &'a str,
    pub seats_extra: &'a str,
    pub tccc_extra: &'a str,
    pub server_extra: &'a str,
    pub crm: Option<Handler>,
    /// Put the sidecar in front of this URL (a real application) instead of the stand-in.
    pub upstream: Option<&'a str>,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            identity: "mode = \"header\"\ntrusted_peers = [\"127.0.0.1\"]",
            login: "",
            seats: "alice = \"agent-alice@example.com\"\nbob = \"agent-bob@example.com\"\ncarol = \"agent-carol@example.com\"\n",
            seats_extra: "",
            tccc_extra: "",
            server_extra: "",
            crm: None,
            upstream: None,
        }
    }
}

pub fn em_config() -> EmulatorConfig {
    EmulatorConfig {
        sdk_app_id: APP,
        secret_id: "AKIDlogin".into(),
        secret_key: "login-secret-key".into(),
        session_token: None,
        // carol is mapped by the seats file but unknown to CCC.
        seats: vec![
            ALICE_SEAT.into(),
            BOB_SEAT.into(),
            "tpl-dave@corp.example".into(),
        ],
        clock: None,
        rate_limit: 0,
        sdk_origin: "https://127.0.0.1:9".into(),
    }
}

/// The CRM stand-in: `/api/whoami` names the user of cookie `sid` (s-alice, s-bob), and
/// redirects to the login page otherwise; every other path answers a small page.
pub fn crm_handler() -> Handler {
    handler(|s: Seen| async move {
        if s.uri.path() == "/api/whoami" {
            let cookie = s
                .headers
                .get("cookie")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let user = cookie
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("sid="))
                .find_map(|v| v.strip_prefix("s-"))
                .map(str::to_string);
            return match user {
                Some(u) => Response::builder()
                    .header("content-type", "application/json")
                    .body(full(format!(
                        "{{\"user\":{{\"id\":\"{u}\",\"name\":\"Display {u}\"}}}}"
                    )))
                    .unwrap(),
                None => Response::builder()
                    .status(302)
                    .header("location", "/login")
                    .body(empty())
                    .unwrap(),
            };
        }
        Response::new(full("crm page"))
    })
}

impl Env {
    pub async fn start(o: Opts<'_>) -> Env {
        Env::start_with_emulator(o, em_config()).await
    }

    pub async fn start_with_emulator(o: Opts<'_>, cfg: EmulatorConfig) -> Env {
        let (em_addr, em) = start_emulator_api(cfg).await;
        let crm = Upstream::start(o.crm.unwrap_or_else(crm_handler)).await;
        let dir = TempDir::new("login");
        std::fs::write(dir.path("sid"), "AKIDlogin\n").unwrap();
        std::fs::write(dir.path("skey"), "login-secret-key\n").unwrap();
        std::fs::write(dir.path("seats.toml"), o.seats).unwrap();
        let mut login = o.login.to_string();
        for (k, v) in [
            ("per_client_rate", "1000/s"),
            ("per_user_rate", "1000/s"),
            ("total_rate", "1000/s"),
        ] {
            if !o.login.contains(k) {
                login.push_str(&format!("\n{k} = \"{v}\""));
            }
        }
        let extra = format!(
            "\n[tccc]\nsdk_app_id = {APP}\nendpoint = \"http://{em_addr}\"\nsecret_id_file = \"{}\"\nsecret_key_file = \"{}\"\ntimeout = \"2s\"\n{}\n\n[login]\n{}\n\n[identity]\n{}\n\n[seats]\nfile = \"{}\"\n{}\n",
            dir.path("sid").display(),
            dir.path("skey").display(),
            o.tccc_extra,
            login,
            o.identity,
            dir.path("seats.toml").display(),
            o.seats_extra,
        );
        let upstream = o.upstream.map_or_else(|| crm.url(), str::to_string);
        let side = Sidecar::start(&upstream, o.server_extra, &extra).await;
        Env {
            side,
            em,
            em_addr,
            crm,
            dir,
        }
    }

    pub fn stats(&self) -> Value {
        serde_json::from_str(&self.em.stats_json()).unwrap()
    }

    pub fn issued(&self, seat: &str) -> u64 {
        self.stats()["seats"][seat]["tokens_issued"]
            .as_u64()
            .unwrap_or(0)
    }

    pub fn api_requests(&self) -> u64 {
        self.stats()["api_requests_total"].as_u64().unwrap_or(0)
    }

    /// Requests the CRM received for `path`.
    pub fn crm_calls(&self, path: &str) -> Vec<Seen> {
        self.crm
            .requests()
            .into_iter()
            .filter(|s| s.uri.path() == path)
            .collect()
    }
}

/// A browser-like token request: POST, same-origin, with the loader's header, plus `extra`.
pub fn token_request(extra: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri("/loginTCCC")
        .header("sec-fetch-site", "same-origin")
        .header("x-tccc-loader", "1");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(empty()).unwrap()
}

/// Sends `req`; returns the status, headers and JSON body (every answer must be JSON and
/// `no-store`, whatever its status).
pub async fn send_json(c: &mut Client, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let resp = c.send(req).await.unwrap();
    let (parts, body) = read(resp).await;
    assert_eq!(
        parts.headers.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "every login answer is no-store ({})",
        parts.status
    );
    assert_eq!(
        parts.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let v: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (parts.status, parts.headers, v)
}

pub async fn login(c: &mut Client, extra: &[(&str, &str)]) -> (StatusCode, HeaderMap, Value) {
    send_json(c, token_request(extra)).await
}

/// Asserts a 200 whose SdkURL is the emulator's and whose body has exactly the two fields.
pub fn assert_token(status: StatusCode, v: &Value) {
    assert_eq!(status, StatusCode::OK, "{v}");
    let url = v["SdkURL"].as_str().unwrap();
    assert!(
        url.starts_with("https://127.0.0.1:9/tccc-sdk.js?token="),
        "{url}"
    );
    assert!(v["ExpiredTime"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        v.as_object().unwrap().len(),
        2,
        "only SdkURL and ExpiredTime: {v}"
    );
}

pub fn assert_error(status: StatusCode, v: &Value, want_status: u16, want_error: &str) {
    assert_eq!(status.as_u16(), want_status, "{v}");
    assert_eq!(v["error"], want_error, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(
        !v.to_string().contains("token="),
        "no SdkURL in an error: {v}"
    );
}

/// The sidecar's log lines while a test runs. One process-wide subscriber (a scoped one can
/// miss events while other tests' threads cache their callsites as uninteresting) writes each
/// line into a buffer of the thread that logged it; a test's runtime is single-threaded, so
/// its sidecar logs on the test's own thread.
pub struct Logs;

thread_local! {
    static LINES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct ThreadBuffer;

impl std::io::Write for ThreadBuffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LINES.with(|l| l.borrow_mut().extend_from_slice(b));
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn capture() -> (Logs, ()) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| ThreadBuffer)
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        LINES.with(|l| l.borrow_mut().clear());
        (Logs, ())
    }

    pub fn text(&self) -> String {
        LINES.with(|l| String::from_utf8_lossy(&l.borrow()).into_owned())
    }

    /// The reason of the last audit line.
    pub fn last_reason(&self) -> String {
        let text = self.text();
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains("login token request"))
            .unwrap_or_else(|| panic!("no audit line in:\n{text}"))
            .to_string();
        let rest = line
            .split("reason=")
            .nth(1)
            .unwrap_or_else(|| panic!("no reason in {line}"));
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        rest.split(['"'])
            .next()
            .unwrap_or_default()
            .split(" ccc_request_id")
            .next()
            .unwrap_or_default()
            .to_string()
    }
}
