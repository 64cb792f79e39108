//! `identity.mode = "header"`: the user named by an SSO gateway in a request header.
//!
//! The header is believed only from a peer in `identity.trusted_peers` (a list of its own:
//! ingresses pass client headers on, so trusting one for `X-Forwarded-For` must not mean
//! trusting it for identity), and, when configured, only with the gateway's shared secret.
//! From anyone else the header is removed from every request, the CRM's included, together
//! with its underscore spellings (`X_Remote_User`), which CGI-style backends read as the same
//! variable. A trusted peer that sends the header twice is refused: which copy would win
//! differs between the sidecar and the CRM.

use super::IdentityError;
use crate::config::types::any_contains;
use crate::config::Cidr;
use arc_swap::ArcSwapOption;
use http::header::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub struct HeaderIdentity {
    name: HeaderName,
    trusted: Vec<Cidr>,
    secret_header: Option<HeaderName>,
    /// SHA-256 of the gateway secret; compared as digests so the comparison leaks nothing useful.
    secret: ArcSwapOption<[u8; 32]>,
    secret_file: Option<PathBuf>,
}

/// What the sanitizer decided about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The peer is trusted and the header (if any) stays for the CRM.
    Trusted,
    /// The header and its variants were removed.
    Stripped,
    /// A trusted peer sent the header more than once.
    Ambiguous,
}

impl HeaderIdentity {
    pub fn new(
        name: &str,
        trusted: Vec<Cidr>,
        secret_header: Option<&str>,
        secret_file: Option<PathBuf>,
    ) -> Result<HeaderIdentity, String> {
        let name = HeaderName::try_from(name)
            .map_err(|_| "identity.header: not a valid header name".to_string())?;
        let secret_header = secret_header
            .map(|h| {
                HeaderName::try_from(h).map_err(|_| {
                    "identity.gateway_secret_header: not a valid header name".to_string()
                })
            })
            .transpose()?;
        let h = HeaderIdentity {
            name,
            trusted,
            secret_header,
            secret: ArcSwapOption::empty(),
            secret_file,
        };
        h.reload_secret()?;
        Ok(h)
    }

    pub fn secret_file(&self) -> Option<PathBuf> {
        self.secret_file.clone()
    }

    /// Reads the gateway secret file; an error keeps the previous secret.
    pub fn reload_secret(&self) -> Result<(), String> {
        let Some(path) = &self.secret_file else {
            return Ok(());
        };
        let raw = std::fs::read(path).map_err(|e| {
            format!(
                "identity.gateway_secret_file: {}: cannot read: {e}",
                path.display()
            )
        })?;
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Err(format!(
                "identity.gateway_secret_file: {}: file is empty",
                path.display()
            ));
        }
        self.secret
            .store(Some(Arc::new(Sha256::digest(trimmed).into())));
        Ok(())
    }

    fn peer_trusted(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        if !any_contains(&self.trusted, peer) {
            return false;
        }
        let Some(secret_header) = &self.secret_header else {
            return true;
        };
        let Some(expected) = self.secret.load_full() else {
            // A secret header is configured but no secret could be read: fail closed.
            return false;
        };
        let mut sent = headers.get_all(secret_header).iter();
        match (sent.next(), sent.next()) {
            (Some(v), None) => {
                let got: [u8; 32] = Sha256::digest(v.as_bytes().trim_ascii()).into();
                got == *expected
            }
            _ => false,
        }
    }

    /// Removes what an untrusted peer may not assert; runs on every request.
    pub fn sanitize(&self, headers: &mut HeaderMap, peer: IpAddr) -> Verdict {
        let trusted = self.peer_trusted(peer, headers);
        let spoofable: Vec<HeaderName> = headers
            .keys()
            .filter(|k| {
                let same_identity = same_modulo_underscore(k.as_str(), self.name.as_str());
                let same_secret = self
                    .secret_header
                    .as_ref()
                    .is_some_and(|s| same_modulo_underscore(k.as_str(), s.as_str()));
                // The exact name from a trusted peer is the only form that survives.
                (same_identity || same_secret)
                    && !(trusted && **k == self.name)
                    && !(trusted && self.secret_header.as_ref() == Some(*k))
            })
            .cloned()
            .collect();
        for k in &spoofable {
            headers.remove(k);
        }
        if !trusted {
            return Verdict::Stripped;
        }
        if headers.get_all(&self.name).iter().nth(1).is_some() {
            return Verdict::Ambiguous;
        }
        Verdict::Trusted
    }

    /// The user the gateway named, for the login endpoint.
    pub fn user(&self, headers: &HeaderMap, peer: IpAddr) -> Result<String, IdentityError> {
        if !self.peer_trusted(peer, headers) {
            return Err(IdentityError::Unauthenticated("untrusted peer"));
        }
        let mut values = headers.get_all(&self.name).iter();
        let (Some(v), None) = (values.next(), values.next()) else {
            return Err(IdentityError::Unauthenticated(
                "identity header absent or repeated",
            ));
        };
        let user = v
            .to_str()
            .map_err(|_| IdentityError::Unauthenticated("identity header not text"))?
            .trim();
        super::checked_user(user)
    }
}

/// `X-Remote-User`, `x_remote_user` and `X_REMOTE-USER` all name the same CGI variable.
fn same_modulo_underscore(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let norm = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            norm(x) == norm(y)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    fn ident() -> HeaderIdentity {
        HeaderIdentity::new(
            "X-Remote-User",
            vec!["127.0.0.1".parse().unwrap()],
            None,
            None,
        )
        .unwrap()
    }

    #[test]
    fn untrusted_peers_lose_every_spelling() {
        let id = ident();
        let mut h = headers(&[
            ("x-remote-user", "alice"),
            ("x_remote_user", "alice"),
            ("X_REMOTE_USER", "alice"),
            ("x-remote_user", "alice"),
            ("cookie", "a=b"),
        ]);
        let peer: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(id.sanitize(&mut h, peer), Verdict::Stripped);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(id.user(&h, peer).is_err());
    }

    #[test]
    fn trusted_peer_keeps_the_exact_header_only() {
        let id = ident();
        let mut h = headers(&[("x-remote-user", "alice"), ("x_remote_user", "mallory")]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(id.sanitize(&mut h, peer), Verdict::Trusted);
        assert_eq!(h.get("x-remote-user").unwrap(), "alice");
        assert!(h.get("x_remote_user").is_none());
        assert_eq!(id.user(&h, peer).unwrap(), "alice");
        let mut dup = headers(&[("x-remote-user", "alice"), ("x-remote-user", "bob")]);
        assert_eq!(id.sanitize(&mut dup, peer), Verdict::Ambiguous);
        assert!(id.user(&dup, peer).is_err());
    }

    #[test]
    fn names_compare_modulo_underscore_and_case() {
        assert!(same_modulo_underscore("x_remote_user", "x-remote-user"));
        assert!(!same_modulo_underscore("x-remote-users", "x-remote-user"));
        assert!(!same_modulo_underscore("x-remote.user", "x-remote-user"));
    }
}
