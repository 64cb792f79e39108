//! `X-Forwarded-*`, `Forwarded` and the client-address headers apps believe.
//!
//! A chain that arrives with a request is believed only when the peer is one of
//! `server.trusted_proxies`; otherwise it is discarded and a new chain starts at the peer.
//! Headers that legacy apps read as the client's address or as a routing instruction
//! (`X-Real-IP`, `True-Client-IP`, `X-Original-URL`, ...) are dropped from untrusted peers, and
//! `X-Real-IP` is always set to the address the proxy itself believes.

use crate::config::{types::any_contains, Cidr};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;
use std::sync::Mutex;

// Constants, so that no header name is parsed per request.
const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Client-address and routing headers that only a trusted hop may set.
const UNTRUSTED_DROP: [HeaderName; 13] = [
    XFF,
    XFP,
    XFH,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-forwarded-ssl"),
    FORWARDED,
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-request-id"),
];

/// The position of `name` in [`UNTRUSTED_DROP`].
fn untrusted_index(name: &str) -> Option<usize> {
    Some(match name {
        "x-forwarded-for" => 0,
        "x-forwarded-proto" => 1,
        "x-forwarded-host" => 2,
        "x-forwarded-port" => 3,
        "x-forwarded-prefix" => 4,
        "x-forwarded-server" => 5,
        "x-forwarded-ssl" => 6,
        "forwarded" => 7,
        "true-client-ip" => 8,
        "x-client-ip" => 9,
        "x-original-url" => 10,
        "x-rewrite-url" => 11,
        "x-request-id" => 12,
        _ => return None,
    })
}

/// The result of applying the forwarding rules: the address the proxy believes is the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    pub client_ip: IpAddr,
    pub peer_trusted: bool,
}

/// What the forwarding headers of one client connection's requests have in common, made once
/// per connection: the peer's address as header text and the `Forwarded` element of the last
/// host asked for. A keep-alive connection's requests then add these headers without
/// formatting or allocating anything (header values share their bytes when cloned).
#[derive(Debug)]
pub struct PeerHeaders {
    peer: IpAddr,
    text: HeaderValue,
    /// (host, `for=...;proto=https;host=...`) of the last request whose host it was.
    element: Mutex<Option<(HeaderValue, HeaderValue)>>,
}

impl PeerHeaders {
    pub fn new(peer: IpAddr) -> PeerHeaders {
        let peer = crate::config::types::canonical_ip(peer);
        let mut text = String::with_capacity(16);
        push_ip(&mut text, peer);
        PeerHeaders {
            peer,
            text: value(text),
            element: Mutex::new(None),
        }
    }

    /// The `Forwarded` element this peer adds for `host`.
    fn element(&self, host: &HeaderValue) -> HeaderValue {
        let mut last = self.element.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((h, e)) = last.as_ref() {
            if h == host {
                return e.clone();
            }
        }
        let mut element = String::with_capacity(64);
        element.push_str("for=");
        match self.peer {
            IpAddr::V4(_) => element.push_str(self.text.to_str().unwrap_or_default()),
            IpAddr::V6(_) => {
                element.push_str("\"[");
                element.push_str(self.text.to_str().unwrap_or_default());
                element.push_str("]\"");
            }
        }
        element.push_str(";proto=https;host=");
        push_quoted_if_needed(&mut element, host.to_str().unwrap_or_default());
        let e = value(element);
        *last = Some((host.clone(), e.clone()));
        e
    }
}

/// A header value from text the proxy formatted itself (addresses, tokens, a validated host).
fn value(text: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Rewrites the forwarding headers of a request that arrived from `peer`, for `host` (the
/// value of the `Host` header the request goes upstream with).
pub fn apply(
    headers: &mut HeaderMap,
    peer: &PeerHeaders,
    trusted: &[Cidr],
    host: &HeaderValue,
) -> Forwarding {
    let peer_trusted = any_contains(trusted, peer.peer);
    // The X-Real-IP the client sent is never believed as such (it is replaced below); a
    // trusted hop's chain is used instead. An untrusted peer's chain is gone after this, so
    // its headers are set without looking for earlier values.
    let (client_ip, prior_xff, prior_forwarded) = if peer_trusted {
        let chain = joined(headers, &XFF);
        let client = client_in_chain(chain.as_deref(), peer.peer, trusted);
        (client, chain, joined(headers, &FORWARDED))
    } else {
        let present = super::hop::present_in(headers, untrusted_index);
        super::hop::remove_present(headers, &UNTRUSTED_DROP, present);
        (peer.peer, None, None)
    };

    match prior_xff {
        Some(prior) => {
            let peer_text = peer.text.to_str().unwrap_or_default();
            set(headers, XFF, &format!("{prior}, {peer_text}"));
        }
        None => {
            headers.insert(XFF, peer.text.clone());
        }
    }
    if !peer_trusted || !headers.contains_key(&XFP) {
        headers.insert(XFP, HeaderValue::from_static("https"));
    }
    if !peer_trusted || !headers.contains_key(&XFH) {
        headers.insert(XFH, host.clone());
    }
    let element = peer.element(host);
    match prior_forwarded {
        Some(prior) => {
            let element = element.to_str().unwrap_or_default();
            set(headers, FORWARDED, &format!("{prior}, {element}"));
        }
        None => {
            headers.insert(FORWARDED, element);
        }
    }
    if client_ip == peer.peer {
        headers.insert(X_REAL_IP, peer.text.clone());
    } else {
        let mut text = String::with_capacity(16);
        push_ip(&mut text, client_ip);
        headers.insert(X_REAL_IP, value(text));
    }
    Forwarding {
        client_ip,
        peer_trusted,
    }
}

/// Writes an address as `Display` does, without the formatting machinery for IPv4 (one per
/// request in the forwarding headers and the access log).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                let mut buf = itoa::Buffer::new();
                out.push_str(buf.format(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Walks `X-Forwarded-For` from the right, skipping trusted hops: the first untrusted address
/// is the client. A malformed entry stops the walk there (it cannot be believed either).
pub fn believed_client(headers: &HeaderMap, peer: IpAddr, trusted: &[Cidr]) -> IpAddr {
    client_in_chain(joined(headers, &XFF).as_deref(), peer, trusted)
}

/// [`believed_client`] for a chain already read from the headers.
fn client_in_chain(chain: Option<&str>, peer: IpAddr, trusted: &[Cidr]) -> IpAddr {
    let Some(chain) = chain else {
        return peer;
    };
    let mut candidate = peer;
    for entry in chain.rsplit(',') {
        let Some(ip) = parse_node(entry.trim()) else {
            return candidate;
        };
        candidate = ip;
        if !any_contains(trusted, ip) {
            return ip;
        }
    }
    candidate
}

fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    // `[v6]:port` or `v4:port`, as some balancers write it.
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
}

fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(", "))
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn push_quoted_if_needed(out: &mut String, v: &str) {
    if v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        out.push_str(v);
    } else {
        out.push('"');
        for c in v.chars() {
            if c == '\\' || c == '"' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers as hdrs;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn untrusted_peer_starts_a_new_chain_and_loses_spoofable_headers() {
        let mut h = hdrs(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("true-client-ip", "1.2.3.4"),
            ("x-client-ip", "1.2.3.4"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("x-forwarded-prefix", "/evil"),
            ("x-request-id", "chosen"),
        ]);
        let peer: IpAddr = "127.0.0.2".parse().unwrap();
        let f = apply(
            &mut h,
            &PeerHeaders::new(peer),
            &cidrs(&["127.0.0.1/32"]),
            &hv("oa.example.com"),
        );
        assert!(!f.peer_trusted);
        assert_eq!(f.client_ip, peer);
        assert_eq!(h["x-forwarded-for"], "127.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "oa.example.com");
        assert_eq!(
            h["forwarded"],
            "for=127.0.0.2;proto=https;host=oa.example.com"
        );
        assert_eq!(h["x-real-ip"], "127.0.0.2");
        for gone in [
            "true-client-ip",
            "x-client-ip",
            "x-original-url",
            "x-rewrite-url",
            "x-forwarded-prefix",
            "x-request-id",
        ] {
            assert!(!h.contains_key(gone), "{gone} survived");
        }
    }

    #[test]
    fn trusted_peer_extends_the_chain_and_names_the_rightmost_untrusted_client() {
        let mut h = hdrs(&[
            ("x-forwarded-for", "9.9.9.9, 203.0.113.7"),
            ("x-forwarded-for", "10.0.0.5"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=203.0.113.7"),
        ]);
        let f = apply(
            &mut h,
            &PeerHeaders::new("10.0.0.9".parse().unwrap()),
            &cidrs(&["10.0.0.0/8"]),
            &hv("oa.example.com:8443"),
        );
        assert!(f.peer_trusted);
        assert_eq!(f.client_ip, "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(
            h["x-forwarded-for"],
            "9.9.9.9, 203.0.113.7, 10.0.0.5, 10.0.0.9"
        );
        assert_eq!(h["x-real-ip"], "203.0.113.7");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.7, for=10.0.0.9;proto=https;host=\"oa.example.com:8443\""
        );
    }

    #[test]
    fn trusted_chain_walk_stops_at_garbage() {
        let mut h = hdrs(&[("x-forwarded-for", "1.1.1.1, not-an-ip, 10.0.0.5")]);
        let f = apply(
            &mut h,
            &PeerHeaders::new("10.0.0.9".parse().unwrap()),
            &cidrs(&["10.0.0.0/8"]),
            &hv("h"),
        );
        // 10.0.0.5 is trusted, the next entry is garbage: the last believable hop is the client.
        assert_eq!(f.client_ip, "10.0.0.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv4_mapped_peer_matches_ipv4_cidr_and_ipv6_is_quoted() {
        let mut h = HeaderMap::new();
        let f = apply(
            &mut h,
            &PeerHeaders::new("::ffff:127.0.0.1".parse().unwrap()),
            &cidrs(&["127.0.0.1"]),
            &hv("h"),
        );
        assert!(f.peer_trusted);
        let mut h = HeaderMap::new();
        apply(
            &mut h,
            &PeerHeaders::new("::1".parse().unwrap()),
            &[],
            &hv("h"),
        );
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https;host=h");
    }

    #[test]
    fn the_index_of_each_untrusted_name_is_its_position() {
        for (i, name) in UNTRUSTED_DROP.iter().enumerate() {
            assert_eq!(untrusted_index(name.as_str()), Some(i), "{name}");
        }
        assert_eq!(untrusted_index("x-real-ip"), None);
    }

    #[test]
    fn each_request_of_a_connection_names_its_own_host() {
        // The element is remembered per connection: a second host must not get the first's.
        let peer = PeerHeaders::new("127.0.0.2".parse().unwrap());
        for (host, expected) in [
            ("a.example", "for=127.0.0.2;proto=https;host=a.example"),
            (
                "b.example:8443",
                "for=127.0.0.2;proto=https;host=\"b.example:8443\"",
            ),
            ("a.example", "for=127.0.0.2;proto=https;host=a.example"),
        ] {
            let mut h = hdrs(&[("forwarded", "for=6.6.6.6")]);
            apply(&mut h, &peer, &[], &hv(host));
            assert_eq!(h["forwarded"], expected);
            assert_eq!(h["x-forwarded-host"], host);
            assert_eq!(h["x-forwarded-for"], "127.0.0.2");
            assert_eq!(h["x-real-ip"], "127.0.0.2");
        }
    }

    #[test]
    fn a_quoted_host_escapes_quotes_and_backslashes() {
        let mut out = String::new();
        push_quoted_if_needed(&mut out, "a\"b\\c:1");
        assert_eq!(out, "\"a\\\"b\\\\c:1\"");
    }
}
