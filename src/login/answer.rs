//! The JSON answers of the login endpoint, exactly as the contract's table lists them. Every
//! answer is `no-store`: an SdkURL is single-use and personal, and an error must not be
//! replayed from a cache either.

use crate::wire::responses::full;
use crate::wire::Body;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::{json, Value};

/// One answer: status, body, and the metrics/audit outcome label.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<u64>,
    pub outcome: &'static str,
    /// The CCC RequestId, for the audit line.
    pub request_id: String,
}

impl Answer {
    pub fn error(status: StatusCode, error: &'static str, message: &str) -> Answer {
        Answer {
            status,
            body: json!({ "error": error, "message": message }),
            retry_after: None,
            outcome: error,
            request_id: String::new(),
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Answer {
        self.retry_after = Some(secs);
        self
    }

    pub fn outcome(mut self, outcome: &'static str) -> Answer {
        self.outcome = outcome;
        self
    }

    /// Adds a field to the JSON body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Answer {
        if let Value::Object(m) = &mut self.body {
            m.insert(key.to_string(), value.into());
        }
        self
    }

    pub fn into_response(self) -> Response<Body> {
        let mut resp = Response::new(full(self.body.to_string()));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        resp
    }
}
