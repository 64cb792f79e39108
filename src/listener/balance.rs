//! Spreading client connections evenly over the worker threads.
//!
//! Every worker accepts from the same listening socket, and the kernel wakes them all; the one
//! that runs first accepts whatever is queued. A burst of connections (a browser opening its
//! six, a load generator its thirty-two, a load balancer reconnecting) then lands on one
//! thread, and keep-alive holds it there: measured here, all 32 of wrk's connections on one of
//! two workers in 2 runs of 8. So the worker that accepts a connection keeps it only if no
//! other worker has fewer open; otherwise it hands the socket to the one with fewest, as
//! Envoy's `exact_balance` does. A hand-off costs one cross-thread wake-up per connection,
//! nothing per request.

use crate::runtime::per_address::Slot;
use prometheus_client::metrics::gauge::Gauge;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// An accepted connection on its way to the worker that will serve it.
pub struct Handoff {
    pub tcp: std::net::TcpStream,
    pub peer: SocketAddr,
    pub slot: Slot,
    pub ticket: Ticket,
}

/// The workers' open-connection counts and their inboxes.
pub struct Balancer {
    /// Open connections per worker; also exported as `worker_connections{worker="i"}`.
    open: Vec<Gauge>,
    inboxes: Vec<mpsc::UnboundedSender<Handoff>>,
}

/// One worker's place in the balancer.
pub struct Member {
    balancer: Arc<Balancer>,
    me: usize,
    inbox: mpsc::UnboundedReceiver<Handoff>,
}

/// A connection counted against one worker until it is dropped (the connection ends).
pub struct Ticket {
    open: Option<Gauge>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(g) = self.open.take() {
            g.dec();
        }
    }
}

impl Ticket {
    /// A connection counted nowhere (a server not running on balanced workers).
    pub fn none() -> Ticket {
        Ticket { open: None }
    }

    fn on(gauge: &Gauge) -> Ticket {
        gauge.inc();
        Ticket {
            open: Some(gauge.clone()),
        }
    }
}

/// Where an accepted connection goes.
pub enum Placed {
    /// Served by the worker that accepted it.
    Here(tokio::net::TcpStream, Slot, Ticket),
    /// Handed to another worker (or dropped because it could not be handed over).
    Away,
}

impl Balancer {
    /// A balancer over one gauge per worker; returns each worker's member.
    pub fn members(open: Vec<Gauge>) -> Vec<Member> {
        let (inboxes, receivers): (Vec<_>, Vec<_>) =
            open.iter().map(|_| mpsc::unbounded_channel()).unzip();
        let balancer = Arc::new(Balancer { open, inboxes });
        receivers
            .into_iter()
            .enumerate()
            .map(|(me, inbox)| Member {
                balancer: balancer.clone(),
                me,
                inbox,
            })
            .collect()
    }

    /// The worker with fewest open connections; `prefer` wins ties, saving a hand-off.
    fn least_loaded(&self, prefer: usize) -> usize {
        let mut best = prefer;
        let mut fewest = self.open[prefer].get();
        for (i, g) in self.open.iter().enumerate() {
            let n = g.get();
            if n < fewest {
                best = i;
                fewest = n;
            }
        }
        best
    }
}

impl Member {
    /// Decides where a connection just accepted by this worker is served.
    pub fn place(&self, tcp: tokio::net::TcpStream, peer: SocketAddr, slot: Slot) -> Placed {
        let b = &self.balancer;
        let target = b.least_loaded(self.me);
        if target == self.me {
            return Placed::Here(tcp, slot, Ticket::on(&b.open[self.me]));
        }
        // The socket leaves this worker's reactor; the target registers it with its own.
        let tcp_std = match tcp.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "could not hand a connection to another worker");
                return Placed::Away;
            }
        };
        let handoff = Handoff {
            tcp: tcp_std,
            peer,
            slot,
            ticket: Ticket::on(&b.open[target]),
        };
        match b.inboxes[target].send(handoff) {
            Ok(()) => Placed::Away,
            // The target has stopped taking connections (shutting down): serve it here.
            Err(mpsc::error::SendError(h)) => {
                drop(h.ticket);
                match tokio::net::TcpStream::from_std(h.tcp) {
                    Ok(tcp) => Placed::Here(tcp, h.slot, Ticket::on(&b.open[self.me])),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "could not take back a connection");
                        Placed::Away
                    }
                }
            }
        }
    }

    /// The next connection another worker handed to this one. Never ends: the senders live
    /// in the balancer this member holds, so the inbox cannot run dry of them, and a loop
    /// selecting on it must not spin if it ever did.
    pub async fn next(&mut self) -> Handoff {
        match self.inbox.recv().await {
            Some(h) => h,
            None => std::future::pending().await,
        }
    }

    /// Stops taking hand-offs; returns those already sent, which this worker still serves.
    pub fn close(&mut self) -> Vec<Handoff> {
        self.inbox.close();
        let mut left = Vec::new();
        while let Ok(h) = self.inbox.try_recv() {
            left.push(h);
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges(n: usize) -> Vec<Gauge> {
        (0..n).map(|_| Gauge::default()).collect()
    }

    #[test]
    fn the_worker_with_fewest_connections_is_chosen_and_the_acceptor_wins_ties() {
        let open = gauges(3);
        let members = Balancer::members(open.clone());
        let b = &members[0].balancer;
        assert_eq!(b.least_loaded(1), 1, "all equal: the acceptor keeps it");
        open[0].inc();
        open[1].inc();
        assert_eq!(b.least_loaded(0), 2);
        assert_eq!(b.least_loaded(1), 2);
        open[2].inc();
        open[2].inc();
        assert_eq!(b.least_loaded(2), 0, "first of the least loaded");
    }

    /// A connected loopback socket, as the accept loop gets it.
    async fn accepted() -> (tokio::net::TcpStream, SocketAddr, tokio::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, peer) = l.accept().await.unwrap();
        (tcp, peer, client)
    }

    fn slot(peer: SocketAddr) -> Slot {
        crate::runtime::per_address::ConnLimit::new(0, 0, vec![])
            .acquire(peer.ip())
            .unwrap()
    }

    /// Two workers, the first already holding one connection.
    fn two_workers() -> (Vec<Gauge>, Member, Member) {
        let open = gauges(2);
        let mut members = Balancer::members(open.clone());
        let second = members.pop().unwrap();
        let first = members.pop().unwrap();
        open[0].inc();
        (open, first, second)
    }

    #[tokio::test]
    async fn a_connection_goes_to_the_emptier_worker_or_stays_when_that_worker_has_stopped() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (open, first, mut second) = two_workers();

        // Worker 0 already has one: the new connection is handed to worker 1, still usable.
        let (tcp, peer, mut client) = accepted().await;
        assert!(matches!(first.place(tcp, peer, slot(peer)), Placed::Away));
        assert_eq!((open[0].get(), open[1].get()), (1, 1));
        let handed = second.next().await;
        assert_eq!(handed.peer, peer);
        let mut served = tokio::net::TcpStream::from_std(handed.tcp).unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        served.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        drop(handed.ticket);
        assert_eq!(open[1].get(), 0, "its end is counted where it was served");

        // Worker 1 stops taking connections: one meant for it is served by the acceptor.
        assert!(second.close().is_empty());
        let (tcp, peer, _client) = accepted().await;
        match first.place(tcp, peer, slot(peer)) {
            Placed::Here(_, _, ticket) => {
                assert_eq!((open[0].get(), open[1].get()), (2, 0));
                drop(ticket);
                assert_eq!(open[0].get(), 1);
            }
            Placed::Away => panic!("a connection for a stopped worker must stay"),
        }
    }

    #[tokio::test]
    async fn connections_sent_before_a_worker_stops_are_still_its_to_serve() {
        let (open, first, mut second) = two_workers();
        let (tcp, peer, _client) = accepted().await;
        assert!(matches!(first.place(tcp, peer, slot(peer)), Placed::Away));
        let left = second.close();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].peer, peer);
        assert_eq!(open[1].get(), 1);
        drop(left);
        assert_eq!(open[1].get(), 0);
    }

    #[test]
    fn a_ticket_counts_its_connection_until_dropped() {
        let g = Gauge::default();
        let t = Ticket::on(&g);
        let u = Ticket::on(&g);
        assert_eq!(g.get(), 2);
        drop(t);
        assert_eq!(g.get(), 1);
        drop(u);
        assert_eq!(g.get(), 0);
        drop(Ticket::none());
        assert_eq!(g.get(), 0);
    }
}
