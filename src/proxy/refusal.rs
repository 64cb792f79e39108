//! Every way the proxy refuses a request, with its status, metrics label and message in one
//! table: a new refusal is one variant and one row, and a test pins each row.

use crate::wire::responses::Reject;
use http::StatusCode;

/// Why a request ends before (or instead of) the upstream's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    HeaderTooLarge,
    ConnectMethod,
    UnsupportedTransferCoding,
    AsteriskForm,
    AuthorityForm,
    HostMismatch,
    BadTarget,
    MissingHost,
    UnknownHost,
    UriTooLong,
    AmbiguousIdentity,
    RequestId,
    ClientRequestsInFlight,
    ClientBodyTimeout,
    BadRequestBody,
    UpstreamTimeout,
    UpstreamError,
    UpstreamBadFraming,
    UpstreamBadUpgrade,
}

impl Refusal {
    /// The answer: status, metrics label, message, and whether an HTTP/1.1 connection ends
    /// with it (what the client sends next on it could no longer be read as a request).
    pub const fn reject(self) -> Reject {
        use Refusal::*;
        use StatusCode as S;
        let (status, kind, message, close) = match self {
            HeaderTooLarge => (
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                "The request headers are too large.",
                false,
            ),
            ConnectMethod => (
                S::METHOD_NOT_ALLOWED,
                "connect_method",
                "This server does not tunnel CONNECT requests.",
                false,
            ),
            UnsupportedTransferCoding => (
                S::NOT_IMPLEMENTED,
                "unsupported_transfer_coding",
                "This transfer coding is not supported.",
                false,
            ),
            AsteriskForm => (
                S::BAD_REQUEST,
                "asterisk_form",
                "The request target is not valid.",
                false,
            ),
            AuthorityForm => (
                S::BAD_REQUEST,
                "authority_form",
                "The request target is not valid.",
                false,
            ),
            HostMismatch => (
                S::BAD_REQUEST,
                "host_mismatch",
                "The request target is not valid.",
                false,
            ),
            BadTarget => (
                S::BAD_REQUEST,
                "bad_target",
                "The request target is not valid.",
                false,
            ),
            MissingHost => (
                S::BAD_REQUEST,
                "missing_host",
                "The request has no valid Host.",
                false,
            ),
            UnknownHost => (
                S::MISDIRECTED_REQUEST,
                "unknown_host",
                "This server does not serve that host name.",
                false,
            ),
            UriTooLong => (
                S::URI_TOO_LONG,
                "uri_too_long",
                "The request target is too long.",
                false,
            ),
            AmbiguousIdentity => (
                S::BAD_REQUEST,
                "ambiguous_identity",
                "The request names more than one user.",
                false,
            ),
            RequestId => (
                S::INTERNAL_SERVER_ERROR,
                "request_id",
                "Internal error.",
                false,
            ),
            ClientRequestsInFlight => (
                S::SERVICE_UNAVAILABLE,
                "client_requests_in_flight",
                "Too many requests from this address are in progress. Please retry shortly.",
                false,
            ),
            ClientBodyTimeout => (
                S::REQUEST_TIMEOUT,
                "client_body_timeout",
                "The request body did not arrive in time.",
                true,
            ),
            BadRequestBody => (
                S::BAD_REQUEST,
                "bad_request_body",
                "The request body could not be read.",
                false,
            ),
            UpstreamTimeout => (
                S::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "The application behind this server did not answer in time.",
                false,
            ),
            UpstreamError => (
                S::BAD_GATEWAY,
                "upstream_error",
                "The application behind this server is not reachable.",
                false,
            ),
            UpstreamBadFraming => (
                S::BAD_GATEWAY,
                "upstream_bad_framing",
                "The application behind this server sent an answer that could not be read.",
                false,
            ),
            UpstreamBadUpgrade => (
                S::BAD_GATEWAY,
                "upstream_bad_upgrade",
                "The application behind this server answered with an invalid protocol switch.",
                true,
            ),
        };
        let r = Reject::new(status, kind, message);
        if close {
            r.closing()
        } else {
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Refusal::{self, *};
    use http::StatusCode;

    #[test]
    fn each_refusal_has_its_status_and_a_label_of_its_own() {
        let table: [(Refusal, u16, &str, bool); 19] = [
            (HeaderTooLarge, 431, "header_too_large", false),
            (ConnectMethod, 405, "connect_method", false),
            (
                UnsupportedTransferCoding,
                501,
                "unsupported_transfer_coding",
                false,
            ),
            (AsteriskForm, 400, "asterisk_form", false),
            (AuthorityForm, 400, "authority_form", false),
            (HostMismatch, 400, "host_mismatch", false),
            (BadTarget, 400, "bad_target", false),
            (MissingHost, 400, "missing_host", false),
            (UnknownHost, 421, "unknown_host", false),
            (UriTooLong, 414, "uri_too_long", false),
            (AmbiguousIdentity, 400, "ambiguous_identity", false),
            (RequestId, 500, "request_id", false),
            (
                ClientRequestsInFlight,
                503,
                "client_requests_in_flight",
                false,
            ),
            (ClientBodyTimeout, 408, "client_body_timeout", true),
            (BadRequestBody, 400, "bad_request_body", false),
            (UpstreamTimeout, 504, "upstream_timeout", false),
            (UpstreamError, 502, "upstream_error", false),
            (UpstreamBadFraming, 502, "upstream_bad_framing", false),
            (UpstreamBadUpgrade, 502, "upstream_bad_upgrade", true),
        ];
        let mut labels = std::collections::HashSet::new();
        for (refusal, status, kind, close) in table {
            let r = refusal.reject();
            assert_eq!(
                r.status,
                StatusCode::from_u16(status).unwrap(),
                "{refusal:?}"
            );
            assert_eq!((r.kind, r.close), (kind, close), "{refusal:?}");
            assert!(r.message.ends_with('.'), "{refusal:?}: a sentence");
            assert!(labels.insert(r.kind), "{refusal:?}: label used twice");
        }
    }
}
