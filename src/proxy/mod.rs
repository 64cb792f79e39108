//! Forwarding a client's request to the upstream application and its answer back, as a
//! short sequence of named phases, each in a module of its own:
//!
//! 1. [`request_filter`]: the address's in-flight limit, then what may not be forwarded at
//!    all (head size, CONNECT, transfer codings, target forms, unknown hosts).
//! 2. [`route`]: the sidecar's own endpoints (login, loader, diagnostics, shell page,
//!    `OPTIONS *`) against forwarding; shell mode's role is decided here.
//! 3. [`upstream_request`]: the request head rewritten for the upstream (identity headers only
//!    from trusted peers), then sent with its timeouts.
//! 4. [`response_filter`]: every edit of the response head.
//! 5. [`body_filter`]: the loader injected into pages, shell mode's framed pages.
//! 6. [`access_log`]: one line and the metrics when the response body ends.
//!
//! A request reads one configuration snapshot, taken when it starts; [`context::Ctx`] carries
//! what the phases share. Bodies are streamed in both directions; nothing is buffered.

pub mod access_log;
mod body_filter;
pub mod context;
mod refusal;
mod request_filter;
pub mod response_filter;
mod route;
mod tunnel;
pub mod upgrade;
mod upstream_request;

pub use context::ConnInfo;
pub use refusal::Refusal;

use crate::state::{AppState, Snapshot};
use crate::wire::{responses, Body};
use access_log::{AccessLog, Logged, RequestId};
use context::Ctx;
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use route::Route;
use std::sync::Arc;
use std::time::Instant;

/// The body of a response on the TLS listener: counted and logged when it ends (not boxed
/// again: one allocation fewer per request).
pub type Served = Logged<Body>;

/// Handles one request from a client connection; never fails (refusals become pages).
pub async fn handle(
    state: Arc<AppState>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<Served> {
    let start = Instant::now();
    let snap = state.snapshot();
    let mut log = AccessLog {
        method: req.method().clone(),
        uri: req.uri().clone(),
        client: conn.peer.ip(),
        status: 0,
        start,
        upstream_ms: None,
        bytes: 0,
        request_id: RequestId::None,
        outcome: "client_gone",
        metrics: state.metrics.clone(),
        in_flight: None,
    };
    let http1 = req.version() < Version::HTTP_2;
    let result = match request_filter::enter(&conn) {
        Ok(counted) => {
            log.in_flight = counted;
            run(&state, &snap, &conn, req, &mut log).await
        }
        Err(refusal) => Err(refusal),
    };
    let mut resp = result.unwrap_or_else(|refusal| {
        state.metrics.rejected(refusal.reject().kind);
        response_filter::refusal(refusal, http1)
    });
    response_filter::every_answer(&snap, resp.headers_mut());
    state
        .metrics
        .request_duration
        .observe(start.elapsed().as_secs_f64());
    log.status = resp.status().as_u16();
    if http_body::Body::is_end_stream(resp.body()) {
        log.outcome = "complete";
    }
    // Over HTTP/2, the answer waits for the client from here on (see `send_timeout`).
    let watch = crate::runtime::send_timeout::current();
    if let Some(w) = &watch {
        w.waiting();
    }
    resp.map(|b| Logged::new(b, log, watch))
}

/// The phases after the in-flight limit, up to the response the client gets.
async fn run(
    state: &AppState,
    snap: &Snapshot,
    conn: &ConnInfo,
    req: Request<Incoming>,
    log: &mut AccessLog,
) -> Result<Response<Body>, Refusal> {
    let host_value = request_filter::check(snap, &req)?;
    match route::route(snap, &state.identity, &req) {
        Route::Endpoint(endpoint) => {
            let host = host_value.to_str().unwrap_or_default();
            Ok(route::answer(endpoint, state, snap, conn, &req, host).await)
        }
        Route::Forward { role, logout } => {
            forward(state, snap, conn, req, host_value, role, logout, log).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    state: &AppState,
    snap: &Snapshot,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    host_value: http::HeaderValue,
    role: crate::inject::shell::Role,
    logout: bool,
    log: &mut AccessLog,
) -> Result<Response<Body>, Refusal> {
    let host = host_value.to_str().unwrap_or_default();
    // A logout must also end the sidecar's memory of the session (introspect mode).
    let logout = logout.then(|| req.headers().clone());
    if let Some(h) = &logout {
        Box::pin(state.identity.forget(h, host)).await;
    }
    let upgrade = if req.version() == Version::HTTP_11 {
        upgrade::Upgrade::requested(req.headers(), &snap.config.server.allowed_upgrades)
    } else {
        None
    };
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let timeout = snap.config.response_timeout_for(req.uri().path());
    // Cheap clones (reference-counted bytes) so that the head can be edited while read.
    let (uri, method) = (req.uri().clone(), req.method().clone());
    let prepared = snap.inject.prepare(
        role,
        &method,
        req.headers_mut(),
        uri.path(),
        upgrade.is_some(),
    );
    // The user behind a framed page is asked only once its answer turns out to be a page.
    let identity_headers = prepared.wants_user().then(|| req.headers().clone());
    log.request_id = upstream_request::build(
        snap,
        &state.identity,
        conn,
        &mut req,
        &host_value,
        upgrade.as_ref().map(|u| &u.protocol),
    )?;
    let (answer, upstream_secs) = upstream_request::send(state, snap, req, timeout).await;
    log.upstream_ms = Some(upstream_secs * 1000.0);
    let mut resp = answer?;
    if let Some(h) = &logout {
        Box::pin(state.identity.forget(h, host)).await;
    }

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let (Some(requested), Some(client_upgrade)) = (upgrade, client_upgrade) else {
            state.metrics.upstream_error("protocol");
            return Err(Refusal::UpstreamBadUpgrade);
        };
        if !requested.granted_by(resp.headers()) {
            state.metrics.upstream_error("protocol");
            return Err(Refusal::UpstreamBadUpgrade);
        }
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tunnel::spawn(client_upgrade, upstream_upgrade, state.metrics.clone());
        response_filter::switching_protocols(resp.headers_mut(), requested.protocol);
        return Ok(resp.map(|_| responses::empty()));
    }

    response_filter::upstream_response(snap, host, resp.headers_mut());
    if let Some(scope) = &snap.cookie_scope {
        scope.watch(uri.path(), resp.headers());
    }
    let ctx = Ctx {
        snap,
        host_value,
        method,
        role,
        prepared,
        identity_headers,
    };
    Ok(body_filter::respond(state, ctx, conn.peer.ip(), resp).await)
}
