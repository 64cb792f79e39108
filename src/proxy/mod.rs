//! Forwarding a client's request to the upstream application and its answer back.
//!
//! A request passes named steps, each a small function with one job: checking what may not be
//! forwarded (`validate`), rewriting the request head (`upstream_request`), sending it with the
//! response-header timeout of its path, and rewriting the response head (`downstream_response`).
//! Bodies are streamed in both directions; nothing is buffered.

pub mod access_log;
pub mod response_filter;
mod tunnel;
pub mod upgrade;

use crate::inject::shell::Role;
use crate::state::{AppState, ConnInfo};
use crate::wire::names::{VIA, X_REQUEST_ID};
use crate::wire::{forwarded, hop, pool, responses, Body};
use access_log::{AccessLog, Logged, RequestId};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use responses::{error_page, Reject};
use std::sync::Arc;
use std::time::Instant;

/// The body of a response on the TLS listener: counted and logged when it ends (not boxed
/// again: one allocation fewer per request).
pub type Served = Logged<Body>;

/// Handles one request from a client connection; never fails (errors become pages).
pub async fn handle(
    state: Arc<AppState>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<Served> {
    let start = Instant::now();
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
    if let Some(limit) = &conn.in_flight {
        match limit.enter() {
            Some(counted) => log.in_flight = Some(counted),
            None => return too_many_in_flight(&state, log),
        }
    }
    let http1 = req.version() < Version::HTTP_2;
    let mut resp = match forward(&state, &conn, req, &mut log).await {
        Ok(resp) => resp,
        Err(reject) => {
            state.metrics.rejected(reject.kind);
            let mut page = error_page(reject);
            if reject.close && http1 {
                // hyper ends the connection after an answer that says so.
                page.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            page
        }
    };
    finish_headers(&state, resp.headers_mut());
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

/// The answer to a request over its address's limit of requests in flight: refused before
/// anything is read or forwarded, with a hint to come back shortly.
#[cold]
fn too_many_in_flight(state: &AppState, mut log: AccessLog) -> Response<Served> {
    let reject = Reject::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "client_requests_in_flight",
        "Too many requests from this address are in progress. Please retry shortly.",
    );
    state.metrics.rejected(reject.kind);
    let mut resp = error_page(reject);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    finish_headers(state, resp.headers_mut());
    log.status = resp.status().as_u16();
    log.outcome = "complete";
    resp.map(|b| Logged::new(b, log, None))
}

/// Headers every answer on the TLS listener carries, proxied or not.
fn finish_headers(state: &AppState, h: &mut HeaderMap) {
    if let Some(hsts) = &state.hsts {
        if !h.contains_key(header::STRICT_TRANSPORT_SECURITY) {
            h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
}

async fn forward(
    state: &AppState,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    log: &mut AccessLog,
) -> Result<Response<Body>, Reject> {
    let host_value = validate(state, &req)?;
    let host = host_value.to_str().unwrap_or_default();
    if req.uri().path_and_query().map(|p| p.as_str()) == Some("*") {
        return Ok(server_options());
    }
    if req.uri().path() == state.config.login.path {
        if let Some(refusal) = crate::login::body_refusal(req.headers()) {
            state.metrics.login_outcome("payload_too_large");
            return Ok(refusal);
        }
        let public_origin = state.public_origin_for(host);
        // Boxed, like every rare path below: an async fn's state is as large as its largest
        // await, and the common proxied request should not carry (and move) a CCC call's.
        return Ok(Box::pin(state.login.handle(crate::login::LoginRequest {
            method: req.method(),
            headers: req.headers(),
            peer: conn.peer.ip(),
            host,
            public_origin: &public_origin,
        }))
        .await);
    }
    if req.uri().path() == state.config.inject.loader_path {
        return Ok(state
            .inject
            .loader
            .respond(req.method(), req.uri().query(), req.headers()));
    }
    if let Some(diag) = state.diag.as_ref().filter(|d| req.uri().path() == d.path()) {
        return Ok(Box::pin(diag.respond(
            req.method(),
            req.headers(),
            conn.peer.ip(),
            host,
            &state.login,
        ))
        .await);
    }
    let role = state
        .inject
        .role(req.method(), req.headers(), req.uri().path());
    if role == Role::Shell {
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        return Ok(state.inject.shell_page(target));
    }
    // A logout must also end the sidecar's memory of the session (introspect mode).
    let logout = state
        .login
        .identity
        .is_logout(req.uri().path())
        .then(|| req.headers().clone());
    if let Some(h) = &logout {
        Box::pin(state.login.identity.forget(h, host)).await;
    }
    let upgrade = if req.version() == Version::HTTP_11 {
        upgrade::Upgrade::requested(req.headers(), &state.config.server.allowed_upgrades)
    } else {
        None
    };
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let timeout = state.config.response_timeout_for(req.uri().path());
    // Cheap clones (reference-counted bytes) so that the head can be edited while read.
    let (uri, method) = (req.uri().clone(), req.method().clone());
    let mut prepared = state.inject.prepare(
        role,
        &method,
        req.headers_mut(),
        uri.path(),
        upgrade.is_some(),
    );
    // The user behind a framed page is asked only once its answer turns out to be a page.
    let identity_headers = prepared.wants_user().then(|| req.headers().clone());
    let request_id = upstream_request(
        state,
        conn,
        &mut req,
        &host_value,
        upgrade.as_ref().map(|u| &u.protocol),
    )?;
    log.request_id = request_id;

    let (req, client_failed) = {
        let (parts, body) = req.into_parts();
        let (body, failed) = crate::wire::client_body::ClientBody::new(
            body,
            state.config.server.client_body_timeout.get(),
            state.metrics.clone(),
        );
        (Request::from_parts(parts, body), failed)
    };
    let sent = Instant::now();
    let result = tokio::time::timeout(timeout, state.pool.send(req)).await;
    let upstream_secs = sent.elapsed().as_secs_f64();
    log.upstream_ms = Some(upstream_secs * 1000.0);
    let mut resp = match result {
        Err(_) => {
            state.metrics.upstream_error("timeout");
            return Err(Reject::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "The application behind this server did not answer in time.",
            ));
        }
        Ok(Err(e)) => match client_failed.load(std::sync::atomic::Ordering::Relaxed) {
            crate::wire::client_body::TIMED_OUT => {
                return Err(Reject::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "client_body_timeout",
                    "The request body did not arrive in time.",
                )
                .closing());
            }
            crate::wire::client_body::FAILED => {
                return Err(Reject::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request_body",
                    "The request body could not be read.",
                ));
            }
            _ => return Err(upstream_failed(state, e)),
        },
        Ok(Ok(resp)) => resp,
    };
    state.metrics.upstream_duration.observe(upstream_secs);
    // hyper has undone `chunked`; any other transfer coding would reach the client as body
    // bytes with nothing left to say how to decode them.
    if !hop::only_chunked(resp.headers()) {
        state.metrics.upstream_error("protocol");
        return Err(Reject::new(
            StatusCode::BAD_GATEWAY,
            "upstream_bad_framing",
            "The application behind this server sent an answer that could not be read.",
        ));
    }
    if let Some(h) = &logout {
        Box::pin(state.login.identity.forget(h, host)).await;
    }

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let (Some(requested), Some(client_upgrade)) = (upgrade, client_upgrade) else {
            state.metrics.upstream_error("protocol");
            return Err(bad_upgrade());
        };
        if !requested.granted_by(resp.headers()) {
            state.metrics.upstream_error("protocol");
            return Err(bad_upgrade());
        }
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tunnel::spawn(client_upgrade, upstream_upgrade, state.metrics.clone());
        hop::strip(resp.headers_mut());
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, requested.protocol);
        return Ok(resp.map(|_| responses::empty()));
    }

    downstream_response(state, host, resp.headers_mut());
    if let Role::Framed { .. } = prepared.role {
        if let Some(page) = framed_redirect(state, host, &method, &resp) {
            return Ok(page);
        }
        if let Some(headers) = identity_headers
            .filter(|_| crate::inject::gate::response_check(resp.status(), resp.headers()).is_ok())
        {
            prepared.user = Box::pin(frame_user(state, &headers, conn, host)).await;
        }
    }
    Ok(state
        .inject
        .respond(prepared, resp, || state.public_origin_for(host)))
}

/// Shell mode: a framed page redirected to another origin (single sign-on, typically, whose
/// pages refuse to be framed) is answered with a page that takes the tab there instead.
fn framed_redirect(
    state: &AppState,
    host: &str,
    method: &Method,
    resp: &Response<pool::PooledBody>,
) -> Option<Response<Body>> {
    let status = resp.status();
    let replays_method = matches!(status.as_u16(), 307 | 308);
    if !status.is_redirection() || (replays_method && method != Method::GET) {
        return None;
    }
    let location = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    if !crate::inject::shell::leaves_origin(location, &state.public_origin_for(host)) {
        return None;
    }
    let absolute = if location.starts_with("//") {
        format!("https:{location}")
    } else {
        location.to_string()
    };
    let mut page = crate::inject::shell::breakout(&absolute)?;
    // Single sign-on flows set cookies on their redirects.
    for c in resp.headers().get_all(header::SET_COOKIE) {
        page.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    state.metrics.shell("breakout");
    Some(page)
}

/// The fingerprint of the user behind a framed page's request.
async fn frame_user(
    state: &AppState,
    headers: &HeaderMap,
    conn: &ConnInfo,
    host: &str,
) -> Option<String> {
    let fingerprints = state.login.fingerprints.as_ref()?;
    match state
        .login
        .identity
        .resolve(headers, conn.peer.ip(), host)
        .await
    {
        Ok(who) => Some(fingerprints.of(&who)),
        Err(crate::identity::IdentityError::Unauthenticated(_)) => {
            Some(crate::inject::shell::fingerprint::ANONYMOUS.to_string())
        }
        Err(crate::identity::IdentityError::Unavailable(_)) => None,
    }
}

/// The upstream request failed for a reason of the upstream's (or the network's).
fn upstream_failed(state: &AppState, e: pool::PoolError) -> Reject {
    let kind = match e {
        pool::PoolError::Connect(_) => "connect",
        pool::PoolError::Request(_) => "reset",
    };
    tracing::warn!(kind, error = %e, "upstream request failed");
    state.metrics.upstream_error(kind);
    Reject::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "The application behind this server is not reachable.",
    )
}

fn bad_upgrade() -> Reject {
    Reject::new(
        StatusCode::BAD_GATEWAY,
        "upstream_bad_upgrade",
        "The application behind this server answered with an invalid protocol switch.",
    )
    .closing()
}

/// Refuses what must not reach the upstream; returns the host the request is for, as the
/// `Host` value it goes upstream with (its `to_str` succeeds).
fn validate(state: &AppState, req: &Request<Incoming>) -> Result<HeaderValue, Reject> {
    if head_size(req) > state.config.server.max_header_bytes {
        return Err(Reject::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header_too_large",
            "The request headers are too large.",
        ));
    }
    if req.method() == Method::CONNECT {
        return Err(Reject::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "connect_method",
            "This server does not tunnel CONNECT requests.",
        ));
    }
    // hyper has already refused a Transfer-Encoding whose last coding is not `chunked`; any
    // other coding before it would be silently dropped when the body is de-chunked.
    if !hop::only_chunked(req.headers()) {
        return Err(Reject::new(
            StatusCode::NOT_IMPLEMENTED,
            "unsupported_transfer_coding",
            "This transfer coding is not supported.",
        ));
    }
    check_target(req)?;
    let host = request_host(req).ok_or(Reject::new(
        StatusCode::BAD_REQUEST,
        "missing_host",
        "The request has no valid Host.",
    ))?;
    if !state.host_allowed(host.to_str().unwrap_or_default()) {
        return Err(Reject::new(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown_host",
            "This server does not serve that host name.",
        ));
    }
    let target_len = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if target_len > state.config.server.max_uri_bytes {
        return Err(Reject::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            "The request target is too long.",
        ));
    }
    Ok(host)
}

/// The request target's form must be the one its method may use (RFC 9112 §3.2): origin-form
/// (`/path`), absolute-form whose authority is the `Host` it came with (RFC 9112 §3.2.2, an
/// `http` or `https` URI), asterisk-form for OPTIONS only; authority-form is CONNECT's, which
/// is refused before this. Over HTTP/2 a `Host` beside `:authority` must name the same host
/// (RFC 9113 §8.3.1). Anything else could make the sidecar and the upstream disagree on which
/// host or resource a request is for.
fn check_target(req: &Request<Incoming>) -> Result<(), Reject> {
    let uri = req.uri();
    let bad = |kind: &'static str| {
        Reject::new(
            StatusCode::BAD_REQUEST,
            kind,
            "The request target is not valid.",
        )
    };
    if uri.path_and_query().map(|p| p.as_str()) == Some("*") {
        return if req.method() == Method::OPTIONS {
            Ok(())
        } else {
            Err(bad("asterisk_form"))
        };
    }
    let Some(authority) = uri.authority() else {
        return Ok(());
    };
    if req.version() == Version::HTTP_2 {
        return match req.headers().get(header::HOST) {
            Some(h)
                if !h
                    .as_bytes()
                    .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
            {
                Err(bad("host_mismatch"))
            }
            _ => Ok(()),
        };
    }
    let Some(scheme) = uri.scheme_str() else {
        return Err(bad("authority_form"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad("bad_target"));
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(h), None)
            if h.as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            Ok(())
        }
        // HTTP/1.0 clients need not send `Host`; the target's authority is the only host then.
        (None, None) if req.version() == Version::HTTP_10 => Ok(()),
        _ => Err(bad("host_mismatch")),
    }
}

/// `OPTIONS *` asks about the server itself: answered here, never forwarded.
fn server_options() -> Response<Body> {
    let mut resp = Response::new(responses::empty());
    resp.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

/// The size of the request head as sent: the request line and each field line with its
/// separators. hyper's own limit acts only on a head that arrives in pieces (its read buffer
/// cannot be smaller than 8 KiB, and a head that comes in one read is parsed whole), so the
/// configured limit is applied here to what was parsed, however it arrived.
fn head_size(req: &Request<Incoming>) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n ".len();
    req.headers()
        .iter()
        .fold(line + 2, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// The host the client asked for: the request target's authority (HTTP/2, absolute-form
/// HTTP/1.1, RFC 9112 §3.2.2), else the `Host` header (shared, not copied). HTTP/1.1 without
/// one is refused; so is a host that is not visible ASCII.
fn request_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    if let Some(a) = req.uri().authority() {
        return HeaderValue::from_str(a.as_str()).ok();
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return None;
    }
    match host {
        Some(h) => {
            let s = h.to_str().ok()?;
            s.parse::<http::uri::Authority>().ok()?;
            if s.contains('@') {
                return None;
            }
            Some(h.clone())
        }
        None if req.version() == Version::HTTP_10 => Some(HeaderValue::from_static("")),
        None => None,
    }
}

/// Turns the client's request head into the upstream's; returns the request id used.
fn upstream_request(
    state: &AppState,
    conn: &ConnInfo,
    req: &mut Request<Incoming>,
    host: &HeaderValue,
    upgrade: Option<&HeaderValue>,
) -> Result<RequestId, Reject> {
    let upstream = &state.config.upstream.url;
    // Origin-form, as HTTP/1.1 sends to an origin server (RFC 9112 §3.2.1); an HTTP/2 or
    // absolute-form target loses its scheme and authority (the Host header carries it).
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = Some(
            req.uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        *req.uri_mut() = Uri::from_parts(parts).map_err(|_| {
            Reject::new(
                StatusCode::BAD_REQUEST,
                "bad_target",
                "The request target is not valid.",
            )
        })?;
    }
    let from_h2 = req.version() == Version::HTTP_2;
    *req.version_mut() = Version::HTTP_11;

    let headers = req.headers_mut();
    hop::strip(headers);
    if !state.login.identity.sanitize(headers, conn.peer.ip()) {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            "ambiguous_identity",
            "The request names more than one user.",
        ));
    }
    if from_h2 {
        join_cookie_crumbs(headers);
    }
    let fwd = forwarded::apply(
        headers,
        &conn.forwarding,
        &state.config.server.trusted_proxies,
        host,
    );
    // Inserted even when it came as the `Host` header: `Connection` may have named it.
    // A legacy HTTP/1.0 request without Host goes upstream with the upstream's own authority.
    if host.is_empty() {
        if let Ok(v) = HeaderValue::from_str(upstream.authority.as_str()) {
            headers.insert(header::HOST, v);
        }
    } else {
        headers.insert(header::HOST, host.clone());
    }
    let given = headers
        .get(&X_REQUEST_ID)
        .filter(|v| fwd.peer_trusted && v.to_str().is_ok_and(is_token));
    let request_id = match given {
        Some(id) => RequestId::Given(id.clone()),
        None => {
            let id = RequestId::generate();
            let value = HeaderValue::from_str(id.as_str())
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Reject::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "request_id",
                        "Internal error.",
                    )
                })?;
            headers.insert(X_REQUEST_ID, value);
            id
        }
    };
    if state.config.server.via {
        headers.append(header::VIA, HeaderValue::from_static(VIA));
    }
    if let Some(proto) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto.clone());
    }
    Ok(request_id)
}

/// HTTP/2 may split `Cookie` into several fields; an HTTP/1.1 upstream expects one (RFC 9113 §8.2.3).
fn join_cookie_crumbs(headers: &mut HeaderMap) {
    let mut crumbs = headers.get_all(header::COOKIE).iter();
    let first = crumbs.next();
    if first.is_none() || crumbs.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, v);
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Rewrites the upstream's response head for the client.
fn downstream_response(state: &AppState, host: &str, h: &mut HeaderMap) {
    hop::strip(h);
    let cfg = &state.config;
    let has_redirect = h.contains_key(header::LOCATION)
        || h.contains_key(header::CONTENT_LOCATION)
        || h.contains_key("refresh");
    // Most answers carry none of these: the public origin is worked out only when needed.
    if cfg.upstream.rewrite_redirects && has_redirect {
        let upstream = &cfg.upstream.url;
        response_filter::RedirectRewriter {
            upstream_origin: &upstream.origin,
            upstream_default_port: upstream.authority.port().is_none(),
            public_origin: &state.public_origin_for(host),
            client_host: host,
        }
        .apply(h);
    }
    if cfg.server.secure_cookies {
        response_filter::secure_cookies(h);
    }
    if cfg.server.via {
        h.append(header::VIA, HeaderValue::from_static(VIA));
    }
    if cfg.server.upgrade_insecure_requests && is_html(h) {
        h.append(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("upgrade-insecure-requests"),
        );
    }
}

fn is_html(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
}
