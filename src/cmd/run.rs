//! `tccc-sidecar run`: builds the state, binds the listeners, watches files, and shuts down
//! gracefully on SIGTERM or SIGINT.

use crate::cmd::error::RunError;
use crate::config::Config;
use crate::state::AppState;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Raises the soft limit on open files to the hard limit: each client connection and each
/// pooled upstream connection is a descriptor, and the usual soft limit (1024) caps a proxy
/// at a few hundred clients. Returns (before, after).
pub fn raise_fd_limit() -> Option<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return None;
    }
    let before = r.rlim_cur;
    if r.rlim_cur < r.rlim_max {
        r.rlim_cur = r.rlim_max;
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
            return Some((before, before));
        }
    }
    Some((before, r.rlim_cur))
}

/// Runs until a termination signal; errors are one line for the operator.
pub async fn run(config: Config) -> Result<(), RunError> {
    match raise_fd_limit() {
        Some((_, after)) if after < 4096 => tracing::warn!(
            limit = after,
            "open-file limit is low: about {} client connections at most; raise LimitNOFILE / ulimit -n",
            after / 2
        ),
        Some((before, after)) if after != before => {
            tracing::info!(from = before, to = after, "open-file limit raised")
        }
        _ => {}
    }
    let state = AppState::new(config)?;
    let cfg = state.config();
    let certs = crate::listener::tls::Tls::load(&cfg.server).map_err(RunError::Certificates)?;
    let tls = bind(cfg.server.listen, "server.listen").await?;
    let admin = match cfg.server.admin_listen {
        Some(a) => Some(bind(a, "server.admin_listen").await?),
        None => None,
    };
    let redirect = match cfg.server.redirect_listen {
        Some(a) => Some(bind(a, "server.redirect_listen").await?),
        None => None,
    };
    state.start_background();
    certs.watch(&cfg.server, state.metrics.clone());
    reload_on_sighup(state.clone());
    let (tx, rx) = watch::channel(false);
    let delay = cfg
        .server
        .shutdown_delay
        .map(|d| d.get())
        .unwrap_or_default();
    let terminating = state.terminating.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        terminating.store(true, std::sync::atomic::Ordering::Relaxed);
        if !delay.is_zero() {
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "shutdown requested: /readyz now fails; still serving during server.shutdown_delay"
            );
            // A second signal cuts the delay short.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = wait_for_signal() => {}
            }
        }
        tracing::info!("shutdown requested: no new connections; draining");
        let _ = tx.send(true);
    });
    let local = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        listen = %local(&tls),
        admin = %admin.as_ref().map(local).unwrap_or_default(),
        upstream = ?cfg.upstream.url,
        "tccc-sidecar {} serving",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(l) = admin {
        tokio::spawn(crate::listener::admin::serve_admin(
            l,
            state.clone(),
            crate::runtime::stopped(rx.clone()),
        ));
    }
    if let Some(l) = redirect {
        tokio::spawn(crate::listener::redirect::serve_redirect(
            l,
            state.clone(),
            crate::runtime::stopped(rx.clone()),
        ));
    }
    let workers = crate::runtime::worker_threads(cfg.server.worker_threads);
    let tls = tls.into_std().map_err(RunError::Listener)?;
    crate::listener::server::serve_workers_with(tls, state.clone(), &certs, workers, rx)
        .await
        .map_err(RunError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, key: &'static str) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Listen { key, addr, source })
}

/// SIGHUP re-reads the seats file (files are also watched; this is for operators who expect
/// the nginx habit to work).
fn reload_on_sighup(state: std::sync::Arc<AppState>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the seats file");
            state.login.seats.reload();
        }
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
