//! Connections and requests in flight per client address (`server.max_connections_per_client`,
//! `server.max_requests_in_flight_per_client`): one address cannot take every file descriptor
//! and connection slot of the process, nor hold every upstream request open through the
//! streams of its many connections. IPv6 clients are counted per /64 (one host can use any
//! address of its /64), IPv4-mapped addresses as IPv4. Peers in `server.trusted_proxies` (load
//! balancers, which carry many clients) are not limited. A connection over the limit is closed
//! at accept, before the TLS handshake that an attacker would otherwise make the process pay
//! for; a request over it is answered 503 before anything reaches the upstream.
//!
//! Each connection holds its address's entry from accept on, so a request only counts itself
//! in and out of a shared atomic, with no lock or map lookup on its path.

use crate::config::types::{any_contains, canonical_ip};
use crate::config::Cidr;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct ConnLimit {
    max: usize,
    max_requests: usize,
    exempt: Vec<Cidr>,
    clients: Mutex<HashMap<IpAddr, Client>>,
}

/// One address's open connections (under the map's lock) and requests in flight (shared with
/// its connections).
struct Client {
    connections: usize,
    requests: Arc<AtomicUsize>,
}

/// A held connection slot; dropping it frees the slot.
pub struct Slot {
    limit: Option<(Arc<ConnLimit>, IpAddr)>,
    requests: Option<InFlight>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((limit, key)) = self.limit.take() {
            let mut clients = limit.lock();
            if let Some(c) = clients.get_mut(&key) {
                c.connections -= 1;
                if c.connections == 0 {
                    clients.remove(&key);
                }
            }
        }
    }
}

impl Slot {
    /// The address's count of requests in flight, for the connection's requests; `None` when
    /// the address is not limited.
    pub fn in_flight(&self) -> Option<InFlight> {
        self.requests.clone()
    }
}

/// The requests in flight of one client address, and their limit.
#[derive(Clone, Debug)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
    max: usize,
}

/// One request counted in flight until dropped.
#[derive(Debug)]
pub struct Request(Arc<AtomicUsize>);

impl Drop for Request {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl InFlight {
    /// Counts a new request in, or `None` when the address already has its limit in flight.
    pub fn enter(&self) -> Option<Request> {
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Request(self.count.clone()))
    }
}

impl ConnLimit {
    /// `max` connections and `max_requests` in flight per address; 0: no limit.
    pub fn new(max: usize, max_requests: usize, exempt: Vec<Cidr>) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            max,
            max_requests,
            exempt,
            clients: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection from `peer`, or `None` when its address has `max` open.
    pub fn acquire(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let ip = canonical_ip(peer);
        if (self.max == 0 && self.max_requests == 0) || any_contains(&self.exempt, ip) {
            return Some(Slot {
                limit: None,
                requests: None,
            });
        }
        let key = match ip {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        };
        let mut clients = self.lock();
        let c = clients.entry(key).or_insert_with(|| Client {
            connections: 0,
            requests: Arc::default(),
        });
        if self.max != 0 && c.connections >= self.max {
            return None;
        }
        c.connections += 1;
        let requests = (self.max_requests != 0).then(|| InFlight {
            count: c.requests.clone(),
            max: self.max_requests,
        });
        Some(Slot {
            limit: Some((self.clone(), key)),
            requests,
        })
    }

    /// Addresses with at least one connection (for tests and metrics).
    pub fn addresses(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_frees_on_drop_and_exempts_trusted_proxies() {
        let proxy: Cidr = "10.0.0.0/8".parse().unwrap();
        let l = ConnLimit::new(2, 0, vec![proxy]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let s1 = l.acquire(a).unwrap();
        let _s2 = l.acquire(a).unwrap();
        assert!(l.acquire(a).is_none(), "the third is refused");
        assert!(
            l.acquire("192.0.2.2".parse().unwrap()).is_some(),
            "another address"
        );
        drop(s1);
        let _s3 = l.acquire(a).expect("a freed slot is reused");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(l.acquire(mapped).is_none(), "IPv4-mapped counts as IPv4");
        for _ in 0..10 {
            std::mem::forget(l.acquire("10.1.2.3".parse().unwrap()).unwrap());
        }
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        let _x = l.acquire(v6a).unwrap();
        let _y = l.acquire(v6b).unwrap();
        assert!(
            l.acquire("2001:db8:1:2:abcd::9".parse().unwrap()).is_none(),
            "one /64"
        );
        assert!(l.acquire("2001:db8:1:3::1".parse().unwrap()).is_some());
        let unlimited = ConnLimit::new(0, 0, vec![]);
        let held: Vec<_> = (0..100).map(|_| unlimited.acquire(a).unwrap()).collect();
        assert_eq!(held.len(), 100);
        assert_eq!(unlimited.addresses(), 0);
    }

    #[test]
    fn requests_in_flight_are_counted_over_all_of_an_addresss_connections() {
        let l = ConnLimit::new(0, 3, vec!["10.0.0.0/8".parse().unwrap()]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let (c1, c2) = (l.acquire(a).unwrap(), l.acquire(a).unwrap());
        let (f1, f2) = (c1.in_flight().unwrap(), c2.in_flight().unwrap());
        let r1 = f1.enter().unwrap();
        let _r2 = f2.enter().unwrap();
        let _r3 = f1.enter().unwrap();
        assert!(f2.enter().is_none(), "the fourth, on either connection");
        assert!(f1.enter().is_none());
        let other = l.acquire("192.0.2.2".parse().unwrap()).unwrap();
        assert!(
            other.in_flight().unwrap().enter().is_some(),
            "another address"
        );
        drop(r1);
        assert!(f2.enter().is_some(), "a finished request frees its place");
        assert!(
            l.acquire("10.9.9.9".parse().unwrap())
                .unwrap()
                .in_flight()
                .is_none(),
            "trusted proxies are not limited"
        );
        assert!(ConnLimit::new(5, 0, vec![])
            .acquire(a)
            .unwrap()
            .in_flight()
            .is_none());
    }
}
