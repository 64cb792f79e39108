//! What every request handler shares: the configuration, the certificates, the upstream
//! connection pool and the metrics. Built once at start; parts that change at run time (certificates)
//! sit behind atomic swaps.

use crate::config::Config;
use crate::login::LoginService;
use crate::runtime::metrics::Metrics;
use crate::wire::pool::Pool;
use http::HeaderValue;
use std::net::SocketAddr;
use std::sync::Arc;

/// Facts about one client connection, shared by its requests.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The forwarding headers its requests share.
    pub forwarding: crate::wire::forwarded::PeerHeaders,
    /// Its address's requests in flight, when that address is limited.
    pub in_flight: Option<crate::runtime::per_address::InFlight>,
}

impl ConnInfo {
    pub fn new(
        peer: SocketAddr,
        in_flight: Option<crate::runtime::per_address::InFlight>,
    ) -> ConnInfo {
        ConnInfo {
            peer,
            forwarding: crate::wire::forwarded::PeerHeaders::new(peer.ip()),
            in_flight,
        }
    }
}

pub struct AppState {
    pub config: Config,
    /// Connections to the upstream; one pool per worker thread.
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
    pub hsts: Option<HeaderValue>,
    /// The login endpoint and identity; one per process, shared by the workers, so that the
    /// rate limits and the identity cache are per process.
    pub login: Arc<LoginService>,
    pub inject: Arc<crate::inject::Injector>,
    /// The diagnostics page, unless `inject.diag_path` is empty.
    pub diag: Option<Arc<crate::diag::Diag>>,
    /// Set on SIGTERM: `/readyz` fails from then on, during `server.shutdown_delay`.
    pub terminating: Arc<std::sync::atomic::AtomicBool>,
    /// Open connections per client address; shared by the workers.
    pub conn_limit: Arc<crate::runtime::per_address::ConnLimit>,
    server_names: Vec<String>,
    public_origin: Option<String>,
}

impl AppState {
    /// Builds the upstream client and every feature's state; an error is one line naming the
    /// problem. Certificates are the listener's (`listener::tls::Tls`).
    pub fn new(config: Config) -> Result<Arc<AppState>, String> {
        let pool = Pool::new(&config.upstream)?;
        let hsts = match &config.server.hsts {
            Some(v) => Some(
                HeaderValue::from_str(v)
                    .map_err(|_| "server.hsts: not a valid header value".to_string())?,
            ),
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
        let metrics = Arc::new(Metrics::new());
        if config.tccc.sdk_app_id.is_some()
            && !crate::config::origin::is_tencent_endpoint(&config.tccc.endpoint)
        {
            metrics.ccc_endpoint_emulator.set(1);
        }
        let learned = Arc::new(crate::inject::csp::LearnedOrigins::default());
        let login = Arc::new(LoginService::from_config(
            &config,
            metrics.clone(),
            learned.clone(),
        )?);
        let inject = Arc::new(crate::inject::Injector::from_config(
            &config,
            metrics.clone(),
            learned,
        ));
        let diag = crate::diag::Diag::from_config(&config, inject.learned.clone()).map(Arc::new);
        let conn_limit = crate::runtime::per_address::ConnLimit::new(
            config.server.max_connections_per_client,
            config.server.max_requests_in_flight_per_client,
            config.server.trusted_proxies.clone(),
        );
        Ok(Arc::new(AppState {
            conn_limit,
            config,
            pool,
            metrics,
            hsts,
            login,
            inject,
            diag,
            terminating: Default::default(),
            server_names,
            public_origin,
        }))
    }

    /// The same state with an upstream client (and connection pool) of its own, for a worker
    /// thread: a request and its upstream connection then never leave that thread.
    pub fn for_worker(&self) -> Result<Arc<AppState>, String> {
        Ok(Arc::new(AppState {
            config: self.config.clone(),
            pool: Pool::new(&self.config.upstream)?,
            metrics: self.metrics.clone(),
            hsts: self.hsts.clone(),
            login: self.login.clone(),
            inject: self.inject.clone(),
            diag: self.diag.clone(),
            terminating: self.terminating.clone(),
            conn_limit: self.conn_limit.clone(),
            server_names: self.server_names.clone(),
            public_origin: self.public_origin.clone(),
        }))
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

    /// Everything that runs beside the listeners: seats and key-file watches, JWKS refreshes,
    /// limiter housekeeping. Needs a Tokio runtime.
    pub fn start_background(self: &Arc<Self>) {
        self.login.spawn_background(&self.config);
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
