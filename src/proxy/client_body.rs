//! The client's request body on its way upstream, remembering whether *it* failed (a bad chunk
//! size, a client that vanished mid-upload), so that such a failure is answered as the
//! client's fault (400) rather than blamed on the upstream (502).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

pub struct ClientBody {
    inner: Incoming,
    failed: Arc<AtomicBool>,
}

impl ClientBody {
    pub fn new(inner: Incoming) -> (ClientBody, Arc<AtomicBool>) {
        let failed = Arc::new(AtomicBool::new(false));
        (
            ClientBody {
                inner,
                failed: failed.clone(),
            },
            failed,
        )
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &res {
            self.failed.store(true, Ordering::Relaxed);
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
