//! Reading named cookies out of a request's `Cookie` headers (`a=b; c=d`,
//! possibly split over several fields by HTTP/2).

use http::header::{HeaderMap, COOKIE};

/// The values of the cookie `name` (case-sensitive, as browsers send it), in order.
pub fn values<'h, 'n>(
    headers: &'h HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'h str> + use<'h, 'n> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// The one value of cookie `name`; `None` when absent, empty, or sent more than once with
/// different values (a cookie planted for a parent domain or path must not pick the identity).
pub fn single<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut found: Option<&'h str> = None;
    for v in values(headers, name).filter(|v| !v.is_empty()) {
        match found {
            None => found = Some(v),
            Some(f) if f != v => return None,
            Some(_) => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(values: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn finds_named_cookies_across_fields() {
        let m = h(&["a=1; sid=xyz", "b=2"]);
        assert_eq!(single(&m, "sid"), Some("xyz"));
        assert_eq!(single(&m, "b"), Some("2"));
        assert_eq!(single(&m, "SID"), None);
        assert_eq!(single(&m, "c"), None);
    }

    #[test]
    fn conflicting_duplicates_are_refused() {
        assert_eq!(single(&h(&["sid=a; sid=b"]), "sid"), None);
        assert_eq!(single(&h(&["sid=a", "sid=a"]), "sid"), Some("a"));
        assert_eq!(single(&h(&["sid="]), "sid"), None);
    }
}
