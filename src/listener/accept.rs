//! The accept loop shared by the small plain listeners (admin, redirect, emulator, demo CRM):
//! accept until shutdown, hand each connection to a task, and never spin when accepting
//! fails (for example when file descriptors run out). [`serve_plain_http`] is the whole
//! plain HTTP/1.1 listener that admin and redirect share.

use crate::wire::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections until `shutdown` resolves; `serve` runs in its own task per connection.
pub async fn accept_until<F, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    serve: F,
) where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    tokio::spawn(serve(tcp));
                }
                Err(e) => {
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Serves plain HTTP/1.1 on `listener` until `shutdown` resolves, each request answered by
/// `answer`. A client gets 10 seconds for a request head, so idle sockets do not pile up.
pub async fn serve_plain_http<F, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    answer: F,
) -> std::io::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder.http1_only());
    accept_until(listener, shutdown, move |tcp| {
        let builder = builder.clone();
        let answer = answer.clone();
        async move {
            let svc = service_fn(move |req| {
                let answer = answer.clone();
                async move { Ok::<_, Infallible>(answer(req).await) }
            });
            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
        }
    })
    .await;
    Ok(())
}
