//! What every request handler shares, in two parts.
//!
//! A [`Snapshot`]: everything a request reads from the configuration (the file itself, the
//! routing paths, the injector, the diagnostics page, the host rules), immutable and behind an
//! `ArcSwap`, so that a request takes it once when it starts and keeps it to the end, and a
//! new configuration can replace it whole ([`AppState::publish`]). Each worker thread holds
//! its own copy, so that requests on different threads never count references on one shared
//! counter. Beside it, what must outlive any one snapshot: the
//! identity source and its cache, the login endpoint with its rate limiters and CCC client,
//! the upstream connection pool, the metrics and the per-address counters.

use crate::config::Config;
use crate::identity::Identity;
use crate::login::LoginService;
use crate::runtime::metrics::Metrics;
use crate::wire::pool::Pool;
use arc_swap::ArcSwap;
use http::HeaderValue;
use std::sync::{Arc, Mutex};

/// Why the state could not be built; each message is one line naming the key or file.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The upstream client: `upstream.url`, `upstream.ca_file`, the client certificate.
    #[error("{0}")]
    Upstream(String),
    /// The identity source of the configured mode (its key files, its endpoints).
    #[error("{0}")]
    Identity(String),
    /// The login endpoint: credentials, seats file, CCC client.
    #[error("{0}")]
    Login(String),
    #[error("server.hsts: not a valid header value")]
    Hsts(#[source] http::header::InvalidHeaderValue),
}

/// What a request needs from the configuration, taken once per request.
#[derive(Clone)]
pub struct Snapshot {
    pub config: Config,
    /// `server.hsts`, ready to send.
    pub hsts: Option<HeaderValue>,
    pub inject: Arc<crate::inject::Injector>,
    /// The diagnostics page, unless `inject.diag_path` is empty.
    pub diag: Option<Arc<crate::diag::Diag>>,
    /// Session cookies set where the login endpoint will never see them (identity modes
    /// that read a cookie).
    pub cookie_scope: Option<Arc<crate::identity::cookie_scope::CookieScope>>,
    /// How the application's own URLs may begin (`UpstreamConfig::own_origins`), and their
    /// hosts: worked out once, not per answer.
    pub own_origins: Arc<Vec<String>>,
    pub own_hosts: Vec<String>,
    server_names: Vec<String>,
    public_origin: Option<String>,
}

pub struct AppState {
    /// This worker's snapshot.
    current: Arc<ArcSwap<Snapshot>>,
    /// Every worker's snapshot slot, for a new configuration to reach them all.
    workers: Arc<Mutex<Vec<Arc<ArcSwap<Snapshot>>>>>,
    /// SdkURL origins the login endpoint has seen; they outlive any one snapshot.
    learned: Arc<crate::inject::csp::LearnedOrigins>,
    /// The snapshot the process started with, for what is set up once (listeners, workers,
    /// the accept loop's timeouts).
    first: Arc<Snapshot>,
    /// Connections to the upstream; one pool per worker thread.
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
    /// Who a request's user is; used by the proxy on every request and by the login
    /// endpoint. One per process, so that its cache is.
    pub identity: Arc<Identity>,
    /// The login endpoint; one per process, shared by the workers, so that the rate limits
    /// are per process.
    pub login: Arc<LoginService>,
    /// Set on SIGTERM: `/readyz` fails from then on, during `server.shutdown_delay`.
    pub terminating: Arc<std::sync::atomic::AtomicBool>,
    /// Open connections and requests in flight per client address; shared by the workers.
    pub conn_limit: Arc<crate::runtime::per_address::ConnLimit>,
}

impl Snapshot {
    fn new(
        config: Config,
        metrics: &Arc<Metrics>,
        learned: Arc<crate::inject::csp::LearnedOrigins>,
    ) -> Result<Snapshot, StartError> {
        let hsts = match &config.server.hsts {
            Some(v) => Some(HeaderValue::from_str(v).map_err(StartError::Hsts)?),
            None => None,
        };
        let server_names = config
            .server
            .server_names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let public_origin = config
            .server
            .public_origin
            .as_deref()
            .and_then(crate::config::origin::parse_origin);
        let inject = Arc::new(crate::inject::Injector::from_config(
            &config,
            metrics.clone(),
            learned,
        ));
        let cookie_scope =
            crate::identity::cookie_scope::CookieScope::from_config(&config).map(Arc::new);
        let own_origins = Arc::new(config.upstream.own_origins());
        let own_hosts = config.upstream.own_hosts();
        let diag =
            crate::diag::Diag::from_config(&config, inject.learned.clone(), cookie_scope.clone())
                .map(Arc::new);
        Ok(Snapshot {
            config,
            hsts,
            inject,
            diag,
            cookie_scope,
            own_origins,
            own_hosts,
            server_names,
            public_origin,
        })
    }

    /// Whether `host` (with or without a port) is one this server answers for.
    pub fn host_allowed(&self, host: &str) -> bool {
        if self.server_names.is_empty() {
            return true;
        }
        let name = host_without_port(host).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        self.server_names.iter().any(|n| n == name)
    }

    /// The origin browsers use: configured, else `https://<Host>`.
    pub fn public_origin_for(&self, host: &str) -> String {
        match &self.public_origin {
            Some(o) => o.clone(),
            None => format!("https://{}", host.to_ascii_lowercase()),
        }
    }
}

impl AppState {
    /// Builds the upstream client and every feature's state; an error is one line naming the
    /// problem. Certificates are the listener's (`listener::tls::Tls`).
    pub fn new(config: Config) -> Result<Arc<AppState>, StartError> {
        let pool = Pool::new(&config.upstream).map_err(StartError::Upstream)?;
        let metrics = Arc::new(Metrics::new());
        if config.tccc.sdk_app_id.is_some()
            && !crate::config::origin::is_tencent_endpoint(&config.tccc.endpoint)
        {
            metrics.ccc_endpoint_emulator.set(1);
        }
        let learned = Arc::new(crate::inject::csp::LearnedOrigins::default());
        let identity =
            Identity::from_config(&config, metrics.clone()).map_err(StartError::Identity)?;
        let login = Arc::new(
            LoginService::from_config(&config, metrics.clone(), learned.clone())
                .map_err(StartError::Login)?,
        );
        let conn_limit = crate::runtime::per_address::ConnLimit::new(
            config.server.max_connections_per_client,
            config.server.max_requests_in_flight_per_client,
            config.server.trusted_proxies.clone(),
        );
        let snapshot = Arc::new(Snapshot::new(config, &metrics, learned.clone())?);
        let current = Arc::new(ArcSwap::new(snapshot.clone()));
        Ok(Arc::new(AppState {
            workers: Arc::new(Mutex::new(vec![current.clone()])),
            current,
            learned,
            first: snapshot,
            conn_limit,
            pool,
            metrics,
            identity,
            login,
            terminating: Default::default(),
        }))
    }

    /// The configuration the process started with: what listeners and workers are set up
    /// from once. A request reads [`AppState::snapshot`] instead.
    pub fn config(&self) -> &Config {
        &self.first.config
    }

    /// The snapshot a request works with from its start to its end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Makes `config` the configuration of every request that starts from now on, on every
    /// worker; requests in flight finish with the snapshot they started with. What lives
    /// beside the snapshot (identity, login limits, pools) is kept.
    pub fn publish(&self, config: Config) -> Result<(), StartError> {
        let snapshot = Snapshot::new(config, &self.metrics, self.learned.clone())?;
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        for slot in workers.iter() {
            slot.store(Arc::new(snapshot.clone()));
        }
        Ok(())
    }

    /// The same state with an upstream client (and connection pool) of its own, for a worker
    /// thread: a request and its upstream connection then never leave that thread.
    pub fn for_worker(&self) -> Result<Arc<AppState>, StartError> {
        let current = Arc::new(ArcSwap::new(Arc::new(Snapshot::clone(
            &self.current.load(),
        ))));
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(current.clone());
        Ok(Arc::new(AppState {
            current,
            workers: self.workers.clone(),
            learned: self.learned.clone(),
            first: self.first.clone(),
            pool: Pool::new(&self.first.config.upstream).map_err(StartError::Upstream)?,
            metrics: self.metrics.clone(),
            identity: self.identity.clone(),
            login: self.login.clone(),
            terminating: self.terminating.clone(),
            conn_limit: self.conn_limit.clone(),
        }))
    }

    /// Everything that runs beside the listeners: seats and key-file watches, JWKS refreshes,
    /// limiter housekeeping. Needs a Tokio runtime.
    pub fn start_background(self: &Arc<Self>) {
        let config = &self.first.config;
        self.identity.spawn_background(config);
        self.login.spawn_background(config);
    }
}

/// `host:port`, `[v6]:port` or a bare host → the host part.
pub fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(names: &str) -> Config {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nserver_names = [{names}]\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n"
        );
        Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
    }

    #[test]
    fn a_published_configuration_reaches_every_worker_and_spares_requests_in_flight() {
        let state = AppState::new(config("\"a.example\"")).unwrap();
        let worker = state.for_worker().unwrap();
        let in_flight = worker.snapshot();
        assert!(in_flight.host_allowed("a.example") && !in_flight.host_allowed("b.example"));
        state.publish(config("\"b.example\"")).unwrap();
        for s in [&state, &worker] {
            let now = s.snapshot();
            assert!(now.host_allowed("b.example") && !now.host_allowed("a.example"));
        }
        assert!(
            in_flight.host_allowed("a.example"),
            "a request keeps the snapshot it started with"
        );
        assert!(
            !Arc::ptr_eq(&state.snapshot(), &worker.snapshot()),
            "each worker counts references on a copy of its own"
        );
    }
}
