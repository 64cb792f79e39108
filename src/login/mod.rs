//! The login endpoint (`login.path`, `/loginTCCC` by default): from the browser's session to
//! a seat to a fresh, single-use SdkURL.
//!
//! A request passes, in order: the method; the same-origin checks (`Sec-Fetch-Site`, else
//! `Origin`, and the `X-TCCC-Loader` header that a cross-site form cannot send); the
//! per-client limit; identity; the per-user limit; the seat mapping; the overall limit's
//! queue; and CreateSDKLoginToken. Each step that refuses answers with the contract's status
//! and a JSON body, and every request leaves one audit line (client, user, seat, outcome, CCC
//! RequestId, latency) and a counter by outcome. The SdkURL goes to the browser and nowhere
//! else: not to logs, not to metrics.

pub mod answer;
pub mod limits;
pub mod seats;

use crate::ccc::{CccClient, CccError, ClientOptions, CredentialStore};
use crate::config::{types::any_contains, Cidr, Config};
use crate::identity::{Identity, IdentityError, Who};
use crate::login::seats::Seats;
use crate::runtime::metrics::Metrics;
use crate::wire::Body;
use answer::Answer;
use http::header::{HeaderMap, HeaderName};
use http::{Method, Response, StatusCode};
use limits::{retry_after_secs, Limits};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const X_TCCC_LOADER: HeaderName = HeaderName::from_static("x-tccc-loader");
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

pub struct LoginService {
    allow_get: bool,
    trusted_proxies: Vec<Cidr>,
    pub seats: Arc<Seats>,
    limits: Arc<Limits>,
    ccc: Option<CccClient>,
    credentials: Option<Arc<CredentialStore>>,
    /// Where SdkURLs point, for the CSP of injected pages.
    learned: Arc<crate::inject::csp::LearnedOrigins>,
    metrics: Arc<Metrics>,
    /// Shell mode: the fingerprint of the token's user goes into the answer (`User`), so that
    /// the shell can compare it with what its frame reports.
    pub fingerprints: Option<crate::inject::shell::fingerprint::Fingerprints>,
}

/// What the endpoint needs to know about the request besides its headers.
pub struct LoginRequest<'a> {
    /// The application's identity source (the proxy uses the same one on every request).
    pub identity: &'a Identity,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub peer: IpAddr,
    pub host: &'a str,
    pub public_origin: &'a str,
}

impl LoginService {
    /// Builds seats, limits and the CCC client; errors name the key.
    pub fn from_config(
        config: &Config,
        metrics: Arc<Metrics>,
        learned: Arc<crate::inject::csp::LearnedOrigins>,
    ) -> Result<LoginService, String> {
        let seats = Seats::load(
            config.seats.file.clone(),
            config.seats.template.clone(),
            metrics.clone(),
        )
        .map_err(|e| format!("seats.file: {e}"))?;
        let l = &config.login;
        let limits = Arc::new(Limits::new(
            l.per_client_rate,
            l.per_user_rate,
            l.total_rate,
            l.queue_timeout.get(),
        ));
        let mut credentials = None;
        let ccc = match config.tccc.sdk_app_id {
            Some(app) => {
                let creds = CredentialStore::from_config(&config.tccc)?;
                credentials = Some(creds.clone());
                let t = &config.tccc;
                let mut opts = ClientOptions::new(&t.endpoint, app);
                opts.region = t.region.clone();
                opts.only_once = t.only_once;
                opts.timeout = t.timeout.get();
                opts.deadline = t.timeout.get() + Duration::from_secs(2);
                opts.sdk_url_hosts = t.sdk_url_hosts.clone();
                Some(CccClient::new(opts, creds)?)
            }
            None => None,
        };
        let fingerprints = if config.inject.mode == crate::config::InjectMode::Shell {
            let secret = credentials
                .as_ref()
                .and_then(|c| c.get())
                .map(|c| c.secret_key.expose().to_string());
            Some(crate::inject::shell::fingerprint::Fingerprints::new(
                config.inject.shell_key_file.as_deref(),
                secret.as_deref(),
                config.tccc.sdk_app_id,
            )?)
        } else {
            None
        };
        Ok(LoginService {
            fingerprints,
            allow_get: l.allow_get,
            trusted_proxies: config.server.trusted_proxies.clone(),
            seats,
            limits,
            ccc,
            credentials,
            learned,
            metrics,
        })
    }

    /// File watches and limiter housekeeping.
    pub fn spawn_background(&self, config: &Config) {
        self.seats.watch(config.server.reload_interval.get());
        if let Some(c) = &self.credentials {
            c.watch(config.server.reload_interval.get());
        }
        let limits = Arc::downgrade(&self.limits);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match limits.upgrade() {
                    Some(l) => l.housekeeping(),
                    None => return,
                }
            }
        });
    }

    /// Answers one token request.
    pub async fn handle(&self, req: LoginRequest<'_>) -> Response<Body> {
        let start = Instant::now();
        let client = self.client_ip(req.headers, req.peer);
        let mut audit = Audit {
            client,
            user: None,
            seat: None,
            reason: None,
        };
        let answer = self.answer(&req, client, &mut audit).await;
        let latency = start.elapsed();
        self.metrics.login_outcome(answer.outcome);
        self.metrics.login_duration.observe(latency.as_secs_f64());
        tracing::info!(
            target: "tccc_sidecar::audit",
            client = %audit.client,
            user = %audit.user.as_deref().unwrap_or("-"),
            seat = %audit.seat.as_deref().unwrap_or("-"),
            outcome = answer.outcome,
            status = answer.status.as_u16(),
            reason = audit.reason.unwrap_or("-"),
            ccc_request_id = %if answer.request_id.is_empty() { "-" } else { &answer.request_id },
            latency_ms = (latency.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
            "login token request"
        );
        answer.into_response()
    }

    /// The address the limits are keyed by: the peer, or the client a trusted proxy names.
    fn client_ip(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        let peer = crate::config::types::canonical_ip(peer);
        if any_contains(&self.trusted_proxies, peer) {
            crate::wire::forwarded::believed_client(headers, peer, &self.trusted_proxies)
        } else {
            peer
        }
    }

    async fn answer(&self, req: &LoginRequest<'_>, client: IpAddr, audit: &mut Audit) -> Answer {
        let is_get = *req.method == Method::GET;
        if *req.method != Method::POST && !(is_get && self.allow_get) {
            return Answer::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Use POST.",
            );
        }
        if let Err(why) = same_origin(req.headers, req.public_origin, !is_get) {
            return Answer::error(StatusCode::FORBIDDEN, "cross_site", why);
        }
        if let Err(wait) = self.limits.client(client) {
            return rate_limited(wait, "rate_limited_client");
        }
        let who = match req.identity.resolve(req.headers, req.peer, req.host).await {
            Ok(w) => w,
            Err(IdentityError::Unauthenticated(why)) => {
                audit.reason = Some(why);
                return Answer::error(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "No signed-in user could be established for this request.",
                );
            }
            Err(IdentityError::Unavailable(why)) => {
                tracing::warn!(reason = why, "login: identity source unavailable");
                audit.reason = Some(why);
                return Answer::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "identity_unavailable",
                    "The sign-in service did not answer; try again shortly.",
                )
                .with("retryable", true)
                .retry_after(2);
            }
        };
        let fingerprint = self.fingerprints.as_ref().map(|f| f.of(&who));
        let limit_key = match &who {
            Who::User(u) => {
                audit.user = Some(u.clone());
                u.clone()
            }
            Who::Seat(s) => {
                audit.user = Some("(static)".into());
                format!("seat:{s}")
            }
        };
        if let Err(wait) = self.limits.user(&limit_key) {
            return rate_limited(wait, "rate_limited_user");
        }
        let seat = match who {
            Who::Seat(s) => s,
            Who::User(u) => match self.seats.seat_for(&u) {
                Some(s) => s,
                None => {
                    return Answer::error(
                        StatusCode::FORBIDDEN,
                        "no_seat",
                        "This user has no call-center seat.",
                    )
                }
            },
        };
        audit.seat = Some(seat.clone());
        let Some(ccc) = &self.ccc else {
            return Answer::error(
                StatusCode::BAD_GATEWAY,
                "ccc_error",
                "The call-center connection is not configured (tccc.sdk_app_id).",
            )
            .with("code", "NotConfigured")
            .with("request_id", "")
            .with("retryable", false);
        };
        if let Err(wait) = self.limits.total().await {
            return rate_limited(wait, "rate_limited_total");
        }
        let sent = Instant::now();
        let result = ccc.create_sdk_login_token(&seat).await;
        self.metrics
            .ccc_duration
            .observe(sent.elapsed().as_secs_f64());
        match result {
            Ok(t) => {
                self.learned.note(&t.sdk_url);
                let answer = Answer {
                    status: StatusCode::OK,
                    body: serde_json::json!({ "SdkURL": t.sdk_url, "ExpiredTime": t.expired_time }),
                    retry_after: None,
                    outcome: "ok",
                    request_id: t.request_id,
                };
                match fingerprint {
                    Some(f) => answer.with("User", f),
                    None => answer,
                }
            }
            Err(e) => ccc_failure(e),
        }
    }
}

/// The loader sends no body; the endpoint never reads one. A request that declares more than
/// a little (or streams one of unknown length) is refused before any other step, so that
/// nobody can make the process hold or drain large bodies on this path.
pub const MAX_BODY_BYTES: u64 = 1024;

pub fn body_refusal(headers: &HeaderMap) -> Option<Response<Body>> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let streamed = headers.contains_key(http::header::TRANSFER_ENCODING);
    (declared > MAX_BODY_BYTES || streamed).then(|| {
        Answer::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "This endpoint takes no request body.",
        )
        .into_response()
    })
}

/// Who the diagnostics page sees for a request: no token is requested and no limit but the
/// per-client one is spent.
pub enum SignInStatus {
    Seat { user: Option<String>, seat: String },
    NoSeat { user: String },
    NotSignedIn,
    Unavailable,
    RateLimited,
}

impl LoginService {
    /// The sign-in and seat status of a request, for `/__tccc/diag`.
    pub async fn status(
        &self,
        identity: &Identity,
        headers: &HeaderMap,
        peer: IpAddr,
        host: &str,
    ) -> SignInStatus {
        if self.limits.client(self.client_ip(headers, peer)).is_err() {
            return SignInStatus::RateLimited;
        }
        match identity.resolve(headers, peer, host).await {
            Ok(Who::Seat(seat)) => SignInStatus::Seat { user: None, seat },
            Ok(Who::User(user)) => match self.seats.seat_for(&user) {
                Some(seat) => SignInStatus::Seat {
                    user: Some(user),
                    seat,
                },
                None => SignInStatus::NoSeat { user },
            },
            Err(IdentityError::Unauthenticated(_)) => SignInStatus::NotSignedIn,
            Err(IdentityError::Unavailable(_)) => SignInStatus::Unavailable,
        }
    }

    /// Whether a CCC client is configured (`tccc.sdk_app_id`).
    pub fn ccc_configured(&self) -> bool {
        self.ccc.is_some()
    }
}

struct Audit {
    client: IpAddr,
    user: Option<String>,
    seat: Option<String>,
    /// Why no user could be named: a fixed string from the identity source, never request data.
    reason: Option<&'static str>,
}

fn rate_limited(wait: Duration, outcome: &'static str) -> Answer {
    Answer::error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many token requests; try again later.",
    )
    .with("retryable", true)
    .retry_after(retry_after_secs(wait))
    .outcome(outcome)
}

/// The contract's CSRF rule. `Sec-Fetch-Site` is set by the browser and cannot be forged by a
/// page; where a browser sends none, `Origin` must be the public origin (`null` never is).
/// POSTs must also carry `X-TCCC-Loader`, which a cross-site form cannot add and a cross-site
/// `fetch` cannot add without a CORS preflight that this endpoint never grants. GETs (only with
/// `login.allow_get`, for pages that still carry the vendor's snippet, which sends no such
/// header) rely on `Sec-Fetch-Site` alone.
fn same_origin(
    h: &HeaderMap,
    public_origin: &str,
    need_loader_header: bool,
) -> Result<(), &'static str> {
    match h.get(&SEC_FETCH_SITE).map(|v| v.as_bytes()) {
        Some(b"same-origin") => {}
        Some(_) => return Err("The request is not same-origin."),
        None => {
            let origin = h
                .get(http::header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .ok_or("The request carries neither Sec-Fetch-Site nor Origin.")?;
            if !origin.eq_ignore_ascii_case(public_origin) {
                return Err("The request's Origin is not this site.");
            }
        }
    }
    if need_loader_header && h.get(&X_TCCC_LOADER).map(|v| v.as_bytes()) != Some(b"1") {
        return Err("The request lacks the X-TCCC-Loader header.");
    }
    Ok(())
}

/// CCC's refusal → the contract's answer: a seat CCC does not know is `no_seat`, what a retry
/// can fix is 503 (504 for a timeout), the rest is a permanent 502.
fn ccc_failure(e: CccError) -> Answer {
    let code = e.code().to_string();
    let request_id = e.request_id().to_string();
    tracing::warn!(code = %code, request_id = %request_id, error = %e, "CreateSDKLoginToken failed");
    let a = if code == "InvalidParameterValue.AccountNotExist" {
        Answer::error(
            StatusCode::FORBIDDEN,
            "no_seat",
            "This user's seat does not exist in the call center.",
        )
    } else if matches!(e, CccError::Timeout) {
        Answer::error(
            StatusCode::GATEWAY_TIMEOUT,
            "ccc_timeout",
            "The call center did not answer in time.",
        )
        .with("retryable", true)
    } else if e.retryable() {
        Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ccc_unavailable",
            "The call center is busy or unreachable; try again shortly.",
        )
        .with("code", code)
        .with("request_id", request_id.clone())
        .with("retryable", true)
        .retry_after(if e.is_rate_limited() { 2 } else { 1 })
    } else {
        Answer::error(
            StatusCode::BAD_GATEWAY,
            "ccc_error",
            "The call center refused the login.",
        )
        .with("code", code)
        .with("request_id", request_id.clone())
        .with("retryable", false)
    };
    Answer { request_id, ..a }
}
