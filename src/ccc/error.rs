//! What can go wrong when asking CCC for a login token, and whether trying again can help.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CccError {
    /// The service answered with an error envelope.
    #[error("CCC answered {code}: {message} (RequestId {request_id})")]
    Api {
        code: String,
        message: String,
        request_id: String,
    },
    /// No connection could be made (nothing was sent).
    #[error("cannot connect to CCC: {0}")]
    Connect(String),
    /// The service did not answer within the per-call timeout.
    #[error("CCC did not answer in time")]
    Timeout,
    /// An answer that is not a CCC answer: a non-200 status, not JSON, too large, fields missing.
    #[error("invalid answer from CCC: {0}")]
    Invalid(String),
    /// The answer's SdkURL failed the policy check; the URL itself is never kept.
    #[error("{reason} (RequestId {request_id})")]
    SdkUrlRejected {
        reason: &'static str,
        request_id: String,
    },
    /// No credentials are configured or loadable.
    #[error("no Tencent Cloud credentials are available")]
    NoCredentials,
}

impl CccError {
    /// The CCC error code, or a code of our own for failures the service never saw.
    pub fn code(&self) -> &str {
        match self {
            CccError::Api { code, .. } => code,
            CccError::Connect(_) => "ConnectionFailed",
            CccError::Timeout => "Timeout",
            CccError::Invalid(_) => "InvalidResponse",
            CccError::SdkUrlRejected { .. } => "SdkURLRejected",
            CccError::NoCredentials => "NoCredentials",
        }
    }

    pub fn request_id(&self) -> &str {
        match self {
            CccError::Api { request_id, .. } | CccError::SdkUrlRejected { request_id, .. } => {
                request_id
            }
            _ => "",
        }
    }

    /// Whether a later attempt may succeed: rate limits, the service's internal errors, and
    /// failures to reach it. Authentication, unknown instance or seat, refusals are final.
    pub fn retryable(&self) -> bool {
        match self {
            CccError::Api { code, .. } => {
                is_rate_limited(code) || code.starts_with("InternalError")
            }
            CccError::Connect(_) | CccError::Timeout => true,
            CccError::Invalid(_) | CccError::SdkUrlRejected { .. } | CccError::NoCredentials => {
                false
            }
        }
    }

    pub fn is_rate_limited(&self) -> bool {
        matches!(self, CccError::Api { code, .. } if is_rate_limited(code))
    }
}

fn is_rate_limited(code: &str) -> bool {
    code == "RequestLimitExceeded" || code.starts_with("RequestLimitExceeded.")
}
