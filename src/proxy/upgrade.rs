//! Protocol switches (`Upgrade`): which requests may become a tunnel, and which upstream
//! answers prove that the upstream really switched.
//!
//! A tunnel carries bytes the proxy no longer reads, so it is opened only when both sides
//! agree on a protocol the operator listed (`server.allowed_upgrades`, WebSocket by default).
//! `h2c` never qualifies: inside its tunnel the client would speak HTTP/2 straight to the
//! upstream, with any path, authority and identity header. A refused upgrade goes on as a
//! plain request, its `Upgrade` removed with the other hop-by-hop fields.

use crate::wire::hop::connection_tokens;
use base64::Engine;
use http::header::{HeaderMap, HeaderValue, UPGRADE};
use sha2::Digest;

const SEC_WEBSOCKET_KEY: &str = "sec-websocket-key";
const SEC_WEBSOCKET_ACCEPT: &str = "sec-websocket-accept";
/// The fixed GUID of the WebSocket handshake.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A switch the client asked for and may have.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The one protocol named, as the client spelled it.
    pub protocol: HeaderValue,
    /// For WebSocket, the `Sec-WebSocket-Accept` the upstream must answer with.
    accept: Option<String>,
}

impl Upgrade {
    /// The switch `headers` ask for, if it is allowed: `Connection` lists `upgrade`, one
    /// `Upgrade` field names exactly one protocol, that protocol is in `allowed` and is not
    /// `h2c`, and a WebSocket handshake carries a well-formed key. HTTP/1.1 only; the caller
    /// checks the version.
    pub fn requested(headers: &HeaderMap, allowed: &[String]) -> Option<Upgrade> {
        if !connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade")) {
            return None;
        }
        let mut values = headers.get_all(UPGRADE).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return None;
        };
        let proto = value.to_str().ok()?.trim();
        let permitted = !proto.is_empty()
            && !proto.contains(',')
            && !proto.eq_ignore_ascii_case("h2c")
            && allowed.iter().any(|a| a.eq_ignore_ascii_case(proto));
        if !permitted {
            return None;
        }
        let accept = if proto.eq_ignore_ascii_case("websocket") {
            Some(websocket_accept(headers)?)
        } else {
            None
        };
        Some(Upgrade {
            protocol: HeaderValue::from_str(proto).ok()?,
            accept,
        })
    }

    /// Whether a 101 answer switched to this protocol: the same `Upgrade` token and, for
    /// WebSocket, the accept value derived from the client's key. Anything else must not open
    /// a tunnel (an upstream that did not switch would be sent raw client bytes).
    pub fn granted_by(&self, answer: &HeaderMap) -> bool {
        let mut granted = answer.get_all(UPGRADE).iter();
        let same_protocol = match (granted.next(), granted.next()) {
            (Some(g), None) => g
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(self.protocol.as_bytes()),
            _ => false,
        };
        let accepted = match &self.accept {
            None => true,
            Some(want) => {
                let mut got = answer.get_all(SEC_WEBSOCKET_ACCEPT).iter();
                matches!((got.next(), got.next()), (Some(g), None) if g.as_bytes().trim_ascii() == want.as_bytes())
            }
        };
        same_protocol && accepted
    }
}

/// The accept value for the request's `Sec-WebSocket-Key`: one field, 16 bytes in base64.
fn websocket_accept(headers: &HeaderMap) -> Option<String> {
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return None;
    };
    let key = key.as_bytes().trim_ascii();
    let decoded = base64::engine::general_purpose::STANDARD.decode(key).ok()?;
    if decoded.len() != 16 {
        return None;
    }
    let mut sha = sha1::Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID);
    Some(base64::engine::general_purpose::STANDARD.encode(sha.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers as map;

    const KEY: (&str, &str) = ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");

    #[test]
    fn detects_upgrade_only_when_connection_lists_it() {
        let ws = ["websocket".to_string()];
        let h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            KEY,
        ]);
        assert_eq!(Upgrade::requested(&h, &ws).unwrap().protocol, "websocket");
        let h = map(&[("upgrade", "websocket"), KEY]);
        assert!(Upgrade::requested(&h, &ws).is_none());
        let h = map(&[("connection", "upgrade"), KEY]);
        assert!(Upgrade::requested(&h, &ws).is_none());
    }

    #[test]
    fn upgrades_are_allowed_only_by_name_and_h2c_never() {
        let allowed = [
            "websocket".to_string(),
            "H2C".to_string(),
            "chat".to_string(),
        ];
        let ask = |proto: &str| {
            let h = map(&[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", proto),
                KEY,
            ]);
            Upgrade::requested(&h, &allowed).map(|u| u.protocol)
        };
        assert_eq!(ask("WebSocket").unwrap(), "WebSocket");
        assert_eq!(ask("chat").unwrap(), "chat");
        assert!(ask("h2c").is_none(), "h2c even when listed");
        assert!(ask("H2C").is_none());
        assert!(ask("irc").is_none(), "not listed");
        assert!(ask("h2c, websocket").is_none(), "one protocol only");
        assert!(ask("websocket, h2c").is_none());
        let h = map(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("upgrade", "h2c"),
            KEY,
        ]);
        assert!(
            Upgrade::requested(&h, &allowed).is_none(),
            "one Upgrade field only"
        );
    }

    #[test]
    fn a_websocket_handshake_needs_a_well_formed_key() {
        let ws = ["websocket".to_string()];
        for key in [None, Some("short"), Some("bm90IGJhc2U2NA"), Some("!!!")] {
            let mut h = map(&[("connection", "upgrade"), ("upgrade", "websocket")]);
            if let Some(k) = key {
                h.insert("sec-websocket-key", HeaderValue::from_str(k).unwrap());
            }
            assert!(Upgrade::requested(&h, &ws).is_none(), "{key:?}");
        }
    }

    #[test]
    fn only_the_right_accept_and_protocol_grant_a_websocket_switch() {
        let ws = ["websocket".to_string()];
        let h = map(&[("connection", "upgrade"), ("upgrade", "websocket"), KEY]);
        let u = Upgrade::requested(&h, &ws).unwrap();
        // The protocol's own worked example of a key and its answer.
        let good = map(&[
            ("upgrade", "WebSocket"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert!(u.granted_by(&good));
        for bad in [
            map(&[("upgrade", "websocket")]),
            map(&[
                ("upgrade", "websocket"),
                ("sec-websocket-accept", "dGhpcyBpcyBub3QgdGhlIGFjY2VwdA=="),
            ]),
            map(&[
                ("upgrade", "h2c"),
                ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ]),
            map(&[
                ("upgrade", "websocket"),
                ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ]),
        ] {
            assert!(!u.granted_by(&bad), "{bad:?}");
        }
    }
}
