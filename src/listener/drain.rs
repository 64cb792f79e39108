//! Graceful drain of served connections on shutdown.
//!
//! hyper-util's `GracefulShutdown` does this for the connection types it knows, but not for
//! hyper's own upgrade-capable HTTP/1.1 connection, which the server uses so that an idle
//! keep-alive connection is not sized for HTTP/2 (see `server`). The protocol is the same:
//! every connection holds a receiver; shutdown signals them all, each asks its connection to
//! finish gracefully (`Connection: close` on the next response, or GOAWAY), and the drain is
//! over when every receiver has been dropped.

use std::future::Future;
use std::pin::{pin, Pin};
use tokio::sync::watch;

/// The sending side, held by the accept loop.
pub struct Drain {
    tx: watch::Sender<()>,
}

/// One connection's view of the drain signal.
pub struct Watcher {
    rx: watch::Receiver<()>,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    pub fn new() -> Self {
        Self {
            tx: watch::channel(()).0,
        }
    }

    pub fn watcher(&self) -> Watcher {
        Watcher {
            rx: self.tx.subscribe(),
        }
    }

    /// Signals every watched connection, then waits until all of them have ended.
    pub async fn shutdown(self) {
        let _ = self.tx.send(());
        self.tx.closed().await;
    }
}

impl Watcher {
    /// Drives `conn` to its end; when the drain is signalled first, `graceful` is called once
    /// on it and it is driven on until it finishes what it has in flight.
    pub async fn watch<C: Future>(self, conn: C, graceful: impl FnOnce(Pin<&mut C>)) -> C::Output {
        let Watcher { mut rx } = self;
        let mut conn = pin!(conn);
        tokio::select! {
            biased;
            out = conn.as_mut() => return out,
            // A dropped sender means the accept loop is gone: drain as well.
            _ = rx.changed() => {}
        }
        graceful(conn.as_mut());
        let out = conn.await;
        // The receiver counts this connection as live until here.
        drop(rx);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn shutdown_waits_for_the_connection_to_finish_after_the_signal() {
        let drain = Drain::new();
        let watcher = drain.watcher();
        let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let told = Arc::new(AtomicBool::new(false));
        let told2 = told.clone();
        let conn = tokio::spawn(watcher.watch(
            async move {
                let _ = finish_rx.await;
                "finished"
            },
            move |_| told2.store(true, Ordering::SeqCst),
        ));
        let mut shutdown = pin!(drain.shutdown());
        // Not over while the connection is still running.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), shutdown.as_mut())
                .await
                .is_err()
        );
        assert!(told.load(Ordering::SeqCst), "graceful was not called");
        let _ = finish_tx.send(());
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("drain did not end after the connection did");
        assert_eq!(conn.await.unwrap(), "finished");
    }

    #[tokio::test]
    async fn a_connection_that_ends_first_is_not_told_to_drain() {
        let drain = Drain::new();
        let told = Arc::new(AtomicBool::new(false));
        let told2 = told.clone();
        let out = drain
            .watcher()
            .watch(async { 7 }, move |_| told2.store(true, Ordering::SeqCst))
            .await;
        assert_eq!(out, 7);
        assert!(!told.load(Ordering::SeqCst));
        tokio::time::timeout(Duration::from_secs(5), drain.shutdown())
            .await
            .expect("nothing to wait for");
    }
}
