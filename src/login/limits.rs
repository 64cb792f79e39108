//! The three limits on token requests, checked in this order:
//!
//! 1. per client address, before identity is looked up, so that requests with random cookies
//!    cannot hammer the CRM's whoami;
//! 2. per user, after identity;
//! 3. overall, last: CCC allows an account 20 requests/s, and at a shift start hundreds of
//!    agents arrive at once. Requests are spaced evenly at the configured rate and wait their
//!    turn for at most `login.queue_timeout`; later ones are answered 429 with the time their
//!    turn would have come as `Retry-After`. Even spacing (no burst) means that in any
//!    one-second window CCC sees at most the configured rate plus one.
//!
//! All three are per process: with several replicas each must get its share.

use crate::config::Rate;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub struct Limits {
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    per_user: DefaultKeyedRateLimiter<String>,
    total: Spacing,
    queue_timeout: Duration,
    clock: DefaultClock,
}

fn quota(rate: Rate) -> Quota {
    let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let period = rate.per / count.get();
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count)
}

impl Limits {
    pub fn new(per_client: Rate, per_user: Rate, total: Rate, queue_timeout: Duration) -> Limits {
        Limits {
            per_client: RateLimiter::keyed(quota(per_client)),
            per_user: RateLimiter::keyed(quota(per_user)),
            total: Spacing::new(total),
            queue_timeout,
            clock: DefaultClock::default(),
        }
    }

    /// `Err(retry_after)` when the client address is over its limit.
    pub fn client(&self, ip: IpAddr) -> Result<(), Duration> {
        self.per_client
            .check_key(&ip)
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }

    /// `Err(retry_after)` when the user is over its limit.
    pub fn user(&self, user: &str) -> Result<(), Duration> {
        self.per_user
            .check_key(&user.to_string())
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }

    /// Waits for this request's turn under the overall limit; `Ok(waited)`, or
    /// `Err(retry_after)` when the turn is further away than the queue timeout.
    pub async fn total(&self) -> Result<Duration, Duration> {
        let now = Instant::now();
        let slot = self.total.reserve(now, self.queue_timeout)?;
        // Tokio's timer has millisecond granularity: even a sleep until "now" costs about a
        // millisecond, which is most of a login's latency. Only wait when there is a wait.
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
        Ok(slot.saturating_duration_since(now))
    }

    /// Drops per-key state that no longer limits anything, so the maps stay small.
    pub fn housekeeping(&self) {
        self.per_client.retain_recent();
        self.per_client.shrink_to_fit();
        self.per_user.retain_recent();
        self.per_user.shrink_to_fit();
    }
}

/// Even spacing: the n-th admitted request may start `n × interval` after the queue emptied.
struct Spacing {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Spacing {
    fn new(rate: Rate) -> Spacing {
        Spacing {
            interval: rate.per / rate.count.max(1),
            next: Mutex::new(None),
        }
    }

    fn reserve(&self, now: Instant, max_wait: Duration) -> Result<Instant, Duration> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.map_or(now, |n| n.max(now));
        let wait = slot - now;
        if wait > max_wait {
            return Err(wait);
        }
        *next = Some(slot + self.interval);
        Ok(slot)
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.as_secs() == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_admits_at_the_rate_and_refuses_beyond_the_queue() {
        let s = Spacing::new(Rate::per_second(10));
        let t0 = Instant::now();
        let max = Duration::from_millis(350);
        let slots: Vec<_> = (0..4).map(|_| s.reserve(t0, max).unwrap()).collect();
        assert_eq!(slots[0], t0);
        assert_eq!(slots[3] - t0, Duration::from_millis(300));
        let refused = s.reserve(t0, max).unwrap_err();
        assert_eq!(refused, Duration::from_millis(400));
        // After the queue drained, a request goes at once.
        assert_eq!(
            s.reserve(t0 + Duration::from_secs(5), max).unwrap(),
            t0 + Duration::from_secs(5)
        );
    }

    #[test]
    fn keyed_limits_are_per_key() {
        let l = Limits::new(
            Rate::per_minute(2),
            Rate::per_minute(1),
            Rate::per_second(100),
            Duration::from_secs(1),
        );
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.client(a).is_ok());
        assert!(l.client(a).is_ok());
        let wait = l.client(a).unwrap_err();
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(l.client(b).is_ok());
        assert!(l.user("alice").is_ok());
        assert!(l.user("alice").is_err());
        assert!(l.user("bob").is_ok());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
    }
}
