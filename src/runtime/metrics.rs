//! Prometheus metrics served on the admin listener.
//!
//! Labels are fixed, small sets (status class, error kind, reload result): no path, user, seat
//! or client address ever becomes a label, so cardinality stays bounded and nothing personal or
//! secret leaks into a scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// The per-class request counters, created once so a request does not look them up.
    by_class: [Counter; 5],
    pub requests: Family<ClassLabel, Counter>,
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    pub upstream_errors: Family<KindLabel, Counter>,
    pub rejected_requests: Family<KindLabel, Counter>,
    pub open_connections: Gauge,
    pub worker_connections: Family<WorkerLabel, Gauge>,
    pub tls_handshake_errors: Counter,
    pub tls_reloads: Family<ResultLabel, Counter>,
    pub websocket_tunnels: Gauge,
    pub login_requests: Family<OutcomeLabel, Counter>,
    pub login_duration: Histogram,
    pub ccc_duration: Histogram,
    pub identity_lookups: Family<ResultLabel, Counter>,
    pub seats_entries: Gauge,
    pub seats_file_valid: Gauge,
    pub seats_reloads: Family<ResultLabel, Counter>,
    pub injections: Family<ResultLabel, Counter>,
    pub injection_skips: Family<ReasonLabel, Counter>,
    pub shell: Family<OutcomeLabel, Counter>,
    pub connections_refused: Family<ReasonLabel, Counter>,
    pub stream_timeouts: Family<ReasonLabel, Counter>,
    pub ccc_endpoint_emulator: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    pub worker: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tccc_sidecar");
        let requests = Family::<ClassLabel, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered on the TLS listener, by status class",
            requests.clone(),
        );
        let buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let request_duration = Histogram::new(buckets);
        registry.register(
            "http_request_duration_seconds",
            "Time from request head to response head, sidecar included",
            request_duration.clone(),
        );
        let upstream_duration = Histogram::new(buckets);
        registry.register(
            "upstream_response_duration_seconds",
            "Time the upstream took to send response headers",
            upstream_duration.clone(),
        );
        let upstream_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures by kind (connect, timeout, reset, protocol)",
            upstream_errors.clone(),
        );
        let rejected_requests = Family::<KindLabel, Counter>::default();
        registry.register(
            "rejected_requests",
            "Requests refused before reaching the upstream, by reason",
            rejected_requests.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections currently open on the TLS listener",
            open_connections.clone(),
        );
        let worker_connections = Family::<WorkerLabel, Gauge>::default();
        registry.register(
            "worker_connections",
            "Client connections currently open, by worker thread (see server.worker_threads)",
            worker_connections.clone(),
        );
        let tls_handshake_errors = Counter::default();
        registry.register(
            "tls_handshake_errors",
            "TLS handshakes that failed or timed out",
            tls_handshake_errors.clone(),
        );
        let tls_reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "tls_reloads",
            "Certificate reloads after a file change, by result (ok, error)",
            tls_reloads.clone(),
        );
        let websocket_tunnels = Gauge::default();
        registry.register(
            "upgraded_tunnels",
            "Upgraded (WebSocket) connections currently open",
            websocket_tunnels.clone(),
        );
        let login_requests = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "login_requests",
            "Token requests on the login path, by outcome (ok, unauthenticated, no_seat, cross_site, rate_limited_*, ccc_*, identity_unavailable, ...)",
            login_requests.clone(),
        );
        let login_duration = Histogram::new(buckets);
        registry.register(
            "login_duration_seconds",
            "Time to answer a token request, queueing and identity lookup included",
            login_duration.clone(),
        );
        let ccc_duration = Histogram::new(buckets);
        registry.register(
            "ccc_request_duration_seconds",
            "Time CreateSDKLoginToken took, retries included",
            ccc_duration.clone(),
        );
        let identity_lookups = Family::<ResultLabel, Counter>::default();
        registry.register(
            "identity_lookups",
            "Identity lookups by result (cache_hit, user, anonymous, unavailable)",
            identity_lookups.clone(),
        );
        let seats_entries = Gauge::default();
        registry.register(
            "seats_entries",
            "Users named in the seats file currently in use",
            seats_entries.clone(),
        );
        let seats_file_valid = Gauge::default();
        registry.register(
            "seats_file_valid",
            "1 when the last read of the seats file succeeded, 0 when it failed (the previous mapping stays in use)",
            seats_file_valid.clone(),
        );
        let seats_reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "seats_reloads",
            "Seats file reloads after a change or SIGHUP, by result (ok, error)",
            seats_reloads.clone(),
        );
        let injections = Family::<ResultLabel, Counter>::default();
        registry.register(
            "injections",
            "HTML pages rewritten, by result (injected, already_present, utf16_passthrough, aborted)",
            injections.clone(),
        );
        let injection_skips = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "injection_skips",
            "Pages that did not get the loader, by reason (method, status, range, encoding, charset, xhtml, no_transform, fetch_dest, xhr, excluded, ...)",
            injection_skips.clone(),
        );
        let shell = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "shell",
            "Shell mode answers, by outcome (shell, framed, script_fallback, breakout)",
            shell.clone(),
        );
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed at accept, by reason (per_client_limit)",
            connections_refused.clone(),
        );
        let stream_timeouts = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "stream_timeouts",
            "Requests ended because the client made no progress, by reason (send: it took nothing it was sent for server.send_timeout; client_body: it sent no body bytes for server.client_body_timeout)",
            stream_timeouts.clone(),
        );
        let ccc_endpoint_emulator = Gauge::default();
        registry.register(
            "ccc_endpoint_emulator",
            "1 when tccc.endpoint is not Tencent Cloud's API (an emulator): tokens from it open no real workbench",
            ccc_endpoint_emulator.clone(),
        );
        let by_class = ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .map(|class| requests.get_or_create(&ClassLabel { class }).clone());
        Metrics {
            registry,
            by_class,
            requests,
            request_duration,
            upstream_duration,
            upstream_errors,
            rejected_requests,
            open_connections,
            worker_connections,
            tls_handshake_errors,
            tls_reloads,
            websocket_tunnels,
            login_requests,
            login_duration,
            ccc_duration,
            identity_lookups,
            seats_entries,
            seats_file_valid,
            seats_reloads,
            injections,
            injection_skips,
            shell,
            connections_refused,
            stream_timeouts,
            ccc_endpoint_emulator,
        }
    }

    /// One open-connection gauge per worker thread, as exported.
    pub fn worker_gauges(&self, workers: usize) -> Vec<Gauge> {
        (0..workers)
            .map(|i| {
                let worker = u32::try_from(i).unwrap_or(u32::MAX);
                self.worker_connections
                    .get_or_create(&WorkerLabel { worker })
                    .clone()
            })
            .collect()
    }

    pub fn count_status(&self, status: u16) {
        let i = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.by_class[i].inc();
    }

    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    pub fn rejected(&self, kind: &'static str) {
        self.rejected_requests
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    pub fn login_outcome(&self, outcome: &'static str) {
        self.login_requests
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn identity_lookup(&self, result: &'static str) {
        self.identity_lookups
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    pub fn seats_reload(&self, result: &'static str) {
        self.seats_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    pub fn injection(&self, result: &'static str) {
        self.injections.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn injection_skipped(&self, reason: &'static str) {
        self.injection_skips
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn stream_timeout(&self, reason: &'static str) {
        self.stream_timeouts
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn shell(&self, outcome: &'static str) {
        self.shell.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
