//! What the phases of one request share: facts about its connection ([`ConnInfo`], built by
//! the listener once per connection) and the per-request context ([`Ctx`]) that the request
//! side fills in and the response side reads.

use crate::inject::shell::Role;
use crate::inject::Prepared;
use crate::state::Snapshot;
use http::{HeaderMap, HeaderValue, Method};
use std::net::SocketAddr;

/// Facts about one client connection, shared by its requests.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The forwarding headers its requests share.
    pub forwarding: crate::wire::forwarded::PeerHeaders,
    /// Its address's requests in flight, when that address is limited.
    pub in_flight: Option<crate::runtime::per_address::InFlight>,
}

impl ConnInfo {
    pub fn new(
        peer: SocketAddr,
        in_flight: Option<crate::runtime::per_address::InFlight>,
    ) -> ConnInfo {
        ConnInfo {
            peer,
            forwarding: crate::wire::forwarded::PeerHeaders::new(peer.ip()),
            in_flight,
        }
    }
}

/// One forwarded request, as far as the phases after the request filter need it.
pub struct Ctx<'a> {
    /// The configuration this request was started with.
    pub snap: &'a Snapshot,
    /// The `Host` the request goes upstream with (its `to_str` succeeds).
    pub host_value: HeaderValue,
    pub method: Method,
    /// What shell mode makes of the request (`Script` in the other modes).
    pub role: Role,
    /// The injector's decision on the request side, completed on the response side.
    pub prepared: Prepared,
    /// A framed page's request headers, kept to ask who its user is once its answer turns out
    /// to be a page.
    pub identity_headers: Option<HeaderMap>,
}

impl Ctx<'_> {
    pub fn host(&self) -> &str {
        self.host_value.to_str().unwrap_or_default()
    }
}
