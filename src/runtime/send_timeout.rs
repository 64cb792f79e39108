//! `server.send_timeout`: a client that stops taking what it is sent loses its response, and
//! the upstream request behind it is cancelled.
//!
//! Writing can stall in two places. The socket: an HTTP/1.1 client (or a whole HTTP/2
//! connection) that does not read fills the buffers, and writes stop completing; [`Guarded`]
//! wraps the connection's stream and fails a write that has made no progress for the timeout,
//! which ends the connection. One HTTP/2 stream: a client can keep a stream's window at zero
//! while the connection stays busy (its PINGs are answered), so the socket never stalls; that
//! stream's response waits for window forever, holding its upstream request open. hyper runs
//! each stream as a task given to the connection's executor, so [`StreamExecutor`] wraps those
//! tasks: the response body marks when it has something to send ([`SendWatch`]), and a stream
//! that has waited for the timeout is dropped, which resets it (RST_STREAM) and drops the
//! upstream body. Waiting for the upstream is never counted: only time in which the response
//! was ready to go and the client did not take it.

use crate::runtime::metrics::Metrics;
use crate::runtime::stall::Stall;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// A client connection's stream whose writes fail once they have made no progress for the
/// send timeout.
pub struct Guarded<T> {
    inner: T,
    stall: Stall,
    metrics: Arc<Metrics>,
}

impl<T> Guarded<T> {
    pub fn new(inner: T, timeout: Duration, metrics: Arc<Metrics>) -> Guarded<T> {
        Guarded {
            inner,
            stall: Stall::new(timeout),
            metrics,
        }
    }

    /// Passes a write's result on, failing it when it waited too long.
    fn watch<R>(
        &mut self,
        polled: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Pending => {
                if self.stall.expired(None, cx) {
                    self.metrics.stream_timeout("send");
                    tracing::debug!("client took nothing for the send timeout; closing");
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "send timeout: the client stopped reading",
                    )))
                } else {
                    Poll::Pending
                }
            }
            ready => {
                self.stall.progress();
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(polled, cx)
    }
}

/// When an HTTP/2 stream's response began waiting for the client to take it; shared by the
/// stream's task and its response body.
#[derive(Debug, Default)]
pub struct SendWatch {
    /// Milliseconds since [`epoch`] plus one; 0 while nothing waits to be sent.
    since: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl SendWatch {
    /// Something is ready to be sent from now on.
    pub fn waiting(&self) {
        let ms = epoch().elapsed().as_millis() as u64 + 1;
        self.since.store(ms, Ordering::Relaxed);
    }

    /// The sender took what there was (the body is asked for more).
    pub fn taken(&self) {
        self.since.store(0, Ordering::Relaxed);
    }

    fn since(&self) -> Option<Instant> {
        match self.since.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(epoch() + Duration::from_millis(ms - 1)),
        }
    }
}

thread_local! {
    /// The watch of the HTTP/2 stream task being polled on this thread, if any.
    static CURRENT: RefCell<Option<Arc<SendWatch>>> = const { RefCell::new(None) };
}

/// The watch of the HTTP/2 stream whose task is running the caller; `None` over HTTP/1.1.
pub fn current() -> Option<Arc<SendWatch>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The executor of an HTTP/2 connection's stream tasks: each one runs under a [`SendWatch`]
/// and is dropped when its response has waited for the client for the send timeout.
#[derive(Clone)]
pub struct StreamExecutor {
    pub timeout: Duration,
    pub metrics: Arc<Metrics>,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(Watched {
            fut,
            watch: Some(Arc::default()),
            stall: Stall::new(self.timeout),
            metrics: self.metrics.clone(),
        });
    }
}

pin_project_lite::pin_project! {
    struct Watched<F> {
        #[pin]
        fut: F,
        watch: Option<Arc<SendWatch>>,
        stall: Stall,
        metrics: Arc<Metrics>,
    }
}

/// Puts a watch back where it was taken from, even if the polled future panics.
struct Restore<'a> {
    slot: &'a mut Option<Arc<SendWatch>>,
    previous: Option<Arc<SendWatch>>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        *self.slot = CURRENT.with(|c| c.replace(previous));
    }
}

impl<F: Future<Output = ()>> Future for Watched<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let polled = {
            // The watch moves into the thread-local for the poll and back after it: no count
            // changes on the way.
            let previous = CURRENT.with(|c| c.replace(this.watch.take()));
            let _restore = Restore {
                slot: this.watch,
                previous,
            };
            this.fut.poll(cx)
        };
        if polled.is_ready() {
            return Poll::Ready(());
        }
        let Some(since) = this.watch.as_ref().and_then(|w| w.since()) else {
            this.stall.progress();
            return Poll::Pending;
        };
        if this.stall.expired(Some(since), cx) {
            this.metrics.stream_timeout("send");
            tracing::debug!(
                "an HTTP/2 stream's client took nothing for the send timeout; resetting it"
            );
            // Dropping the stream's task resets the stream and drops the upstream body.
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_watch_waits_only_while_something_is_ready_to_send() {
        let w = SendWatch::default();
        assert!(w.since().is_none());
        w.waiting();
        let t = w.since().unwrap();
        assert!(t <= Instant::now() && Instant::now() - t < Duration::from_millis(2));
        w.taken();
        assert!(w.since().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_task_is_dropped_after_the_timeout_only_while_waiting() {
        let metrics = Arc::new(Metrics::new());
        let exec = StreamExecutor {
            timeout: Duration::from_secs(5),
            metrics: metrics.clone(),
        };
        // A task that marks itself waiting and then never finishes.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        hyper::rt::Executor::execute(&exec, async move {
            let _done = done_tx;
            if let Some(w) = current() {
                w.waiting();
            }
            std::future::pending::<()>().await;
        });
        let started = Instant::now();
        // The task is dropped (its sender with it) at the timeout.
        let _ = done_rx.await;
        // Millisecond granularity, both in the watch and in tokio's timer.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(4999) && took <= Duration::from_millis(5002),
            "{took:?}"
        );
        assert!(metrics
            .encode()
            .contains("tccc_sidecar_stream_timeouts_total{reason=\"send\"} 1"));

        // A task waiting on anything else is left alone.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
        hyper::rt::Executor::execute(&exec, async move {
            let _done = done_tx;
            let _ = rx.await;
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(done_rx.try_recv().is_err(), "still running");
        drop(tx);
        let _ = done_rx.await;
    }
}
