//! The body filter: what becomes of the upstream's answer body. In script mode an eligible
//! page gets the loader (streamed through `inject`); in shell mode a framed page gets the
//! bridge with its user's fingerprint, and a framed page redirected to another origin is
//! answered with a page that takes the whole tab there.

use super::context::Ctx;
use crate::inject::shell::Role;
use crate::state::AppState;
use crate::wire::pool::PooledBody;
use crate::wire::Body;
use http::header::{self, HeaderMap};
use http::{Method, Response};
use std::net::IpAddr;

/// The answer as the client gets it.
pub async fn respond(
    state: &AppState,
    mut ctx: Ctx<'_>,
    peer: IpAddr,
    resp: Response<PooledBody>,
) -> Response<Body> {
    if let Role::Framed { .. } = ctx.role {
        if let Some(page) = framed_redirect(state, &ctx, &resp) {
            return page;
        }
        if let Some(headers) = ctx.identity_headers.take() {
            if ctx.prepared.check_response(resp.status(), resp.headers()) {
                ctx.prepared.user = Box::pin(frame_user(state, &headers, peer, ctx.host())).await;
            }
        }
    }
    let snap = ctx.snap;
    let host = ctx.host_value.to_str().unwrap_or_default();
    snap.inject
        .respond(ctx.prepared, resp, || snap.public_origin_for(host), host)
}

/// Shell mode: a framed page redirected to another origin (single sign-on, typically, whose
/// pages refuse to be framed) is answered with a page that takes the tab there instead.
fn framed_redirect(
    state: &AppState,
    ctx: &Ctx<'_>,
    resp: &Response<PooledBody>,
) -> Option<Response<Body>> {
    let status = resp.status();
    let replays_method = matches!(status.as_u16(), 307 | 308);
    if !status.is_redirection() || (replays_method && ctx.method != Method::GET) {
        return None;
    }
    let location = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    if !crate::inject::shell::leaves_origin(location, &ctx.snap.public_origin_for(ctx.host())) {
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
    peer: IpAddr,
    host: &str,
) -> Option<String> {
    let fingerprints = state.login.fingerprints.as_ref()?;
    match state.identity.resolve(headers, peer, host).await {
        Ok(who) => Some(fingerprints.of(&who)),
        Err(crate::identity::IdentityError::Unauthenticated(_)) => {
            Some(crate::inject::shell::fingerprint::ANONYMOUS.to_string())
        }
        Err(crate::identity::IdentityError::Unavailable(_)) => None,
    }
}
