//! Header names that `http` does not define and that more than one module reads or writes.

use http::HeaderName;

pub const SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");
pub const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
pub const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const REFRESH: HeaderName = HeaderName::from_static("refresh");

/// What `Via` says of the sidecar, upstream and downstream.
pub const VIA: &str = "1.1 tccc-sidecar";
