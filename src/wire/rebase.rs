//! URLs that name the application's own address, moved onto the public origin.
//!
//! An app writes the address it believes it has: the upstream's (`http://127.0.0.1:8080`),
//! another it was configured with (`upstream.internal_origins`), or the public host over
//! plain HTTP when it builds URLs from the `Host` it was given. A browser on the HTTPS side
//! cannot use any of them. One rule serves redirects (the response filter) and URLs in page
//! attributes (injection): an absolute URL that begins with one of those origins, followed
//! by its end, a path, a query or a fragment, gets the public origin instead; anything else,
//! including look-alikes (`http://127.0.0.1:80801`, `http://host.evil`), is left alone.

use std::sync::Arc;

/// The origins to move and where to.
#[derive(Debug, Clone)]
pub struct Rebase {
    /// `UpstreamConfig::own_origins`: each with and without its default port.
    own_origins: Arc<Vec<String>>,
    /// `https://public.example.com`.
    public_origin: String,
    /// `http://<the host the client asked for>`, when the public origin is HTTPS.
    plain_public: Option<String>,
}

impl Rebase {
    pub fn new(own_origins: Arc<Vec<String>>, public_origin: String, client_host: &str) -> Rebase {
        let plain_public = public_origin
            .starts_with("https://")
            .then(|| format!("http://{client_host}"));
        Rebase {
            own_origins,
            public_origin,
            plain_public,
        }
    }

    /// The URL on the public origin, or `None` when `url` names none of the origins.
    pub fn url(&self, url: &str) -> Option<String> {
        // Cheap refusal first: most URLs in a page are relative.
        if !url.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("http")) {
            return None;
        }
        let own = self.own_origins.iter().map(String::as_str);
        for origin in own.chain(self.plain_public.as_deref()) {
            if let Some(rest) = strip_origin(url, origin) {
                return Some(format!("{}{}", self.public_origin, rest));
            }
        }
        None
    }
}

/// `url` without `origin` when it starts with it (scheme and host case-insensitively) followed
/// by the end, a path, a query or a fragment.
fn strip_origin<'u>(url: &'u str, origin: &str) -> Option<&'u str> {
    if url.len() < origin.len() || !url.is_char_boundary(origin.len()) {
        return None;
    }
    let (head, rest) = url.split_at(origin.len());
    if !head.eq_ignore_ascii_case(origin) {
        return None;
    }
    match rest.as_bytes().first() {
        None | Some(b'/') | Some(b'?') | Some(b'#') => Some(rest),
        _ => None,
    }
}
