//! Routing: the sidecar's own endpoints, dispatched from one place, against everything that
//! is forwarded. A new endpoint is one [`Endpoint`] variant, one line in [`route`] and one arm
//! in [`answer`].

use super::context::ConnInfo;
use crate::identity::Identity;
use crate::inject::shell::Role;
use crate::state::{AppState, Snapshot};
use crate::wire::{responses, Body};
use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

/// The answers the sidecar makes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `OPTIONS *`: a question about the server itself.
    ServerOptions,
    /// `login.path`: a token request.
    Login,
    /// `inject.loader_path`: the loader script (and the shell's bridge).
    Loader,
    /// `inject.diag_path`: the agents' diagnostics page.
    Diag,
    /// Shell mode: a top-level navigation gets the shell page that frames the application.
    ShellPage,
}

/// Where a request goes.
pub enum Route {
    Endpoint(Endpoint),
    /// To the upstream, in shell mode's `role`; `logout` when the path ends a CRM session the
    /// identity source remembers.
    Forward {
        role: Role,
        logout: bool,
    },
}

pub fn route(snap: &Snapshot, identity: &Identity, req: &Request<Incoming>) -> Route {
    if req.uri().path_and_query().map(|p| p.as_str()) == Some("*") {
        return Route::Endpoint(Endpoint::ServerOptions);
    }
    let path = req.uri().path();
    let config = &snap.config;
    if path == config.login.path {
        return Route::Endpoint(Endpoint::Login);
    }
    if path == config.inject.loader_path {
        return Route::Endpoint(Endpoint::Loader);
    }
    if snap.diag.as_ref().is_some_and(|d| path == d.path()) {
        return Route::Endpoint(Endpoint::Diag);
    }
    let role = snap.inject.role(req.method(), req.headers(), path);
    if role == Role::Shell {
        return Route::Endpoint(Endpoint::ShellPage);
    }
    Route::Forward {
        role,
        logout: identity.is_logout(path),
    }
}

/// The answer of one of the sidecar's endpoints.
pub async fn answer(
    endpoint: Endpoint,
    state: &AppState,
    snap: &Snapshot,
    conn: &ConnInfo,
    req: &Request<Incoming>,
    host: &str,
) -> Response<Body> {
    match endpoint {
        Endpoint::ServerOptions => server_options(),
        Endpoint::Login => {
            if let Some(refusal) = crate::login::body_refusal(req.headers()) {
                state.metrics.login_outcome("payload_too_large");
                return refusal;
            }
            let public_origin = snap.public_origin_for(host);
            // Boxed, like every rare path: an async fn's state is as large as its largest
            // await, and the common proxied request should not carry (and move) a CCC call's.
            Box::pin(state.login.handle(crate::login::LoginRequest {
                identity: &state.identity,
                method: req.method(),
                headers: req.headers(),
                peer: conn.peer.ip(),
                host,
                public_origin: &public_origin,
            }))
            .await
        }
        Endpoint::Loader => {
            snap.inject
                .loader
                .respond(req.method(), req.uri().query(), req.headers())
        }
        Endpoint::Diag => match &snap.diag {
            Some(diag) => {
                Box::pin(diag.respond(
                    req.method(),
                    req.headers(),
                    conn.peer.ip(),
                    host,
                    &state.login,
                    &state.identity,
                ))
                .await
            }
            // `route` names this endpoint only when the page is configured.
            None => {
                let mut r = Response::new(responses::empty());
                *r.status_mut() = http::StatusCode::NOT_FOUND;
                r
            }
        },
        Endpoint::ShellPage => {
            let target = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            snap.inject.shell_page(target)
        }
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
