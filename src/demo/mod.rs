//! `tccc-sidecar demo`: the embedded default. One process runs a small demo CRM on a loopback
//! port, the CCC emulator (its API on loopback, its stand-in Web SDK on a TLS origin of its
//! own) and the sidecar in front of the CRM with a freshly generated certificate: the
//! sidecar asks the CRM who is logged in (introspect mode), maps alice and bob to emulator
//! seats, and injects the loader into the CRM's pages, so the call-center button appears
//! with no Tencent account. It prints the URL and the demo logins.

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

pub const SDK_APP_ID: u64 = 1400000000;
const SECRET_ID: &str = "AKIDdemo";

/// The emulator's seat for each demo user.
pub fn demo_seat(user: &str) -> String {
    format!("{user}@demo.tccc-sidecar.example")
}

/// Starts the emulator's API and stand-in SDK origin; returns the API address.
async fn start_emulator(
    secret_key: &str,
    certs: &crate::devcert::DevCerts,
    sdk_host: &str,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, String> {
    let api = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("demo emulator: {e}"))?;
    let sdk = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("demo emulator: {e}"))?;
    let api_addr = api.local_addr().map_err(|e| e.to_string())?;
    let sdk_port = sdk.local_addr().map_err(|e| e.to_string())?.port();
    let tls = std::sync::Arc::new(crate::tls::simple_server_config(
        &certs.leaf_cert_pem,
        &certs.leaf_key_pem,
    )?);
    let em = std::sync::Arc::new(crate::emulator::Emulator::new(
        crate::emulator::EmulatorConfig {
            sdk_app_id: SDK_APP_ID,
            secret_id: SECRET_ID.into(),
            secret_key: secret_key.into(),
            session_token: None,
            seats: crm::USERS.iter().map(|u| demo_seat(u.0)).collect(),
            clock: None,
            rate_limit: 20,
            sdk_origin: format!("https://{sdk_host}:{sdk_port}"),
        },
    ));
    tokio::spawn(crate::emulator::sdk::serve_sdk(
        sdk,
        tls,
        em.clone(),
        std::future::pending(),
    ));
    tokio::spawn(crate::emulator::server::serve_api(api, em, stop));
    Ok(api_addr)
}

/// Runs the demo until SIGTERM/SIGINT.
pub async fn run(listen: SocketAddr) -> Result<(), String> {
    let crm = start_crm().await.map_err(|e| format!("demo CRM: {e}"))?;
    let dir = std::env::temp_dir().join(format!("tccc-sidecar-demo-{}", std::process::id()));
    let certs = crate::devcert::generate(&cert_hosts(listen))?;
    crate::devcert::write(&dir, &certs)?;
    // A key made for this run: the emulator checks the sidecar's signatures with it.
    let secret_key = hex::encode(rand::random::<[u8; 16]>());
    crate::devcert::write_private(&dir.join("secret-key"), secret_key.as_bytes())?;
    crate::devcert::write_private(&dir.join("secret-id"), SECRET_ID.as_bytes())?;
    let seats: String = crm::USERS
        .iter()
        .map(|u| format!("{} = \"{}\"\n", u.0, demo_seat(u.0)))
        .collect();
    std::fs::write(dir.join("seats.toml"), seats).map_err(|e| format!("demo seats: {e}"))?;
    let sdk_host = "localhost";
    let api = start_emulator(&secret_key, &certs, sdk_host, std::future::pending()).await?;
    let text = format!(
        "[server]\nlisten = \"{listen}\"\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\n\n\
         [upstream]\nurl = \"http://{crm}\"\n\n\
         [tccc]\nsdk_app_id = {SDK_APP_ID}\nendpoint = \"http://{api}\"\nsecret_id_file = \"{d}/secret-id\"\nsecret_key_file = \"{d}/secret-key\"\nsdk_url_hosts = [\"{sdk_host}\"]\n\n\
         [identity]\nmode = \"introspect\"\nurl = \"/api/whoami\"\ncookies = [\"{cookie}\"]\nuser_pointer = \"/id\"\nlogout_paths = [\"/logout\"]\n\n\
         [seats]\nfile = \"{d}/seats.toml\"\n",
        cert = dir.join("tls.crt").display(),
        key = dir.join("tls.key").display(),
        d = dir.display(),
        cookie = crm::SESSION_COOKIE,
    );
    let config = Config::parse(&text, std::path::Path::new("<demo>")).map_err(|e| e.to_string())?;
    let state = AppState::new(config)?;
    state.start_background();
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
        println!(
            "  Log in as {user} / {password}  ({name}; seat {})",
            demo_seat(user)
        );
    }
    println!();
    println!("  The call-center button appears at the bottom right of every CRM page: the");
    println!("  sidecar injects the loader, asks the CRM who you are, and gets a login URL from");
    println!("  the CCC emulator (API http://{api}), whose stand-in Web SDK is served from");
    println!("  https://{sdk_host} on another port.");
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
