//! Connections per client address (`server.max_connections_per_client`): one address cannot
//! take every file descriptor and connection slot of the process. IPv6 clients are counted
//! per /64 (one host can use any address of its /64), IPv4-mapped addresses as IPv4. Peers in
//! `server.trusted_proxies` (load balancers, which carry many clients) are not limited. A
//! connection over the limit is closed at accept, before the TLS handshake that an attacker
//! would otherwise make the process pay for.

use crate::config::types::{any_contains, canonical_ip};
use crate::config::Cidr;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub struct ConnLimit {
    max: usize,
    exempt: Vec<Cidr>,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// A held connection slot; dropping it frees the slot.
pub struct Slot {
    limit: Option<(Arc<ConnLimit>, IpAddr)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((limit, key)) = self.limit.take() {
            let mut counts = limit.lock();
            if let Some(n) = counts.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&key);
                }
            }
        }
    }
}

impl ConnLimit {
    /// `max` = 0: no limit.
    pub fn new(max: usize, exempt: Vec<Cidr>) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            max,
            exempt,
            counts: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection from `peer`, or `None` when its address has `max` open.
    pub fn acquire(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let ip = canonical_ip(peer);
        if self.max == 0 || any_contains(&self.exempt, ip) {
            return Some(Slot { limit: None });
        }
        let key = match ip {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        };
        let mut counts = self.lock();
        let n = counts.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            limit: Some((self.clone(), key)),
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
        let l = ConnLimit::new(2, vec![proxy]);
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
        let unlimited = ConnLimit::new(0, vec![]);
        let held: Vec<_> = (0..100).map(|_| unlimited.acquire(a).unwrap()).collect();
        assert_eq!(held.len(), 100);
        assert_eq!(unlimited.addresses(), 0);
    }
}
