//! The TLS listener: accepting connections, the TLS handshake, HTTP/1.1 or HTTP/2 by ALPN,
//! and a graceful drain on shutdown.
//!
//! `serve` takes an already-bound listener and a shutdown future, so tests bind port 0 and
//! stop the server when they are done. On shutdown the listener is closed at once, idle
//! connections are closed, HTTP/2 connections get GOAWAY, and requests in flight (streams and
//! upgraded connections excepted) may finish until `server.shutdown_timeout`.

use crate::listener::balance;
use crate::listener::drain::{Drain, Watcher};
use crate::listener::tls::Tls;
use crate::proxy;
use crate::proxy::ConnInfo;
use crate::runtime::send_timeout::{Guarded, StreamExecutor};
use crate::state::AppState;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The HTTP/1.1 and HTTP/2 connection builders, configured from the server limits.
///
/// hyper's own builders, not hyper-util's protocol-sniffing one: ALPN has already chosen the
/// protocol, and the sniffing connection is an enum as large as an HTTP/2 connection, which
/// every idle HTTP/1.1 connection would pay for.
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<StreamExecutor>,
    send_timeout: Duration,
}

fn builders(state: &AppState) -> Builders {
    let s = &state.config().server;
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(s.header_read_timeout.get())
        .max_buf_size(s.max_header_bytes.max(8192))
        .max_headers(s.max_headers);
    // Not `pipeline_flush`: it bypasses the write-buffer cap and buffers whole responses for slow readers.
    // Each stream's task runs under the send timeout (a window kept shut ends the stream).
    let mut h2 = http2::Builder::new(StreamExecutor {
        timeout: s.send_timeout.get(),
        metrics: state.metrics.clone(),
    });
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(s.h2_max_concurrent_streams)
        .max_header_list_size(s.max_header_bytes as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_pending_accept_reset_streams(Some(100))
        .max_local_error_reset_streams(Some(1024));
    Builders {
        h1,
        h2,
        send_timeout: s.send_timeout.get(),
    }
}

/// A request's handling, boxed: hyper keeps one slot per connection for the future in
/// flight, sized for it, so an unboxed handler (several KiB) would be held by every idle
/// keep-alive connection; boxed, it costs one allocation per request instead.
type Handling = Pin<Box<dyn Future<Output = Result<Response<proxy::Served>, Infallible>> + Send>>;

/// The proxy as a hyper service for one client connection.
struct ProxyService {
    state: Arc<AppState>,
    conn_info: Arc<ConnInfo>,
}

impl Service<Request<Incoming>> for ProxyService {
    type Response = Response<proxy::Served>;
    type Error = Infallible;
    type Future = Handling;

    fn call(&self, req: Request<Incoming>) -> Handling {
        let state = self.state.clone();
        let conn_info = self.conn_info.clone();
        Box::pin(async move { Ok(proxy::handle(state, conn_info, req).await) })
    }
}

type Io = TokioIo<Guarded<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>;

/// An HTTP/1.1 connection (upgrades allowed), drained with `Connection: close`.
fn serve_h1(
    builder: &http1::Builder,
    io: Io,
    svc: ProxyService,
    watcher: Watcher,
) -> impl Future<Output = hyper::Result<()>> + Send + use<> {
    let conn = builder.serve_connection(io, svc).with_upgrades();
    watcher.watch(conn, |c| c.graceful_shutdown())
}

/// An HTTP/2 connection, drained with GOAWAY. Boxed so that the far more common HTTP/1.1
/// connection task is not sized for it.
fn serve_h2(
    builder: &http2::Builder<StreamExecutor>,
    io: Io,
    svc: ProxyService,
    watcher: Watcher,
) -> impl Future<Output = hyper::Result<()>> + Send + use<> {
    let conn = Box::pin(builder.serve_connection(io, svc));
    watcher.watch(conn, |c| c.get_mut().as_mut().graceful_shutdown())
}

/// Serves TLS connections from `listener` until `shutdown` resolves, then drains. Loads the
/// certificates of `state`'s configuration and follows their files.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = Tls::load(&state.config().server).map_err(std::io::Error::other)?;
    tls.watch(&state.config().server, state.metrics.clone());
    serve_as(listener, state, tls.config, shutdown, None).await
}

/// What every connection task of one accept loop shares.
struct Accepting {
    state: Arc<AppState>,
    acceptor: TlsAcceptor,
    builders: Arc<Builders>,
    drain: Drain,
    handshake_timeout: Duration,
}

/// The accept loop; `member` is this worker's place among balanced workers, if it has one.
async fn serve_as(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
    mut member: Option<balance::Member>,
) -> std::io::Result<()> {
    let acc = Accepting {
        acceptor: TlsAcceptor::from(tls),
        builders: Arc::new(builders(&state)),
        drain: Drain::new(),
        handshake_timeout: state.config().server.handshake_timeout.get(),
        state,
    };
    let state = &acc.state;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            h = next_handoff(&mut member) => {
                acc.adopt(h);
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Running out of file descriptors must not spin the accept loop.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = state.conn_limit.acquire(peer.ip()) else {
            state.metrics.connection_refused("per_client_limit");
            tracing::debug!(%peer, "connection refused: too many from this client address");
            drop(tcp);
            continue;
        };
        match &member {
            None => acc.spawn(tcp, peer, slot, balance::Ticket::none()),
            Some(m) => match m.place(tcp, peer, slot) {
                balance::Placed::Here(tcp, slot, ticket) => acc.spawn(tcp, peer, slot, ticket),
                balance::Placed::Away => {}
            },
        }
    }
    drop(listener);
    // Connections other workers handed over just before the end are served (and drained) too.
    if let Some(m) = &mut member {
        for h in m.close() {
            acc.adopt(h);
        }
    }
    let deadline = state.config().server.shutdown_timeout.get();
    tokio::select! {
        _ = acc.drain.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(deadline) => tracing::warn!("shutdown deadline reached; closing remaining connections"),
    }
    Ok(())
}

/// The next hand-off from another worker; never, for a server that is not a balanced worker.
async fn next_handoff(member: &mut Option<balance::Member>) -> balance::Handoff {
    match member {
        Some(m) => m.next().await,
        None => std::future::pending().await,
    }
}

impl Accepting {
    /// Serves a connection another worker accepted, on this worker's reactor.
    fn adopt(&self, h: balance::Handoff) {
        match tokio::net::TcpStream::from_std(h.tcp) {
            Ok(tcp) => self.spawn(tcp, h.peer, h.slot, h.ticket),
            Err(e) => tracing::debug!(peer = %h.peer, error = %e, "handed-over connection lost"),
        }
    }

    /// Spawns the task that does the TLS handshake and serves the connection.
    fn spawn(
        &self,
        tcp: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        slot: crate::runtime::per_address::Slot,
        ticket: balance::Ticket,
    ) {
        let _ = tcp.set_nodelay(true);
        let state = self.state.clone();
        let acceptor = self.acceptor.clone();
        let builders = self.builders.clone();
        let watcher = self.drain.watcher();
        let handshake_timeout = self.handshake_timeout;
        tokio::spawn(async move {
            let in_flight = slot.in_flight();
            let metrics = state.metrics.clone();
            metrics.open_connections.inc();
            let _open = scopeguard(move || {
                metrics.open_connections.dec();
                drop(slot);
                drop(ticket);
            });
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    state.metrics.tls_handshake_errors.inc();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    state.metrics.tls_handshake_errors.inc();
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            // Encrypted bytes waiting for a slow reader: bounded per connection, so memory
            // stays flat however many clients stall (rustls's default is 64 KiB). A little
            // above one upstream read, so that a chunk with its chunked-coding framing goes
            // out in one write: at exactly 32 KiB, the framing's last bytes took a second
            // write (and TLS record) per chunk.
            let mut tls = tls;
            tls.get_mut()
                .1
                .set_buffer_limit(Some(crate::wire::pool::READ_BUFFER + 1024));
            // Writes that make no progress for the send timeout end the connection.
            let io = TokioIo::new(Guarded::new(
                tls,
                builders.send_timeout,
                state.metrics.clone(),
            ));
            let conn_info = Arc::new(ConnInfo::new(peer, in_flight));
            let svc = ProxyService { state, conn_info };
            let ended = if h2 {
                serve_h2(&builders.h2, io, svc, watcher).await
            } else {
                serve_h1(&builders.h1, io, svc, watcher).await
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Serves `listener` on `workers` threads, each running its own single-threaded runtime with
/// its own upstream pool (nginx's model: no work moves between threads, so no request pays for
/// cross-thread queues or wake-ups). The threads all accept from the same socket, and a new
/// connection is served by the thread with fewest open (see `balance`). Returns when every
/// worker has drained.
pub async fn serve_workers(
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    workers: usize,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let tls = Tls::load(&state.config().server).map_err(std::io::Error::other)?;
    tls.watch(&state.config().server, state.metrics.clone());
    serve_workers_with(listener, state, &tls, workers, shutdown).await
}

/// [`serve_workers`] with certificates already loaded (and watched) by the caller.
pub async fn serve_workers_with(
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    tls: &Tls,
    workers: usize,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let workers = workers.max(1);
    let members = balance::Balancer::members(state.metrics.worker_gauges(workers));
    let mut done = Vec::with_capacity(workers);
    for (i, member) in members.into_iter().enumerate() {
        let l = listener.try_clone()?;
        let st = state.for_worker().map_err(std::io::Error::other)?;
        let rx = shutdown.clone();
        let tls = tls.config.clone();
        let (tx, finished) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
        std::thread::Builder::new()
            .name(format!("tccc-worker-{i}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        rt.block_on(async move {
                            let l = TcpListener::from_std(l)?;
                            serve_as(l, st, tls, crate::runtime::stopped(rx), Some(member)).await
                        })
                    });
                let _ = tx.send(result);
            })?;
        done.push(finished);
    }
    for f in done {
        f.await
            .map_err(|_| std::io::Error::other("a worker thread ended abnormally"))??;
    }
    Ok(())
}

/// Runs `f` when dropped (the connection task ends however it ends).
pub(crate) fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
