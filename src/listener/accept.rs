//! The accept loop shared by the small plain listeners (admin, redirect, emulator, demo CRM):
//! accept until shutdown, hand each connection to a task, and never spin when accepting
//! fails (for example when file descriptors run out).

use std::future::Future;
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
