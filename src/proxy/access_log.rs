//! The one log line per request, written when the response body is finished or abandoned,
//! so that it carries the bytes actually sent and whether the transfer completed.
//!
//! Only the method, the path (no query, no `;jsessionid=`), the status, the timings, the byte
//! count and the request id are logged: never headers, cookies or query strings, which carry
//! session tokens in legacy apps.

use crate::metrics::Metrics;
use bytes::Buf;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

pub struct AccessLog {
    pub method: http::Method,
    pub path: String,
    pub client: IpAddr,
    pub status: u16,
    pub start: Instant,
    pub upstream_ms: Option<f64>,
    pub bytes: u64,
    pub request_id: String,
    pub outcome: &'static str,
    pub metrics: Arc<Metrics>,
}

/// The request path as logged: the part before any `;` parameter (`;jsessionid=...`).
pub fn loggable_path(path: &str) -> String {
    let p = path.split(';').next().unwrap_or("");
    let mut s: String = p.chars().take(512).collect();
    if s.is_empty() {
        s.push('/');
    }
    s
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let total_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: "tccc_sidecar::access",
            method = %self.method,
            path = %self.path,
            status = self.status,
            client = %self.client,
            upstream_ms = self.upstream_ms.map(|v| (v * 10.0).round() / 10.0),
            total_ms = (total_ms * 10.0).round() / 10.0,
            bytes = self.bytes,
            outcome = self.outcome,
            request_id = %self.request_id,
        );
        self.metrics.count_status(self.status);
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts what it yields and logs the request when it is dropped.
    pub struct Logged<B> {
        #[pin]
        inner: B,
        log: Option<AccessLog>,
    }
}

impl<B> Logged<B> {
    pub fn new(inner: B, log: AccessLog) -> Logged<B> {
        Logged {
            inner,
            log: Some(log),
        }
    }
}

impl<B> HttpBody for Logged<B>
where
    B: HttpBody,
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let res = this.inner.poll_frame(cx);
        if let Some(log) = this.log.as_mut() {
            match &res {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        log.bytes += d.remaining() as u64;
                    }
                }
                Poll::Ready(Some(Err(_))) => log.outcome = "upstream_aborted",
                Poll::Ready(None) => log.outcome = "complete",
                Poll::Pending => {}
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
