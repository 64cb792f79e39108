//! Graceful shutdown: in-flight requests finish, idle connections close, HTTP/2 clients get
//! GOAWAY, new connections are refused, and `serve` returns.

use crate::common::*;
use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use std::sync::Arc;

#[tokio::test]
async fn shutdown_lets_in_flight_responses_finish_then_stops_accepting() {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let release_rx = Arc::new(release_rx);
    let (arrived_tx, mut arrived_rx) = tokio::sync::mpsc::channel::<()>(4);
    let up = Upstream::start(handler(move |_| {
        let mut release = (*release_rx).clone();
        let arrived = arrived_tx.clone();
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from("part1-")).await;
                let _ = arrived.send(()).await;
                let _ = release.wait_for(|r| *r).await;
                let _ = tx.send(Bytes::from("part2")).await;
            });
            Response::new(body)
        }
    }))
    .await;
    let mut side = Sidecar::start(&up.url(), "", "").await;
    let addr = side.addr;
    let mut h1 = side.h1().await;
    let mut h2 = side.h2().await;
    let r1 = h1.send(get("/long")).await.unwrap();
    let r2 = h2.send(get("/long")).await.unwrap();
    within("both requests upstream", async {
        arrived_rx.recv().await;
        arrived_rx.recv().await;
    })
    .await;
    let idle = side.h1().await; // an idle keep-alive connection
    let serve = side.shutdown();

    // New connections are refused once the listener is closed.
    within("listener closed", async {
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;

    release_tx.send(true).unwrap();
    let b1 = within("h1 body", r1.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    let b2 = within("h2 body", r2.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(
        b1, "part1-part2",
        "the in-flight HTTP/1.1 response finished"
    );
    assert_eq!(b2, "part1-part2", "the in-flight HTTP/2 stream finished");
    within("serve returns", serve).await.unwrap().unwrap();
    // Drained connections are closed: no further request goes through on any of them.
    let mut idle = idle;
    assert!(
        h1.send(get("/again")).await.is_err(),
        "h1 connection closed after its response"
    );
    assert!(
        h2.send(get("/again")).await.is_err(),
        "h2 connection got GOAWAY"
    );
    assert!(
        idle.send(get("/again")).await.is_err(),
        "idle keep-alive connection closed"
    );
    assert_eq!(up.count(), 2, "nothing was sent after shutdown");
}

/// A second server over the sidecar's state, on `workers` threads, as `run` starts it: its
/// address, its stop signal and its task.
fn start_workers(
    side: &Sidecar,
    workers: usize,
) -> (
    std::net::SocketAddr,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(tccc_sidecar::listener::server::serve_workers(
        std_listener,
        side.state.clone(),
        workers,
        rx,
    ));
    (addr, tx, serving)
}

/// The worker threads' open-connection gauges, as `/metrics` shows them.
fn per_worker(side: &Sidecar, workers: usize) -> Vec<f64> {
    let text = side.metrics();
    (0..workers)
        .map(|i| {
            metric(
                &text,
                &format!("tccc_sidecar_worker_connections{{worker=\"{i}\"}}"),
            )
        })
        .collect()
}

#[tokio::test]
async fn connections_are_spread_evenly_over_the_worker_threads() {
    let up = Upstream::ok("hello").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let (addr, tx, serving) = start_workers(&side, 3);
    // Twelve keep-alive connections, one after another, each answered before the next opens:
    // whichever thread the kernel wakes first accepts, and it keeps a connection only when no
    // other thread has fewer.
    let mut clients = Vec::new();
    for i in 0..12 {
        let proto = if i % 3 == 0 { Proto::H2 } else { Proto::H1 };
        let mut c = Client::connect(addr, &side.ca_pem, proto, None).await;
        let (parts, body) = c.get(&format!("/conn/{i}")).await;
        assert_eq!(parts.status, 200, "connection {i}");
        assert_eq!(body, "hello");
        clients.push(c);
    }
    assert_eq!(per_worker(&side, 3), vec![4.0, 4.0, 4.0]);
    // Each thread has its own upstream pool: three threads served, so the upstream saw three
    // connections, each reused for that thread's four clients.
    for c in clients.iter_mut() {
        let (parts, _) = c.get("/again").await;
        assert_eq!(parts.status, 200);
    }
    assert_eq!(up.count(), 24);
    assert_eq!(
        up.connections.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "one upstream connection per worker thread"
    );
    drop(clients);
    within("closed connections leave the per-worker counts", async {
        while per_worker(&side, 3) != vec![0.0, 0.0, 0.0] {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    tx.send(true).unwrap();
    within("workers drain and return", serving)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn worker_threads_share_the_listener_and_drain_on_shutdown() {
    let up = Upstream::ok("hello").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let (addr, tx, serving) = start_workers(&side, 2);
    let mut clients = Vec::new();
    for i in 0..8 {
        let proto = if i % 2 == 0 { Proto::H1 } else { Proto::H2 };
        clients.push(Client::connect(addr, &side.ca_pem, proto, None).await);
    }
    for c in clients.iter_mut() {
        let (parts, body) = c.get("/").await;
        assert_eq!(parts.status, 200);
        assert_eq!(body, "hello");
    }
    assert_eq!(up.count(), 8);
    tx.send(true).unwrap();
    within("workers drain and return", serving)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}
