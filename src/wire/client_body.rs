//! The client's request body on its way upstream, remembering whether *it* failed (a bad chunk
//! size, a client that vanished mid-upload) or stalled, so that such a failure is answered as
//! the client's fault (400, or 408 for a stall) rather than blamed on the upstream (502).
//!
//! `server.client_body_timeout` bounds the time the client may send nothing while the
//! upstream waits for more: a body trickled a byte at a time would otherwise hold an upstream
//! request open until the upstream's own timeout. Time the upstream spends not reading is not
//! counted: the body is then not asked for anything.

use crate::runtime::metrics::Metrics;
use crate::runtime::stall::Stall;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// How the client's body ended, as [`ClientBody::new`]'s second value tells it.
pub const READING: u8 = 0;
pub const FAILED: u8 = 1;
pub const TIMED_OUT: u8 = 2;

pub struct ClientBody {
    inner: Incoming,
    outcome: Arc<AtomicU8>,
    stall: Stall,
    metrics: Arc<Metrics>,
}

impl ClientBody {
    pub fn new(
        inner: Incoming,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> (ClientBody, Arc<AtomicU8>) {
        let outcome = Arc::new(AtomicU8::new(READING));
        (
            ClientBody {
                inner,
                outcome: outcome.clone(),
                stall: Stall::new(timeout),
                metrics,
            },
            outcome,
        )
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, super::BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if !this.stall.expired(None, cx) {
                    return Poll::Pending;
                }
                this.outcome.store(TIMED_OUT, Ordering::Relaxed);
                this.metrics.stream_timeout("client_body");
                Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client body timeout",
                )))))
            }
            Poll::Ready(Some(Err(e))) => {
                this.outcome.store(FAILED, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(other) => {
                this.stall.progress();
                Poll::Ready(other.map(|r| r.map_err(|e| -> super::BoxError { Box::new(e) })))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
