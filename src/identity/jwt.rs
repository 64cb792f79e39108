//! `identity.mode = "jwt"`: a token from a cookie or header, verified locally.
//!
//! Keys come from an HS256 secret file, a JWKS file, or a JWKS URL (what OIDC gateways
//! publish). Each key is pinned to one algorithm (its `alg`, else the one its type implies),
//! and a token is tried only against keys whose algorithm equals the token's: an RSA public
//! key can never be used as an HMAC secret, and `alg: none` is not an algorithm the library
//! knows. `exp` is required, `nbf` checked, both with a small leeway; `iss` and `aud` when
//! configured. A token naming an unknown `kid` makes the sidecar fetch the JWKS again, at most
//! once per [`REFETCH_INTERVAL`]; a JWKS URL that never answered makes the identity source
//! unavailable (503), not the user unauthenticated.

use super::IdentityError;
use arc_swap::{ArcSwap, ArcSwapOption};
use http::header::HeaderMap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_TOKEN: usize = 16 * 1024;
const MAX_JWKS: usize = 256 * 1024;
const LEEWAY_SECS: u64 = 30;
/// The fastest an unknown `kid` can make the JWKS be fetched again.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Where the token is; a header's `Authorization` value loses its `Bearer ` prefix.
pub use crate::config::identity::TokenSource;

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

pub use crate::config::identity::JwtSettings as JwtOptions;

pub struct JwtVerifier {
    opts: JwtOptions,
    /// Keys from the secret file and the JWKS file.
    local_keys: ArcSwap<Vec<Key>>,
    /// Keys from the JWKS URL; `None` until it has answered once.
    remote_keys: ArcSwapOption<Vec<Key>>,
    http: reqwest::Client,
    /// When an unknown `kid` last made us fetch; scheduled refreshes do not count.
    last_kid_fetch: Mutex<Option<Instant>>,
    /// Held while the JWKS is being fetched, so that requests wait for it and fetches never overlap.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

impl JwtVerifier {
    /// Reads the local key files; an error names the file.
    /// How often a JWKS URL is fetched again.
    pub fn refresh_interval(&self) -> Duration {
        self.opts.jwks_refresh
    }

    pub fn new(opts: JwtOptions) -> Result<JwtVerifier, String> {
        let loopback = opts
            .jwks_url
            .as_deref()
            .is_some_and(crate::config::origin::is_loopback_http);
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!loopback)
            .build()
            .map_err(|e| format!("identity.jwks_url: {e}"))?;
        let v = JwtVerifier {
            local_keys: ArcSwap::from_pointee(load_local(&opts)?),
            opts,
            remote_keys: ArcSwapOption::empty(),
            http,
            last_kid_fetch: Mutex::new(None),
            fetching: Arc::new(tokio::sync::Mutex::new(())),
        };
        Ok(v)
    }

    pub fn local_files(&self) -> Vec<PathBuf> {
        [&self.opts.hs256_secret_file, &self.opts.jwks_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Re-reads the key files; a broken file keeps the previous keys.
    pub fn reload_local(&self) {
        match load_local(&self.opts) {
            Ok(keys) => {
                self.local_keys.store(Arc::new(keys));
                tracing::info!("JWT keys reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "JWT keys not reloaded; keeping the previous ones")
            }
        }
    }

    pub fn has_remote(&self) -> bool {
        self.opts.jwks_url.is_some()
    }

    /// Fetches the JWKS URL now; keeps the previous keys when that fails.
    pub async fn refresh(&self) -> Result<(), String> {
        let Some(url) = &self.opts.jwks_url else {
            return Ok(());
        };
        let _one_at_a_time = self.fetching.lock().await;
        self.fetch_locked(url).await
    }

    async fn fetch_locked(&self, url: &str) -> Result<(), String> {
        let result = async {
            let mut resp = self
                .http
                .get(url)
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(|e| format!("JWKS fetch failed: {}", crate::wire::ErrorChain(&e)))?;
            if !resp.status().is_success() {
                return Err(format!(
                    "JWKS fetch answered HTTP {}",
                    resp.status().as_u16()
                ));
            }
            let mut raw = Vec::new();
            while let Some(c) = resp
                .chunk()
                .await
                .map_err(|e| format!("JWKS read failed: {e}"))?
            {
                if raw.len() + c.len() > MAX_JWKS {
                    return Err("JWKS larger than 256 KiB".into());
                }
                raw.extend_from_slice(&c);
            }
            keys_from_jwks(&raw, "identity.jwks_url")
        }
        .await;
        match result {
            Ok(keys) => {
                self.remote_keys.store(Some(Arc::new(keys)));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS not refreshed");
                Err(e)
            }
        }
    }

    /// Refreshes the JWKS every `every` while the process runs.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) {
        if !self.has_remote() {
            return;
        }
        let me = self.clone();
        // The first fetch holds the lock from now on: a request that arrives before it is
        // done waits for the keys instead of being refused or fetching a second time.
        let first = self.fetching.clone().try_lock_owned().ok();
        tokio::spawn(async move {
            if let (Some(_guard), Some(url)) = (first, me.opts.jwks_url.as_deref()) {
                let _ = me.fetch_locked(url).await;
            }
            loop {
                let pause = if me.remote_keys.load().is_some() {
                    every
                } else {
                    REFETCH_INTERVAL
                };
                tokio::time::sleep(pause).await;
                let _ = me.refresh().await;
            }
        });
    }

    fn token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let t = match &self.opts.token {
            TokenSource::Cookie(name) => super::cookies::single(headers, name)?,
            TokenSource::Header(name) => {
                let mut values = headers.get_all(name).iter();
                let (Some(v), None) = (values.next(), values.next()) else {
                    return None;
                };
                let v = v.to_str().ok()?.trim();
                match v.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                    _ => v,
                }
            }
        };
        (!t.is_empty() && t.len() <= MAX_TOKEN).then_some(t)
    }

    /// The user named by the request's token.
    pub async fn user(&self, headers: &HeaderMap) -> Result<String, IdentityError> {
        let token = self
            .token(headers)
            .ok_or(IdentityError::Unauthenticated("no token"))?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| IdentityError::Unauthenticated("malformed token or unknown algorithm"))?;
        let kid = header.kid.as_deref();
        let mut outcome = self.verify_with_known_keys(token, header.alg, kid);
        if matches!(outcome, Verified::NoKey) && self.has_remote() {
            // A fetch may be under way (the first one, or for another request's unknown kid):
            // its keys may be the ones needed.
            drop(self.fetching.lock().await);
            outcome = self.verify_with_known_keys(token, header.alg, kid);
            if matches!(outcome, Verified::NoKey) && self.refetch_allowed() {
                let _ = self.refresh().await;
                outcome = self.verify_with_known_keys(token, header.alg, kid);
            }
        }
        match outcome {
            Verified::Claims(claims) => {
                let user = match claims.get(&self.opts.claim) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => return Err(IdentityError::Unauthenticated("token lacks the user claim")),
                };
                super::checked_user(&user)
            }
            Verified::Invalid => Err(IdentityError::Unauthenticated("token rejected")),
            Verified::NoKey if self.has_remote() && self.remote_keys.load().is_none() => {
                Err(IdentityError::Unavailable("the JWKS could not be fetched"))
            }
            Verified::NoKey => Err(IdentityError::Unauthenticated(
                "no key for the token's kid and algorithm",
            )),
        }
    }

    /// Claims the right to fetch for an unknown `kid`: at most once per [`REFETCH_INTERVAL`].
    fn refetch_allowed(&self) -> bool {
        if !self.has_remote() {
            return false;
        }
        let mut last = self
            .last_kid_fetch
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    fn verify_with_known_keys(&self, token: &str, alg: Algorithm, kid: Option<&str>) -> Verified {
        let local = self.local_keys.load();
        let remote = self.remote_keys.load();
        let candidates = local
            .iter()
            .chain(remote.iter().flat_map(|k| k.iter()))
            .filter(|k| k.alg == alg)
            .filter(|k| match (&k.kid, kid) {
                (Some(a), Some(b)) => a == b,
                (Some(_), None) => true,
                (None, _) => true,
            });
        let mut any = false;
        for k in candidates {
            any = true;
            let mut v = Validation::new(k.alg);
            v.leeway = LEEWAY_SECS;
            v.validate_nbf = true;
            v.set_required_spec_claims(&["exp"]);
            match &self.opts.audience {
                Some(aud) => {
                    v.set_audience(&[aud]);
                    v.required_spec_claims.insert("aud".into());
                }
                None => v.validate_aud = false,
            }
            if let Some(iss) = &self.opts.issuer {
                v.set_issuer(&[iss]);
                v.required_spec_claims.insert("iss".into());
            }
            if let Ok(data) = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token, &k.key, &v,
            ) {
                return Verified::Claims(data.claims);
            }
        }
        if any {
            Verified::Invalid
        } else {
            Verified::NoKey
        }
    }
}

enum Verified {
    Claims(serde_json::Map<String, serde_json::Value>),
    Invalid,
    NoKey,
}

fn load_local(opts: &JwtOptions) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    if let Some(p) = &opts.hs256_secret_file {
        let raw = std::fs::read(p).map_err(|e| {
            format!(
                "identity.hs256_secret_file: {}: cannot read: {e}",
                p.display()
            )
        })?;
        let secret = raw.trim_ascii();
        // An HS256 key shorter than the hash weakens it: the JWA rules refuse it.
        if secret.len() < 32 {
            return Err(format!(
                "identity.hs256_secret_file: {}: the secret must be at least 32 bytes",
                p.display()
            ));
        }
        keys.push(Key {
            kid: None,
            alg: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        });
    }
    if let Some(p) = &opts.jwks_file {
        let raw = std::fs::read(p)
            .map_err(|e| format!("identity.jwks_file: {}: cannot read: {e}", p.display()))?;
        keys.extend(keys_from_jwks(
            &raw,
            &format!("identity.jwks_file: {}", p.display()),
        )?);
    }
    Ok(keys)
}

/// The usable signature keys of a JWKS document, each pinned to one algorithm.
fn keys_from_jwks(raw: &[u8], what: &str) -> Result<Vec<Key>, String> {
    let set: JwkSet =
        serde_json::from_slice(raw).map_err(|e| format!("{what}: not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let alg = match jwk.common.key_algorithm {
            Some(a) => match Algorithm::from_str(&a.to_string()) {
                Ok(a) => a,
                Err(_) => continue,
            },
            None => match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => continue,
                },
                AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                // A published symmetric key without a declared algorithm is a mistake; skip it.
                _ => continue,
            },
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        if key.family() != alg.family() {
            continue;
        }
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err(format!("{what}: no usable signature key"));
    }
    Ok(keys)
}
