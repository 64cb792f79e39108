//! Upgraded connections (WebSocket and other `Upgrade` protocols): once both sides have
//! switched protocols, bytes are copied both ways until either side closes.

use crate::runtime::metrics::Metrics;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

pub fn spawn(client: OnUpgrade, upstream: OnUpgrade, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        metrics.websocket_tunnels.inc();
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "upgraded connection ended with an error");
        }
        metrics.websocket_tunnels.dec();
    });
}
