//! Who the browser's user is, without any change to the CRM (`identity.mode`).
//!
//! Four sources: a header from a trusted SSO gateway ([`header`]), the CRM's own whoami answer
//! ([`introspect`]), a locally verified JWT ([`jwt`]), or one fixed seat for local development
//! (`static`). Every mode fails closed: no identity is `Unauthenticated` (401), and an
//! identity source that cannot answer is `Unavailable` (503, retryable) so that a CRM blip
//! does not silently take the workbench away from agents.

pub mod cookie_scope;
pub mod cookies;
pub mod header;
pub mod introspect;
pub mod jwt;
pub mod spoofable;

use crate::config::types::any_contains;
use crate::config::{Cidr, Config, ModeSettings};
use crate::runtime::metrics::Metrics;
use http::header::HeaderMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Why no user could be named. The reasons are fixed strings: they go to logs and never
/// carry request data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no identity: {0}")]
    Unauthenticated(&'static str),
    #[error("identity source unavailable: {0}")]
    Unavailable(&'static str),
}

/// Whom a token request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A CRM user, to be mapped to a seat.
    User(String),
    /// A seat named directly (`static` mode).
    Seat(String),
}

pub enum Source {
    Header(header::HeaderIdentity),
    Introspect(Box<introspect::Introspector>),
    Jwt(Arc<jwt::JwtVerifier>),
    Static(String),
}

pub struct Identity {
    pub source: Source,
    /// Headers that name a user, removed from untrusted peers in every mode.
    spoofable: spoofable::Spoofable,
    /// `identity.trusted_peers`: in modes other than `header`, the peers whose identity
    /// headers reach the upstream (a gateway in front of the sidecar); nobody by default.
    trusted_peers: Vec<Cidr>,
    metrics: Arc<Metrics>,
}

impl Identity {
    /// Builds the configured source; errors name the key.
    pub fn from_config(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Identity>, String> {
        let id = &config.identity;
        let source = match &id.settings {
            ModeSettings::Header(h) => Source::Header(header::HeaderIdentity::new(
                &h.header,
                id.trusted_peers.clone(),
                h.gateway_secret_header.as_deref(),
                h.gateway_secret_file.clone(),
            )?),
            ModeSettings::Introspect(s) => Source::Introspect(Box::new(
                introspect::Introspector::new(&config.upstream, s, &id.logout_paths)?,
            )),
            ModeSettings::Jwt(s) => Source::Jwt(Arc::new(jwt::JwtVerifier::new(s.clone())?)),
            ModeSettings::Static(s) => Source::Static(s.seat.clone()),
        };
        let configured = match &id.settings {
            ModeSettings::Header(h) => Some(h.header.as_str()),
            _ => None,
        };
        let spoofable = spoofable::Spoofable::new(
            configured
                .into_iter()
                .chain(id.strip_headers.iter().map(String::as_str)),
        );
        Ok(Arc::new(Identity {
            source,
            spoofable,
            trusted_peers: id.trusted_peers.clone(),
            metrics,
        }))
    }

    /// Starts whatever keeps the source fresh: file watches, JWKS refreshes.
    pub fn spawn_background(self: &Arc<Self>, config: &Config) {
        let interval = config.server.reload_interval.get();
        match &self.source {
            Source::Header(h) => {
                if let Some(f) = h.secret_file() {
                    let me = self.clone();
                    crate::runtime::watch::spawn(vec![f], interval, move || {
                        if let Source::Header(h) = &me.source {
                            match h.reload_secret() {
                                Ok(()) => tracing::info!("gateway secret reloaded"),
                                Err(e) => {
                                    tracing::error!(error = %e, "gateway secret not reloaded; keeping the previous one")
                                }
                            }
                        }
                    });
                }
            }
            Source::Jwt(v) => {
                let files = v.local_files();
                if !files.is_empty() {
                    let v2 = v.clone();
                    crate::runtime::watch::spawn(files, interval, move || v2.reload_local());
                }
                v.spawn_refresh(v.refresh_interval());
            }
            _ => {}
        }
    }

    /// Runs on every request before it is forwarded, in every mode: removes the identity
    /// headers an untrusted peer may not assert (the configured one and [`spoofable::DEFAULT`],
    /// in every spelling). `false` means refuse the request (a trusted gateway sent two users).
    pub fn sanitize(&self, headers: &mut HeaderMap, peer: IpAddr) -> bool {
        let trusted = match &self.source {
            Source::Header(h) => match h.sanitize(headers, peer) {
                header::Verdict::Ambiguous => return false,
                header::Verdict::Trusted => true,
                header::Verdict::Stripped => false,
            },
            _ => any_contains(&self.trusted_peers, peer),
        };
        if !trusted {
            self.spoofable.strip(headers);
        }
        true
    }

    /// Whether `path` is a configured logout path whose session must be forgotten.
    pub fn is_logout(&self, path: &str) -> bool {
        matches!(&self.source, Source::Introspect(i) if i.is_logout(path))
    }

    /// Forgets the session of a logout request. Called before the CRM sees the request and
    /// again after it answered, in case a lookup that started before stored it meanwhile.
    pub async fn forget(&self, headers: &HeaderMap, host: &str) {
        if let Source::Introspect(i) = &self.source {
            i.forget(headers, host).await;
        }
    }

    /// The user (or seat) behind a token request.
    pub async fn resolve(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        host: &str,
    ) -> Result<Who, IdentityError> {
        let r = match &self.source {
            Source::Header(h) => h.user(headers, peer).map(Who::User),
            Source::Introspect(i) => i.user(headers, host, &self.metrics).await.map(Who::User),
            Source::Jwt(v) => v.user(headers).await.map(Who::User),
            Source::Static(seat) => {
                if crate::config::types::canonical_ip(peer).is_loopback() {
                    Ok(Who::Seat(seat.clone()))
                } else {
                    Err(IdentityError::Unauthenticated(
                        "static identity serves loopback clients only",
                    ))
                }
            }
        };
        if let Err(e) = &r {
            self.metrics.identity_lookup(match e {
                IdentityError::Unauthenticated(_) => "anonymous",
                IdentityError::Unavailable(_) => "unavailable",
            });
        }
        r
    }
}

/// A user id as the identity sources may return it: non-empty, bounded, no control
/// characters (it reaches logs and the seat template).
pub fn checked_user(user: &str) -> Result<String, IdentityError> {
    if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
        return Err(IdentityError::Unauthenticated(
            "user id empty, too long or not printable",
        ));
    }
    Ok(user.to_string())
}
