//! The upstream request: the client's head turned into the upstream's (origin-form target,
//! HTTP/1.1, hop-by-hop fields gone, identity headers only from trusted peers, forwarding
//! headers, `Host`, a request id, `Via`), then sent with the response-header timeout of its
//! path and the client body's own timeout.

use super::access_log::RequestId;
use super::context::ConnInfo;
use super::refusal::Refusal;
use crate::identity::Identity;
use crate::state::{AppState, Snapshot};
use crate::wire::client_body::{self, ClientBody};
use crate::wire::names::{VIA, X_REQUEST_ID};
use crate::wire::pool::{PoolError, PooledBody};
use crate::wire::{forwarded, hop};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use std::time::{Duration, Instant};

/// Turns the client's request head into the upstream's; returns the request id used.
pub fn build(
    snap: &Snapshot,
    identity: &Identity,
    conn: &ConnInfo,
    req: &mut Request<Incoming>,
    host: &HeaderValue,
    upgrade: Option<&HeaderValue>,
) -> Result<RequestId, Refusal> {
    let config = &snap.config;
    // Origin-form, as HTTP/1.1 sends to an origin server; an HTTP/2 or
    // absolute-form target loses its scheme and authority (the Host header carries it).
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = Some(
            req.uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        *req.uri_mut() = Uri::from_parts(parts).map_err(|_| Refusal::BadTarget)?;
    }
    let from_h2 = req.version() == Version::HTTP_2;
    *req.version_mut() = Version::HTTP_11;

    let headers = req.headers_mut();
    hop::strip(headers);
    if !identity.sanitize(headers, conn.peer.ip()) {
        return Err(Refusal::AmbiguousIdentity);
    }
    if from_h2 {
        join_cookie_crumbs(headers);
    }
    let fwd = forwarded::apply(
        headers,
        &conn.forwarding,
        &config.server.trusted_proxies,
        host,
    );
    // Inserted even when it came as the `Host` header: `Connection` may have named it.
    // A legacy HTTP/1.0 request without Host goes upstream with the upstream's own authority.
    if host.is_empty() {
        if let Ok(v) = HeaderValue::from_str(config.upstream.url.authority.as_str()) {
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
                .ok_or(Refusal::RequestId)?;
            headers.insert(X_REQUEST_ID, value);
            id
        }
    };
    if config.server.via {
        headers.append(header::VIA, HeaderValue::from_static(VIA));
    }
    if let Some(proto) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto.clone());
    }
    Ok(request_id)
}

/// Sends the request with `timeout` for the response head; returns the answer and how long
/// the upstream took. The client body's own failures (too slow, unreadable) are told apart
/// from the upstream's.
pub async fn send(
    state: &AppState,
    snap: &Snapshot,
    req: Request<Incoming>,
    timeout: Duration,
) -> (Result<Response<PooledBody>, Refusal>, f64) {
    let (req, client_failed) = {
        let (parts, body) = req.into_parts();
        let (body, failed) = ClientBody::new(
            body,
            snap.config.server.client_body_timeout.get(),
            state.metrics.clone(),
        );
        (Request::from_parts(parts, body), failed)
    };
    let sent = Instant::now();
    let result = tokio::time::timeout(timeout, state.pool.send(req)).await;
    let upstream_secs = sent.elapsed().as_secs_f64();
    let answer = match result {
        Err(_) => {
            state.metrics.upstream_error("timeout");
            Err(Refusal::UpstreamTimeout)
        }
        Ok(Err(e)) => match client_failed.load(std::sync::atomic::Ordering::Relaxed) {
            client_body::TIMED_OUT => Err(Refusal::ClientBodyTimeout),
            client_body::FAILED => Err(Refusal::BadRequestBody),
            _ => Err(upstream_failed(state, e)),
        },
        Ok(Ok(resp)) => {
            state.metrics.upstream_duration.observe(upstream_secs);
            Ok(resp)
        }
    };
    (answer, upstream_secs)
}

/// The upstream request failed for a reason of the upstream's (or the network's).
fn upstream_failed(state: &AppState, e: PoolError) -> Refusal {
    let (kind, refusal) = match e {
        PoolError::Connect(_) => ("connect", Refusal::UpstreamError),
        PoolError::Request(_) => ("reset", Refusal::UpstreamError),
        PoolError::Framing => ("protocol", Refusal::UpstreamBadFraming),
    };
    if refusal == Refusal::UpstreamError {
        tracing::warn!(kind, error = %crate::wire::ErrorChain(&e), "upstream request failed");
    }
    state.metrics.upstream_error(kind);
    refusal
}

/// HTTP/2 may split `Cookie` into several fields; an HTTP/1.1 upstream expects one.
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
