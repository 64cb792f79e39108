//! A request's credentials as introspection forwards them: the configured session cookies
//! and, when `identity.forward_authorization` is on, its `Authorization` header; and the
//! cache key they make, an HMAC under a key drawn when the process starts, so that the
//! cache never holds a credential or a plain hash of one (a Basic password is short enough
//! to guess back from an unkeyed hash).

use super::super::cookies;
use hmac::{Hmac, Mac};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use sha2::Sha256;

pub type Key = [u8; 32];

/// What a request carries that the application recognises its user by.
pub struct Credentials {
    /// `name=value; ...` of the configured cookies present, or empty.
    pub cookie: String,
    pub authorization: Option<HeaderValue>,
    pub key: Key,
}

pub struct SessionRule {
    cookies: Vec<String>,
    forward_authorization: bool,
    secret: [u8; 32],
}

impl SessionRule {
    pub fn new(cookies: Vec<String>, forward_authorization: bool) -> SessionRule {
        SessionRule {
            cookies,
            forward_authorization,
            secret: rand::random(),
        }
    }

    /// This request's credentials, or why it has none (a fixed string, for the audit line).
    pub fn credentials(
        &self,
        headers: &HeaderMap,
        host: &str,
    ) -> Result<Credentials, &'static str> {
        let mut cookie = String::new();
        let mut mac = self.mac();
        mac.update(host.to_ascii_lowercase().as_bytes());
        for name in &self.cookies {
            if let Some(v) = cookies::single(headers, name) {
                if !cookie.is_empty() {
                    cookie.push_str("; ");
                }
                cookie.push_str(name);
                cookie.push('=');
                cookie.push_str(v);
                // Lengths first, so that no two different sets of values run together into
                // the same bytes.
                for part in [name.as_bytes(), v.as_bytes()] {
                    mac.update(&(part.len() as u64).to_be_bytes());
                    mac.update(part);
                }
            }
        }
        let authorization = if self.forward_authorization {
            authorization(headers)?
        } else {
            None
        };
        mac.update(b"\x00authorization");
        if let Some(a) = &authorization {
            mac.update(&(a.len() as u64).to_be_bytes());
            mac.update(a.as_bytes());
        }
        if cookie.is_empty() && authorization.is_none() {
            return Err(
                match (self.cookies.is_empty(), self.forward_authorization) {
                    (_, false) => "no session cookie",
                    (true, true) => "no Authorization",
                    (false, true) => "no session cookie and no Authorization",
                },
            );
        }
        Ok(Credentials {
            cookie,
            authorization,
            key: mac.finalize().into_bytes().into(),
        })
    }

    /// The key of a request's cache entry, for a logout to drop; `None` without credentials.
    pub fn key(&self, headers: &HeaderMap, host: &str) -> Option<Key> {
        self.credentials(headers, host).ok().map(|c| c.key)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }
}

/// The one `Authorization` header, when it can prove the user at another URL. Digest, NTLM
/// and Negotiate credentials are bound to one request line or one connection: replayed to
/// the introspection URL they would fail, or worse, be accepted by a server that does not
/// check the binding; they are refused with their reason.
fn authorization(headers: &HeaderMap) -> Result<Option<HeaderValue>, &'static str> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let Some(v) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err("several Authorization headers");
    }
    let scheme = v
        .to_str()
        .ok()
        .and_then(|s| s.split_ascii_whitespace().next())
        .map(str::to_ascii_lowercase);
    match scheme.as_deref() {
        None => Err("Authorization not readable"),
        Some("digest" | "ntlm" | "negotiate") => Err(
            "Authorization scheme bound to its own request (Digest, NTLM, Negotiate) cannot be forwarded",
        ),
        Some(_) => Ok(Some(v.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn two_users_never_share_a_key() {
        let rule = SessionRule::new(vec!["trac_auth".into()], true);
        let alice = headers(&[("authorization", "Basic YWxpY2U6cHc=")]);
        let bob = headers(&[("authorization", "Basic Ym9iOnB3")]);
        let a = rule.credentials(&alice, "h").unwrap();
        let b = rule.credentials(&bob, "h").unwrap();
        assert_ne!(a.key, b.key);
        assert_eq!(
            a.key,
            rule.credentials(&alice, "H").unwrap().key,
            "host case"
        );
        assert_ne!(a.key, rule.credentials(&alice, "other").unwrap().key);
        // The same cookie with and without the Authorization is two sessions.
        let c1 = headers(&[("cookie", "trac_auth=x")]);
        let c2 = headers(&[
            ("cookie", "trac_auth=x"),
            ("authorization", "Basic YWxpY2U6cHc="),
        ]);
        assert_ne!(
            rule.credentials(&c1, "h").unwrap().key,
            rule.credentials(&c2, "h").unwrap().key
        );
        assert_eq!(rule.credentials(&c2, "h").unwrap().cookie, "trac_auth=x");
    }

    #[test]
    fn the_key_is_keyed_and_holds_no_credential() {
        let h = headers(&[
            ("authorization", "Basic YWxpY2U6cHc="),
            ("cookie", "sid=s3cret"),
        ]);
        let one = SessionRule::new(vec!["sid".into()], true);
        let two = SessionRule::new(vec!["sid".into()], true);
        let k1 = one.credentials(&h, "h").unwrap().key;
        assert_ne!(
            k1,
            two.credentials(&h, "h").unwrap().key,
            "another process, another key"
        );
        use sha2::Digest;
        let plain: [u8; 32] = Sha256::digest(b"Basic YWxpY2U6cHc=").into();
        assert_ne!(k1, plain);
        let shown = format!("{k1:?}");
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn values_cannot_run_together() {
        let rule = SessionRule::new(vec!["a".into(), "b".into()], false);
        let one = headers(&[("cookie", "a=xy; b=z")]);
        let two = headers(&[("cookie", "a=x; b=yz")]);
        assert_ne!(
            rule.credentials(&one, "h").unwrap().key,
            rule.credentials(&two, "h").unwrap().key
        );
    }

    #[test]
    fn authorization_only_when_asked_for_and_forwardable() {
        let basic = headers(&[("authorization", "Basic YWxpY2U6cHc=")]);
        let off = SessionRule::new(vec!["sid".into()], false);
        assert_eq!(
            off.credentials(&basic, "h").err(),
            Some("no session cookie")
        );
        let only = SessionRule::new(vec![], true);
        assert_eq!(
            only.credentials(&HeaderMap::new(), "h").err(),
            Some("no Authorization")
        );
        let both = SessionRule::new(vec!["sid".into()], true);
        assert_eq!(
            both.credentials(&HeaderMap::new(), "h").err(),
            Some("no session cookie and no Authorization")
        );
        let digest = headers(&[("authorization", "Digest username=\"alice\", uri=\"/\"")]);
        assert!(only
            .credentials(&digest, "h")
            .err()
            .unwrap()
            .contains("Digest"));
        let twice = headers(&[
            ("authorization", "Basic YQ=="),
            ("authorization", "Basic Yg=="),
        ]);
        assert_eq!(
            only.credentials(&twice, "h").err(),
            Some("several Authorization headers")
        );
        let got = only.credentials(&basic, "h").unwrap();
        assert_eq!(got.authorization.unwrap(), "Basic YWxpY2U6cHc=");
        assert!(got.cookie.is_empty());
    }
}
