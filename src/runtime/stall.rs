//! A deadline for "no progress": armed while something waits, disarmed by progress, so that
//! a wait is timed from its start however often the waiting side is woken. The send and the
//! client body timeouts are both made of it.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// A deadline that is armed while something waits and disarmed by progress; its timer is
/// allocated the first time it is needed and reused after.
pub struct Stall {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Stall {
    pub fn new(timeout: Duration) -> Stall {
        Stall {
            timeout,
            sleep: None,
            armed: false,
        }
    }

    /// Whether waiting since `since` (now, if not already waiting) has lasted the timeout;
    /// registers for a wake-up at the deadline otherwise.
    pub fn expired(&mut self, since: Option<Instant>, cx: &mut Context<'_>) -> bool {
        let deadline = match since {
            Some(t) => t + self.timeout,
            None if self.armed => match &self.sleep {
                Some(s) => s.deadline(),
                None => Instant::now() + self.timeout,
            },
            None => Instant::now() + self.timeout,
        };
        self.armed = true;
        let sleep = match &mut self.sleep {
            Some(s) => {
                if s.deadline() != deadline {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        sleep.as_mut().poll(cx).is_ready()
    }

    pub fn progress(&mut self) {
        self.armed = false;
    }
}
