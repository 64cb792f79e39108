//! `X-Forwarded-*`, `Forwarded` (RFC 7239) and the client-address headers apps believe.
//!
//! A chain that arrives with a request is believed only when the peer is one of
//! `server.trusted_proxies`; otherwise it is discarded and a new chain starts at the peer.
//! Headers that legacy apps read as the client's address or as a routing instruction
//! (`X-Real-IP`, `True-Client-IP`, `X-Original-URL`, ...) are dropped from untrusted peers, and
//! `X-Real-IP` is always set to the address the proxy itself believes.

use crate::config::{types::any_contains, Cidr};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

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

/// The result of applying the forwarding rules: the address the proxy believes is the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    pub client_ip: IpAddr,
    pub peer_trusted: bool,
}

/// Rewrites the forwarding headers of a request that arrived from `peer`, for `host`.
pub fn apply(headers: &mut HeaderMap, peer: IpAddr, trusted: &[Cidr], host: &str) -> Forwarding {
    let peer = crate::config::types::canonical_ip(peer);
    let peer_trusted = any_contains(trusted, peer);
    // The X-Real-IP the client sent is never believed as such (it is replaced below); a
    // trusted hop's chain is used instead.
    let client_ip = if peer_trusted {
        believed_client(headers, peer, trusted)
    } else {
        super::hop::remove_present(headers, &UNTRUSTED_DROP);
        peer
    };

    let mut peer_text = String::with_capacity(16);
    push_ip(&mut peer_text, peer);
    match joined(headers, &XFF) {
        Some(prior) => set(headers, XFF, &format!("{prior}, {peer_text}")),
        None => set(headers, XFF, &peer_text),
    }
    if !headers.contains_key(&XFP) {
        headers.insert(XFP, HeaderValue::from_static("https"));
    }
    if !headers.contains_key(&XFH) {
        set(headers, XFH, host);
    }
    let mut element = String::with_capacity(64);
    element.push_str("for=");
    match peer {
        IpAddr::V4(_) => element.push_str(&peer_text),
        IpAddr::V6(_) => {
            element.push_str("\"[");
            element.push_str(&peer_text);
            element.push_str("]\"");
        }
    }
    element.push_str(";proto=https;host=");
    push_quoted_if_needed(&mut element, host);
    let fwd = match joined(headers, &FORWARDED) {
        Some(prior) => format!("{prior}, {element}"),
        None => element,
    };
    set(headers, FORWARDED, &fwd);
    if client_ip != peer {
        peer_text.clear();
        push_ip(&mut peer_text, client_ip);
    }
    set(headers, X_REAL_IP, &peer_text);
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
    let Some(chain) = joined(headers, &XFF) else {
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
        out.push_str(&v.replace('\\', "\\\\").replace('"', "\\\""));
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn hdrs(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
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
        let f = apply(&mut h, peer, &cidrs(&["127.0.0.1/32"]), "oa.example.com");
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
            "10.0.0.9".parse().unwrap(),
            &cidrs(&["10.0.0.0/8"]),
            "oa.example.com:8443",
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
            "10.0.0.9".parse().unwrap(),
            &cidrs(&["10.0.0.0/8"]),
            "h",
        );
        // 10.0.0.5 is trusted, the next entry is garbage: the last believable hop is the client.
        assert_eq!(f.client_ip, "10.0.0.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv4_mapped_peer_matches_ipv4_cidr_and_ipv6_is_quoted() {
        let mut h = HeaderMap::new();
        let f = apply(
            &mut h,
            "::ffff:127.0.0.1".parse().unwrap(),
            &cidrs(&["127.0.0.1"]),
            "h",
        );
        assert!(f.peer_trusted);
        let mut h = HeaderMap::new();
        apply(&mut h, "::1".parse().unwrap(), &[], "h");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https;host=h");
    }
}
