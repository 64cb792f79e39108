//! The CreateSDKLoginToken client: one pooled HTTPS client for the process, TC3-signed
//! requests shaped like the official SDKs', a typed error for every failure, and retries
//! only where a retry cannot mint a second token: a connection that never opened, and a
//! `RequestLimitExceeded` answer (the request was refused, not served). A rate-limit answer
//! also slows every later call of the process for a while, so a burst does not keep hitting
//! the account's 20 requests/s.

use super::credentials::CredentialStore;
use super::error::CccError;
use super::sdk_url::SdkUrlPolicy;
use crate::tc3;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SERVICE: &str = "ccc";
pub const VERSION: &str = "2020-02-10";
pub const ACTION: &str = "CreateSDKLoginToken";
/// Sent as `X-TC-RequestClient`, as the SDKs name themselves.
pub const REQUEST_CLIENT: &str = concat!("TCCC_SIDECAR_", env!("CARGO_PKG_VERSION"));
/// Largest answer read; a CCC answer is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// A fresh login for one seat.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginToken {
    pub sdk_url: String,
    pub expired_time: i64,
    pub request_id: String,
}

impl std::fmt::Debug for LoginToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SdkURL carries the token: never in logs.
        write!(
            f,
            "LoginToken {{ expired_time: {}, request_id: {} }}",
            self.expired_time, self.request_id
        )
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `https://ccc.tencentcloudapi.com`, or `http://127.0.0.1:PORT` for a loopback emulator.
    pub endpoint: String,
    pub region: Option<String>,
    pub sdk_app_id: u64,
    pub only_once: bool,
    /// Per attempt.
    pub timeout: Duration,
    /// All attempts together.
    pub deadline: Duration,
    pub max_attempts: u32,
    pub sdk_url_hosts: Vec<String>,
    /// How long every call waits after a `RequestLimitExceeded`.
    pub rate_limit_cooldown: Duration,
}

impl ClientOptions {
    pub fn new(endpoint: &str, sdk_app_id: u64) -> ClientOptions {
        ClientOptions {
            endpoint: endpoint.to_string(),
            region: None,
            sdk_app_id,
            only_once: true,
            timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(15),
            max_attempts: 3,
            sdk_url_hosts: Vec::new(),
            rate_limit_cooldown: Duration::from_secs(1),
        }
    }
}

pub struct CccClient {
    http: reqwest::Client,
    url: reqwest::Url,
    /// The `Host` header as sent, and therefore as signed.
    host: String,
    opts: ClientOptions,
    policy: SdkUrlPolicy,
    creds: Arc<CredentialStore>,
    /// Calls wait until this instant after a rate-limit answer.
    slow_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for CccClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CccClient({})", self.url)
    }
}

impl CccClient {
    /// Errors name the problem; the endpoint must be https unless it is a loopback emulator.
    pub fn new(opts: ClientOptions, creds: Arc<CredentialStore>) -> Result<CccClient, String> {
        let url: reqwest::Url = opts
            .endpoint
            .parse()
            .map_err(|_| "tccc.endpoint: not a valid URL".to_string())?;
        let loopback_http = crate::config::origin::is_loopback_http(&opts.endpoint);
        if url.scheme() != "https" && !loopback_http {
            return Err(
                "tccc.endpoint: must be https (plain http only for a loopback emulator)".into(),
            );
        }
        let host_name = url.host_str().ok_or("tccc.endpoint: no host")?.to_string();
        let host = match url.port() {
            Some(p) => format!("{host_name}:{p}"),
            None => host_name.clone(),
        };
        let emulator_host = loopback_http.then_some(host_name.trim_matches(['[', ']']));
        let policy = SdkUrlPolicy::new(&opts.sdk_url_hosts, emulator_host);
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(300))
            .tcp_keepalive(Duration::from_secs(60))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!loopback_http)
            .build()
            .map_err(|e| format!("CCC client: {e}"))?;
        Ok(CccClient {
            http,
            url,
            host,
            opts,
            policy,
            creds,
            slow_until: Mutex::new(None),
        })
    }

    /// A fresh SdkURL for `seat`, retried only where that is safe.
    pub async fn create_sdk_login_token(&self, seat: &str) -> Result<LoginToken, CccError> {
        let deadline = Instant::now() + self.opts.deadline;
        let mut attempt = 0u32;
        loop {
            self.wait_if_rate_limited(deadline).await;
            attempt += 1;
            let err = match self.attempt(seat).await {
                Ok(t) => return Ok(t),
                Err(e) => e,
            };
            let safe_to_retry = matches!(err, CccError::Connect(_)) || err.is_rate_limited();
            if err.is_rate_limited() {
                self.note_rate_limited();
            }
            if !safe_to_retry || attempt >= self.opts.max_attempts {
                return Err(err);
            }
            // Full jitter over an exponential base: 100 ms, 200 ms, 400 ms ...
            let base = Duration::from_millis(100u64 << (attempt - 1).min(5));
            let pause = base.mul_f64(rand::random::<f64>().max(0.1));
            if Instant::now() + pause >= deadline {
                return Err(err);
            }
            tokio::time::sleep(pause).await;
        }
    }

    async fn wait_if_rate_limited(&self, deadline: Instant) {
        let until = *self.slow_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                let jitter = Duration::from_millis(rand::random::<u64>() % 200);
                tokio::time::sleep_until((until.min(deadline) + jitter).into()).await;
            }
        }
    }

    fn note_rate_limited(&self) {
        let mut g = self.slow_until.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some(Instant::now() + self.opts.rate_limit_cooldown);
    }

    /// The request body exactly as sent (compact JSON).
    pub fn body(&self, seat: &str) -> Vec<u8> {
        serde_json::json!({
            "SdkAppId": self.opts.sdk_app_id,
            "SeatUserId": seat,
            "OnlyOnce": self.opts.only_once,
        })
        .to_string()
        .into_bytes()
    }

    async fn attempt(&self, seat: &str) -> Result<LoginToken, CccError> {
        let creds = self.creds.get().ok_or(CccError::NoCredentials)?;
        let body = self.body(seat);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let signed = tc3::sign(
            &tc3::Request {
                method: "POST",
                host: &self.host,
                query: "",
                content_type: "application/json",
                body: &body,
                unsigned_payload: false,
                timestamp,
                service: SERVICE,
            },
            &creds.secret_id,
            creds.secret_key.expose(),
        )
        .ok_or_else(|| CccError::Invalid("the system clock is out of range".into()))?;
        let mut req = self
            .http
            .post(self.url.clone())
            .timeout(self.opts.timeout)
            .header("Host", &self.host)
            .header("Content-Type", "application/json")
            .header("X-TC-Action", ACTION)
            .header("X-TC-Version", VERSION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-RequestClient", REQUEST_CLIENT)
            .header("Authorization", signed.authorization);
        if let Some(region) = &self.opts.region {
            req = req.header("X-TC-Region", region);
        }
        if let Some(token) = &creds.token {
            req = req.header("X-TC-Token", token.expose());
        }
        let mut resp = req.body(body).send().await.map_err(classify)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(CccError::Invalid(format!(
                "HTTP status {}",
                resp.status().as_u16()
            )));
        }
        let mut raw = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if raw.len() + chunk.len() > MAX_BODY {
                return Err(CccError::Invalid("answer larger than 64 KiB".into()));
            }
            raw.extend_from_slice(&chunk);
        }
        self.parse(&raw)
    }

    /// Reads a CCC answer envelope.
    pub fn parse(&self, raw: &[u8]) -> Result<LoginToken, CccError> {
        let v: serde_json::Value = serde_json::from_slice(raw)
            .map_err(|_| CccError::Invalid("answer is not JSON".into()))?;
        let r = v
            .get("Response")
            .and_then(|r| r.as_object())
            .ok_or_else(|| CccError::Invalid("answer has no Response object".into()))?;
        let request_id = r
            .get("RequestId")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string();
        if let Some(e) = r.get("Error") {
            let field = |k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            let code = field("Code");
            if code.is_empty() {
                return Err(CccError::Invalid("error without a Code".into()));
            }
            return Err(CccError::Api {
                code,
                message: field("Message"),
                request_id,
            });
        }
        let sdk_url = r
            .get("SdkURL")
            .and_then(|x| x.as_str())
            .ok_or_else(|| CccError::Invalid("answer has no SdkURL".into()))?;
        let expired_time = r
            .get("ExpiredTime")
            .and_then(|x| x.as_i64())
            .ok_or_else(|| CccError::Invalid("answer has no ExpiredTime".into()))?;
        if request_id.is_empty() {
            return Err(CccError::Invalid("answer has no RequestId".into()));
        }
        self.policy
            .check(sdk_url)
            .map_err(|reason| CccError::SdkUrlRejected {
                reason,
                request_id: request_id.clone(),
            })?;
        Ok(LoginToken {
            sdk_url: sdk_url.to_string(),
            expired_time,
            request_id,
        })
    }
}

/// reqwest's error → ours. Only a failure to connect means nothing was sent. The detail
/// names what failed and why, never the URL.
fn classify(e: reqwest::Error) -> CccError {
    if e.is_timeout() {
        return CccError::Timeout;
    }
    let what = match e.status() {
        Some(status) => format!("HTTP status {status}"),
        None if e.is_connect() => "connection failed".to_string(),
        None => "request failed".to_string(),
    };
    let detail = match std::error::Error::source(&e) {
        Some(cause) => format!("{what}: {}", crate::wire::ErrorChain(cause)),
        None => what,
    };
    if e.is_connect() {
        CccError::Connect(detail)
    } else {
        CccError::Invalid(detail)
    }
}
