//! `tccc-sidecar demo`: the embedded default. One process runs a small demo CRM on a loopback
//! port and the sidecar in front of it with a freshly generated certificate, then prints the
//! URL and the demo logins.

pub mod crm;

use crate::config::Config;
use crate::state::AppState;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Starts the demo CRM on `127.0.0.1:0`; returns its address.
pub async fn start_crm() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let crm = crm::Crm::default();
    tokio::spawn(crate::listener::accept_until(
        listener,
        std::future::pending(),
        move |tcp| {
            let crm = crm.clone();
            async move {
                let svc = service_fn(move |req| {
                    let crm = crm.clone();
                    async move { Ok::<_, Infallible>(crm.handle(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            }
        },
    ));
    Ok(addr)
}

/// Host names the demo certificate is made for: loopback names plus the listen address.
fn cert_hosts(listen: SocketAddr) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let ip = listen.ip();
    if !ip.is_loopback() && !ip.is_unspecified() {
        hosts.push(ip.to_string());
    }
    hosts
}

/// Runs the demo until SIGTERM/SIGINT.
pub async fn run(listen: SocketAddr) -> Result<(), String> {
    let crm = start_crm().await.map_err(|e| format!("demo CRM: {e}"))?;
    let dir = std::env::temp_dir().join(format!("tccc-sidecar-demo-{}", std::process::id()));
    let certs = crate::devcert::generate(&cert_hosts(listen))?;
    crate::devcert::write(&dir, &certs)?;
    let text = format!(
        "[server]\nlisten = \"{listen}\"\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\n\n[upstream]\nurl = \"http://{crm}\"\n",
        cert = dir.join("tls.crt").display(),
        key = dir.join("tls.key").display(),
    );
    let config = Config::parse(&text, std::path::Path::new("<demo>")).map_err(|e| e.to_string())?;
    let state = AppState::new(config)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen: cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let shown_host = if bound.ip().is_unspecified() || bound.ip().is_loopback() {
        "localhost".to_string()
    } else {
        bound.ip().to_string()
    };
    println!("tccc-sidecar demo is running.");
    println!();
    println!("  Open   https://{shown_host}:{}/", bound.port());
    for (user, name, password) in crm::USERS {
        println!("  Log in as {user} / {password}  ({name})");
    }
    println!();
    println!("  The certificate is signed by a development CA made just now for this demo:");
    println!("  {}", dir.join("ca.crt").display());
    println!("  Trust it in your browser, or accept the warning. Ctrl-C stops the demo.");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let rx2 = rx.clone();
    let stop = async move {
        tokio::select! {
            _ = crate::app::stopped(rx2) => {}
            _ = term.recv() => {}
        }
    };
    crate::server::serve(listener, state, stop)
        .await
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
