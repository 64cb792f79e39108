//! Headers that name a user, removed from every request of a peer the identity settings do
//! not trust, whatever the identity mode.
//!
//! Many applications behind an SSO gateway believe such a header when it is present. The
//! sidecar may not itself read users from headers (introspect, jwt and static modes), but an
//! application behind it may still do so, so a client's `X-Remote-User: mallory` must never
//! reach it. Each name is matched in every spelling a backend could read as the same one:
//! any case, and `_` for `-` (CGI turns both into `HTTP_X_REMOTE_USER`).

use http::header::{HeaderMap, HeaderName};

/// The names stripped by default (documented in the README and SECURITY.md): those set by
/// common SSO gateways and web-server modules, oauth2-proxy's among them.
pub const DEFAULT: [&str; 16] = [
    "x-remote-user",
    "x-remote-email",
    "x-remote-groups",
    "remote-user",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-authenticated-user",
    "x-webauth-user",
    "x-ms-client-principal-name",
    "x-ms-client-principal-id",
];

/// The set of names to strip, normalised (lowercase, `-`).
#[derive(Debug, Clone)]
pub struct Spoofable {
    names: Vec<String>,
    /// Bit `n` set when some name is `n` bytes long (names of 64 bytes or more share bit 63):
    /// most request headers are ruled out by length alone.
    lengths: u64,
}

fn normalise(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b == b'_' {
                '-'
            } else {
                b.to_ascii_lowercase() as char
            }
        })
        .collect()
}

fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

impl Spoofable {
    /// The default names plus `extra` (the configured identity header, further names).
    pub fn new<'a>(extra: impl IntoIterator<Item = &'a str>) -> Spoofable {
        let mut names: Vec<String> = DEFAULT.iter().map(|n| n.to_string()).collect();
        for e in extra {
            let n = normalise(e);
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
        let lengths = names.iter().fold(0, |bits, n| bits | length_bit(n.len()));
        Spoofable { names, lengths }
    }

    fn matches(&self, name: &str) -> bool {
        self.lengths & length_bit(name.len()) != 0
            && self.names.iter().any(|n| {
                n.len() == name.len()
                    && n.bytes().zip(name.bytes()).all(|(a, b)| {
                        let b = if b == b'_' { b'-' } else { b };
                        a == b
                    })
            })
    }

    /// Removes every spelling of every name from `headers` (names in a `HeaderMap` are
    /// already lowercase).
    pub fn strip(&self, headers: &mut HeaderMap) {
        let found: Vec<HeaderName> = headers
            .keys()
            .filter(|k| self.matches(k.as_str()))
            .cloned()
            .collect();
        for k in found {
            headers.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_every_name_goes_and_nothing_else() {
        let s = Spoofable::new(["X-Portal-User"]);
        let mut h = HeaderMap::new();
        for n in [
            "x-remote-user",
            "x_remote_user",
            "x-remote_user",
            "remote_user",
            "x-forwarded-user",
            "x-auth-request-email",
            "x-portal-user",
            "x_portal_user",
            "x-ms-client-principal-name",
        ] {
            h.insert(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                "m".parse().unwrap(),
            );
        }
        for keep in [
            "cookie",
            "user-agent",
            "x-remote-users",
            "x-request-id",
            "authorization",
        ] {
            h.insert(
                HeaderName::from_bytes(keep.as_bytes()).unwrap(),
                "k".parse().unwrap(),
            );
        }
        s.strip(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(
            left,
            [
                "authorization",
                "cookie",
                "user-agent",
                "x-remote-users",
                "x-request-id"
            ]
        );
    }
}
