//! The syntax of the origins and URLs that configuration names: checked at load, and used
//! again by the modules that act on them (CSP sources, diagnostics probes, the CCC endpoint).

use std::net::IpAddr;

/// Parses an origin (`scheme://host[:port]`, no path), returning it normalised without a trailing slash.
pub fn parse_origin(s: &str) -> Option<String> {
    let uri: http::Uri = s.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || !matches!(uri.path(), "" | "/") || uri.query().is_some()
    {
        return None;
    }
    Some(format!(
        "{scheme}://{}",
        authority.as_str().to_ascii_lowercase()
    ))
}

/// A diagnostics probe target: `https://host[:port]` or `wss://host[:port]`, no wildcard and
/// no path, normalised to lower case.
pub fn probe_origin(s: &str) -> Option<String> {
    let uri: http::Uri = s.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if scheme != "https" && scheme != "wss" {
        return None;
    }
    let auth = uri.authority()?;
    let path_ok = matches!(
        uri.path_and_query().map(|p| p.as_str()),
        None | Some("/") | Some("")
    );
    if !path_ok || auth.as_str().contains(['@', '*']) || auth.host().is_empty() {
        return None;
    }
    Some(format!("{scheme}://{}", auth.as_str().to_ascii_lowercase()))
}

/// Whether a configured script source is acceptable: an exact `https://host[:port]` origin
/// (a script source is code that runs in the CRM's pages, so no wildcard).
pub fn valid_script_origin(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("https://") else {
        return false;
    };
    !rest.is_empty()
        && !rest.contains(['*', '/', '\'', ' ', ';', ','])
        && rest.parse::<http::uri::Authority>().is_ok()
}

/// Whether a configured connect or media source is acceptable: a scheme-qualified host
/// (wildcards allowed), never `*`, a bare scheme or a keyword.
pub fn valid_other_origin(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("wss://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && r != "*"
            && !r.contains(['/', '\'', ' ', ';', ','])
            && !r.chars().skip(1).any(|c| c == '*')
    })
}

/// Whether `url` is Tencent Cloud's API: https on `tencentcloudapi.com` or a subdomain of it
/// (regional endpoints). Anything else is an emulator or a stand-in.
pub fn is_tencent_endpoint(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    uri.scheme_str() == Some("https")
        && (host == "tencentcloudapi.com" || host.ends_with(".tencentcloudapi.com"))
}

/// `http://` URLs are allowed where plain HTTP cannot leave the machine: a loopback host.
pub fn is_loopback_http(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    if uri.scheme_str() != Some("http") {
        return false;
    }
    match uri.host() {
        Some("localhost") => true,
        Some(h) => h
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false),
        None => false,
    }
}
