//! The upstream connection pool: HTTP/1.1 connections to the application kept open between
//! requests, one pool per worker thread.
//!
//! Built on hyper's connection-level client rather than hyper-util's pooled one, which costs
//! about a tenth of a small proxied request's CPU (a boxed request future, a checkout racing a
//! lazy connect, a task spawned per response to wait for the connection to be free again). A
//! connection here goes back to the pool when its response body has been read to the end, by
//! the body itself; one whose body was abandoned, or that switched protocols, is never reused.
//!
//! Replay rule: a request is sent again only when a pooled connection turned out to be closed
//! before anything was written to it (hyper hands the request back untouched). Legacy apps
//! change state on GET, so nothing else is ever replayed.

use super::client_body::ClientBody;
use super::upstream::Connector;
use super::BoxError;
use crate::config::UpstreamConfig;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower_service::Service;

/// Why a forwarded request got no answer from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No connection could be made (refused, timed out, TLS failed).
    #[error("connect")]
    Connect(#[source] BoxError),
    /// The request failed on an open connection (reset, malformed response).
    #[error("request")]
    Request(#[source] hyper::Error),
    /// The answer's `Transfer-Encoding` names a coding besides `chunked`: hyper has undone
    /// `chunked`, and the rest would reach the client as body bytes with nothing left to say
    /// how to decode them.
    #[error("the answer's transfer coding is not chunked alone")]
    Framing,
}

pub use super::upstream::READ_BUFFER;

struct Idle {
    sender: SendRequest<ClientBody>,
    since: Instant,
}

impl Idle {
    /// Still open, free for a request, and idle for less than `timeout`.
    fn usable(&self, now: Instant, timeout: Duration) -> bool {
        self.sender.is_ready() && now.duration_since(self.since) < timeout
    }
}

pub struct Pool {
    connector: Connector,
    /// `scheme://authority` of the upstream, what the connector dials.
    target: Uri,
    builder: http1::Builder,
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
    reaper_started: AtomicBool,
}

impl Pool {
    /// Builds the pool; errors name the CA file and what is wrong with it.
    pub fn new(cfg: &UpstreamConfig) -> Result<Arc<Pool>, String> {
        let connector = super::upstream::connector(cfg)?;
        let url = &cfg.url;
        let target = Uri::builder()
            .scheme(if url.https { "https" } else { "http" })
            .authority(url.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| format!("upstream.url: {e}"))?;
        let mut builder = http1::Builder::new();
        builder.max_buf_size(READ_BUFFER);
        Ok(Arc::new(Pool {
            connector,
            target,
            builder,
            idle: Mutex::new(Vec::new()),
            max_idle: cfg.pool_max_idle_per_host,
            idle_timeout: cfg.pool_idle_timeout.get(),
            reaper_started: AtomicBool::new(false),
        }))
    }

    /// Sends `req` (origin-form target, `Host` set) on a pooled or new connection.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<ClientBody>,
    ) -> Result<Response<PooledBody>, PoolError> {
        loop {
            let (mut sender, reused) = match self.checkout() {
                Some(s) => (s, true),
                // Boxed: a connect (TCP, maybe TLS, handshake) is rare on a warm pool, and
                // unboxed its state would size every request's future.
                None => (Box::pin(self.connect()).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => return self.wrap(sender, resp),
                Err(mut e) => match e.take_message() {
                    // Closed while idle, before a byte of this request was written: the one
                    // case in which it may go again. Each pass uses up a pooled connection,
                    // and a new one is never retried, so this ends.
                    Some(r) if reused => req = r,
                    _ => return Err(PoolError::Request(e.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection that is still open and not too old.
    fn checkout(&self) -> Option<SendRequest<ClientBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while let Some(i) = idle.pop() {
            if i.usable(now, self.idle_timeout) {
                return Some(i.sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<ClientBody>, PoolError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(PoolError::Connect)?;
        let io = connector
            .call(self.target.clone())
            .await
            .map_err(PoolError::Connect)?;
        let (sender, conn) = self
            .builder
            .handshake(io)
            .await
            .map_err(|e| PoolError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %super::ErrorChain(&e), "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn wrap(
        self: &Arc<Self>,
        sender: SendRequest<ClientBody>,
        resp: Response<Incoming>,
    ) -> Result<Response<PooledBody>, PoolError> {
        let (mut parts, inner) = resp.into_parts();
        if !super::hop::only_chunked(&parts.headers) {
            return Err(PoolError::Framing);
        }
        // Both framings: the body was read by its chunks, so the stale length
        // goes before anyone downstream believes it, and a connection whose framing was
        // doubtful is not used again.
        let double_framed = parts.headers.contains_key(header::TRANSFER_ENCODING)
            && parts.headers.remove(header::CONTENT_LENGTH).is_some();
        // A connection that switched protocols belongs to the tunnel now.
        let reusable = parts.status != StatusCode::SWITCHING_PROTOCOLS && !double_framed;
        let mut body = PooledBody {
            inner,
            back: reusable.then(|| (sender, Arc::downgrade(self))),
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        Ok(Response::from_parts(parts, body))
    }

    /// Takes back a connection whose response has been read to the end.
    fn put(self: &Arc<Self>, mut sender: SendRequest<ClientBody>) {
        if sender.is_closed() {
            return;
        }
        if !sender.is_ready() {
            // The connection has not yet said it is free again (it does once its task runs):
            // wait for that off the request's path rather than pool a busy connection.
            let pool = Arc::downgrade(self);
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(async move {
                    if sender.ready().await.is_ok() {
                        if let Some(pool) = pool.upgrade() {
                            pool.add_idle(sender);
                        }
                    }
                });
            }
            return;
        }
        self.add_idle(sender);
    }

    fn add_idle(self: &Arc<Self>, sender: SendRequest<ClientBody>) {
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() >= self.max_idle {
                return;
            }
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
        if !self.reaper_started.swap(true, Ordering::Relaxed)
            && tokio::runtime::Handle::try_current().is_ok()
        {
            tokio::spawn(reap(Arc::downgrade(self), self.idle_timeout));
        }
    }

    /// Drops idle connections that closed or passed the idle timeout.
    fn sweep(&self) {
        let now = Instant::now();
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|i| i.usable(now, self.idle_timeout));
    }
}

/// Closes idle connections once they pass the idle timeout, so that an upstream is not left
/// holding connections nobody will use; ends with the pool.
async fn reap(pool: Weak<Pool>, timeout: Duration) {
    let period = (timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        tokio::time::sleep(period).await;
        match pool.upgrade() {
            Some(p) => p.sweep(),
            None => return,
        }
    }
}

/// An upstream response body that returns its connection to the pool once read to the end.
pub struct PooledBody {
    inner: Incoming,
    back: Option<(SendRequest<ClientBody>, Weak<Pool>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((sender, pool)) = self.back.take() {
            if let Some(pool) = pool.upgrade() {
                pool.put(sender);
            }
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            // A broken body: the connection is not reused.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
