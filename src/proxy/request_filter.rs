//! The request filter: what is refused before anything is forwarded or answered. The
//! address's limit of requests in flight, the head's size, methods and transfer codings that
//! cannot be forwarded safely, a request target in a form its method may not use, and a host
//! this server does not serve.

use super::context::ConnInfo;
use super::refusal::Refusal;
use crate::runtime::per_address::Request as Counted;
use crate::state::Snapshot;
use crate::wire::hop;
use http::header::{self, HeaderValue};
use http::{Method, Request, Version};
use hyper::body::Incoming;

/// Counts the request against its address's limit of requests in flight; `Err` when the
/// address is over it (refused before anything is read or forwarded).
pub fn enter(conn: &ConnInfo) -> Result<Option<Counted>, Refusal> {
    match &conn.in_flight {
        Some(limit) => limit
            .enter()
            .map(Some)
            .ok_or(Refusal::ClientRequestsInFlight),
        None => Ok(None),
    }
}

/// Refuses what must not reach the upstream; returns the host the request is for, as the
/// `Host` value it goes upstream with (its `to_str` succeeds).
pub fn check(snap: &Snapshot, req: &Request<Incoming>) -> Result<HeaderValue, Refusal> {
    let server = &snap.config.server;
    if head_size(req) > server.max_header_bytes {
        return Err(Refusal::HeaderTooLarge);
    }
    if req.method() == Method::CONNECT {
        return Err(Refusal::ConnectMethod);
    }
    // hyper has already refused a Transfer-Encoding whose last coding is not `chunked`; any
    // other coding before it would be silently dropped when the body is de-chunked.
    if !hop::only_chunked(req.headers()) {
        return Err(Refusal::UnsupportedTransferCoding);
    }
    check_target(req)?;
    let host = request_host(req).ok_or(Refusal::MissingHost)?;
    if !snap.host_allowed(host.to_str().unwrap_or_default()) {
        return Err(Refusal::UnknownHost);
    }
    let target_len = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if target_len > server.max_uri_bytes {
        return Err(Refusal::UriTooLong);
    }
    Ok(host)
}

/// The request target's form must be the one its method may use: origin-form (`/path`),
/// absolute-form whose authority is the `Host` it came with (an `http` or `https` URI),
/// asterisk-form for OPTIONS only; authority-form is CONNECT's, which is refused before this.
/// Over HTTP/2 a `Host` beside `:authority` must name the same host. Anything else could make the sidecar and the upstream disagree on which
/// host or resource a request is for.
fn check_target(req: &Request<Incoming>) -> Result<(), Refusal> {
    let uri = req.uri();
    if uri.path_and_query().map(|p| p.as_str()) == Some("*") {
        return if req.method() == Method::OPTIONS {
            Ok(())
        } else {
            Err(Refusal::AsteriskForm)
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
                Err(Refusal::HostMismatch)
            }
            _ => Ok(()),
        };
    }
    let Some(scheme) = uri.scheme_str() else {
        return Err(Refusal::AuthorityForm);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(Refusal::BadTarget);
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
        _ => Err(Refusal::HostMismatch),
    }
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
/// HTTP/1.1), else the `Host` header (shared, not copied). HTTP/1.1 without
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
