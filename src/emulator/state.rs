//! What the emulator remembers: its configuration, the tokens it issued (single use), a
//! one-second window for its rate limit, and the counters `/__emulator/stats` reports.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub sdk_app_id: u64,
    pub secret_id: String,
    pub secret_key: String,
    /// When set, requests must carry it as `X-TC-Token` (temporary credentials).
    pub session_token: Option<String>,
    pub seats: Vec<String>,
    /// A frozen clock (Unix seconds), for replaying captured requests.
    pub clock: Option<i64>,
    /// Requests per second before `RequestLimitExceeded`; 0 means no limit.
    pub rate_limit: u32,
    /// The origin the stand-in Web SDK is served from (`https://host:port`).
    pub sdk_origin: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct SeatStats {
    pub tokens_issued: u64,
    pub tokens_used: u64,
    pub websocket_connects: u64,
    pub websocket_disconnects: u64,
    pub calls_started: u64,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub seat: String,
    pub expires: i64,
    pub used: bool,
}

#[derive(Default)]
struct Inner {
    window: VecDeque<Instant>,
    tokens: HashMap<String, IssuedToken>,
    seats: BTreeMap<String, SeatStats>,
    answers: BTreeMap<String, u64>,
    faults: HashMap<String, &'static str>,
    delay: Duration,
    stale_next: u32,
}

pub struct Emulator {
    pub config: EmulatorConfig,
    inner: Mutex<Inner>,
}

/// Outcome of presenting a token to the stand-in SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenUse {
    Fresh { seat: String },
    Used,
    Expired,
    Unknown,
}

impl Emulator {
    pub fn new(config: EmulatorConfig) -> Emulator {
        let mut inner = Inner::default();
        for s in &config.seats {
            inner.seats.insert(s.clone(), SeatStats::default());
        }
        Emulator {
            config,
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The emulator's clock: frozen when configured, else the system's.
    pub fn now(&self) -> i64 {
        self.config.clock.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        })
    }

    /// Counts a request against the per-second limit; false when over it.
    pub fn admit(&self) -> bool {
        if self.config.rate_limit == 0 {
            return true;
        }
        let now = Instant::now();
        let mut g = self.lock();
        while g
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            g.window.pop_front();
        }
        if g.window.len() >= self.config.rate_limit as usize {
            return false;
        }
        g.window.push_back(now);
        true
    }

    /// Makes every request for `seat` fail with `code` (one of [`FAULT_CODES`]);
    /// `None` clears it. For tests of how clients handle the service's refusals.
    pub fn set_fault(&self, seat: &str, code: Option<&str>) -> Result<(), String> {
        let mut g = self.lock();
        match code {
            None => {
                g.faults.remove(seat);
            }
            Some(c) => {
                let known = FAULT_CODES
                    .iter()
                    .find(|k| **k == c)
                    .ok_or_else(|| format!("unknown fault code {c:?}"))?;
                g.faults.insert(seat.to_string(), known);
            }
        }
        Ok(())
    }

    pub fn fault_for(&self, seat: &str) -> Option<&'static str> {
        self.lock().faults.get(seat).copied()
    }

    /// Issues the next `n` tokens already used, so that the SDK reports `tokenExpired` for
    /// them: for tests of what a page does when its token went stale before it was used.
    pub fn stale_next_tokens(&self, n: u32) {
        self.lock().stale_next = n;
    }

    /// Delays every API answer by `d`, as a slow or distant service would.
    pub fn set_delay(&self, d: Duration) {
        self.lock().delay = d;
    }

    pub fn delay(&self) -> Duration {
        self.lock().delay
    }

    pub fn count_answer(&self, code: &str) {
        *self.lock().answers.entry(code.to_string()).or_default() += 1;
    }

    /// Issues a token for `seat`: (token, SdkURL, expiry).
    pub fn issue(&self, seat: &str) -> (String, String, i64) {
        let token = hex::encode(rand::random::<[u8; 16]>());
        let expires = self.now() + 600;
        let mut g = self.lock();
        let stale = g.stale_next > 0;
        g.stale_next = g.stale_next.saturating_sub(1);
        g.tokens.insert(
            token.clone(),
            IssuedToken {
                seat: seat.to_string(),
                expires,
                used: stale,
            },
        );
        g.seats.entry(seat.to_string()).or_default().tokens_issued += 1;
        let url = format!("{}/tccc-sdk.js?token={token}", self.config.sdk_origin);
        (token, url, expires)
    }

    /// Marks a token used (single use is enforced when the SDK script is fetched).
    pub fn use_token(&self, token: &str) -> TokenUse {
        let now = self.now();
        let mut g = self.lock();
        let Some(t) = g.tokens.get_mut(token) else {
            return TokenUse::Unknown;
        };
        if t.used {
            return TokenUse::Used;
        }
        if t.expires < now {
            return TokenUse::Expired;
        }
        t.used = true;
        let seat = t.seat.clone();
        g.seats.entry(seat.clone()).or_default().tokens_used += 1;
        TokenUse::Fresh { seat }
    }

    /// The seat of a token that has been presented to the SDK (the WebSocket belongs to it).
    pub fn seat_of_used_token(&self, token: &str) -> Option<String> {
        let g = self.lock();
        g.tokens
            .get(token)
            .filter(|t| t.used)
            .map(|t| t.seat.clone())
    }

    pub fn seat_event(&self, seat: &str, f: impl FnOnce(&mut SeatStats)) {
        f(self.lock().seats.entry(seat.to_string()).or_default());
    }

    /// The `/__emulator/stats` document.
    pub fn stats_json(&self) -> String {
        let g = self.lock();
        serde_json::json!({
            "seats": g.seats,
            "api_requests_by_code": g.answers,
            "api_requests_total": g.answers.values().sum::<u64>(),
        })
        .to_string()
    }
}

/// The codes a test can make the emulator answer for a seat ([`Emulator::set_fault`]): the
/// action's documented errors and the common ones a healthy request can still meet.
pub const FAULT_CODES: [&str; 8] = [
    "InternalError",
    "InternalError.DBError",
    "InvalidParameter.InstanceNotExist",
    "InvalidParameterValue.AccountNotExist",
    "InvalidParameterValue.InstanceNotExist",
    "OperationDenied.UinDisabled",
    "RequestLimitExceeded",
    "AuthFailure.SignatureFailure",
];
