//! Hop-by-hop header rules.
//!
//! A proxy must remove the `Connection` header, every header that `Connection` names, and the
//! fixed set of connection-specific fields before forwarding, in both directions. This runs
//! *before* the proxy adds headers of its own, so a client that lists `X-Forwarded-For` in
//! `Connection` cannot make the proxy drop the value it sets. Forwarding these fields from an
//! HTTP/1.1 upstream to an HTTP/2 client would make the client treat the message as malformed.

use http::header::{HeaderMap, HeaderName, CONNECTION, TRANSFER_ENCODING};

/// The fixed connection-specific fields, removed whatever `Connection` says. Constants, so
/// that no name is parsed per request. `HTTP2-Settings` belongs to an h2c upgrade of this one
/// connection, never to the next hop.
const HOP_BY_HOP: [HeaderName; 10] = [
    HeaderName::from_static("connection"),
    HeaderName::from_static("te"),
    HeaderName::from_static("trailer"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("proxy-authenticate"),
    HeaderName::from_static("proxy-authorization"),
    HeaderName::from_static("transfer-encoding"),
    HeaderName::from_static("upgrade"),
    HeaderName::from_static("http2-settings"),
];

/// Whether every `Transfer-Encoding` coding is `chunked` (or there is none): the only coding
/// that is undone in transit, so the only one the sidecar can pass on, in either direction,
/// without changing what the body means.
pub fn only_chunked(headers: &HeaderMap) -> bool {
    headers.get_all(TRANSFER_ENCODING).iter().all(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .map(str::trim)
                .all(|c| c.is_empty() || c.eq_ignore_ascii_case("chunked"))
        })
    })
}

/// The tokens of every `Connection` field, trimmed, empty ones skipped.
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The position of `name` in [`HOP_BY_HOP`].
fn hop_index(name: &str) -> Option<usize> {
    Some(match name {
        "connection" => 0,
        "te" => 1,
        "trailer" => 2,
        "keep-alive" => 3,
        "proxy-connection" => 4,
        "proxy-authenticate" => 5,
        "proxy-authorization" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        "http2-settings" => 9,
        _ => return None,
    })
}

/// Removes `Connection`, the headers it names, then the fixed hop-by-hop set.
pub fn strip(headers: &mut HeaderMap) {
    let present = present_in(headers, hop_index);
    if present == 0 {
        return;
    }
    let named: Vec<HeaderName> = if present & 1 != 0 {
        // `keep-alive` and `close`, what nearly every message lists, name nothing that is not
        // removed anyway: they are skipped before parsing, and the list stays unallocated.
        connection_tokens(headers)
            .filter(|t| !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|n| hop_index(n.as_str()).is_none())
            .collect()
    } else {
        Vec::new()
    };
    remove_present(headers, &HOP_BY_HOP, present);
    for name in named {
        headers.remove(name);
    }
}

/// Which of a set of names are present, as bits: bit `i` when `index` maps a name present to
/// `i`. One pass over the few names a message has, each matched by a `match` on its text,
/// costs less than a hash lookup per name of the set.
pub fn present_in(headers: &HeaderMap, index: fn(&str) -> Option<usize>) -> u32 {
    headers
        .keys()
        .filter_map(|k| index(k.as_str()))
        .fold(0, |bits, i| bits | (1 << i))
}

/// Removes `names[i]` for every bit `i` of `present` (from [`present_in`]).
pub fn remove_present(headers: &mut HeaderMap, names: &[HeaderName], present: u32) {
    let mut bits = present;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        if let Some(name) = names.get(i) {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers as map;
    use http::HeaderValue;

    #[test]
    fn the_index_of_each_fixed_name_is_its_position() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_index(name.as_str()), Some(i), "{name}");
        }
        assert_eq!(hop_index("content-type"), None);
    }

    #[test]
    fn connection_may_name_fixed_fields_and_keep_alive_in_any_case() {
        let mut h = map(&[
            ("connection", "Keep-Alive, TE, Upgrade, x-gone"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-gone", "1"),
            ("x-kept", "2"),
        ]);
        strip(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "2");
    }

    #[test]
    fn removes_fixed_set_regardless_of_connection() {
        let mut h = map(&[
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-authenticate", "Basic"),
            ("content-type", "text/html"),
        ]);
        strip(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn removes_headers_named_in_connection_case_and_whitespace_insensitively() {
        let mut h = map(&[
            ("connection", " X-Foo ,x-bar,, close"),
            ("connection", "X-Baz"),
            ("x-foo", "1"),
            ("x-bar", "2"),
            ("x-baz", "3"),
            ("x-keep", "4"),
        ]);
        strip(&mut h);
        assert!(!h.contains_key("connection"));
        assert!(!h.contains_key("x-foo"));
        assert!(!h.contains_key("x-bar"));
        assert!(!h.contains_key("x-baz"));
        assert_eq!(h.get("x-keep").unwrap(), "4");
    }

    #[test]
    fn ignores_invalid_tokens_and_non_utf8_connection_values() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_bytes(b"\xff\xfe, x-a").unwrap(),
        );
        h.append(CONNECTION, HeaderValue::from_static("bad name, x-b"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-b", HeaderValue::from_static("2"));
        strip(&mut h);
        // The non-UTF-8 line is ignored as a whole; the valid token of the other line still counts.
        assert!(h.contains_key("x-a"));
        assert!(!h.contains_key("x-b"));
        assert!(!h.contains_key("connection"));
    }

    #[test]
    fn an_h2c_upgrades_settings_never_go_further() {
        let mut h = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
            ("x-kept", "1"),
        ]);
        strip(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        let mut h = map(&[("http2-settings", "AAMAAABk")]);
        strip(&mut h);
        assert!(
            h.is_empty(),
            "HTTP2-Settings is removed even when Connection omits it"
        );
    }
}
