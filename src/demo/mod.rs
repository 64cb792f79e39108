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

/// Host names the demo certificate is made for: loopback names plus the name browsers on
/// other machines use (`--host`, else a specific listen address).
fn cert_hosts(public_host: Option<&str>) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(h) = public_host {
        if !hosts.iter().any(|x| x == h) {
            hosts.push(h.to_string());
        }
    }
    hosts
}

/// The host browsers use: `--host`, else the listen address when it is a specific non-loopback one.
fn public_host(listen: SocketAddr, host: Option<&str>) -> Option<String> {
    if let Some(h) = host {
        return Some(h.trim_matches(['[', ']']).to_ascii_lowercase());
    }
    let ip = listen.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then(|| ip.to_string())
}

pub const SDK_APP_ID: u64 = 1400000000;
const SECRET_ID: &str = "AKIDdemo";

/// The emulator's seat for each demo user.
pub fn demo_seat(user: &str) -> String {
    format!("{user}@demo.tccc-sidecar.example")
}

/// Runs the demo until SIGTERM/SIGINT.
pub async fn run(listen: SocketAddr, host: Option<String>, shell: bool) -> Result<(), String> {
    let crm = start_crm().await.map_err(|e| format!("demo CRM: {e}"))?;
    if let Some(h) = &host {
        let bare = h.trim_matches(['[', ']']);
        if bare.is_empty()
            || !bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        {
            return Err(format!("--host: {h:?} is not a host name or IP address"));
        }
    }
    let public = public_host(listen, host.as_deref());
    let dir = std::env::temp_dir().join(format!("tccc-sidecar-demo-{}", std::process::id()));
    let certs = crate::listener::tls::devcert::generate(&cert_hosts(public.as_deref()))?;
    crate::listener::tls::devcert::write(&dir, &certs)?;
    // A key made for this run: the emulator checks the sidecar's signatures with it.
    let secret_key = hex::encode(rand::random::<[u8; 16]>());
    crate::listener::tls::devcert::write_private(&dir.join("secret-key"), secret_key.as_bytes())?;
    crate::listener::tls::devcert::write_private(&dir.join("secret-id"), SECRET_ID.as_bytes())?;
    let seats: String = crm::USERS
        .iter()
        .map(|u| format!("{} = \"{}\"\n", u.0, demo_seat(u.0)))
        .collect();
    std::fs::write(dir.join("seats.toml"), seats).map_err(|e| format!("demo seats: {e}"))?;
    // The stand-in SDK's origin must be reachable by every browser that reaches the demo: it
    // listens where the demo listens and is named as browsers name the demo.
    let sdk_host = public.clone().unwrap_or_else(|| "localhost".to_string());
    let running = crate::emulator::inprocess::start(
        crate::emulator::inprocess::InProcess {
            sdk_app_id: SDK_APP_ID,
            secret_id: SECRET_ID,
            secret_key: &secret_key,
            seats: crm::USERS.iter().map(|u| demo_seat(u.0)).collect(),
            tls_cert_pem: &certs.leaf_cert_pem,
            tls_key_pem: &certs.leaf_key_pem,
            sdk_host: &sdk_host,
        },
        listen.ip(),
    )
    .await?;
    let api = running.api;
    let text = format!(
        "[server]\nlisten = \"{listen}\"\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\n\n\
         [upstream]\nurl = \"http://{crm}\"\n\n\
         [tccc]\nsdk_app_id = {SDK_APP_ID}\nendpoint = \"http://{api}\"\nsecret_id_file = \"{d}/secret-id\"\nsecret_key_file = \"{d}/secret-key\"\nsdk_url_hosts = [\"{sdk_host}\"]\n\n\
         [identity]\nmode = \"introspect\"\nurl = \"/api/whoami\"\ncookies = [\"{cookie}\"]\nuser_pointer = \"/id\"\nlogout_paths = [\"/logout\"]\n\n\
         [seats]\nfile = \"{d}/seats.toml\"\n\n\
         [inject]\ndiag_hosts = []\nmode = \"{mode}\"\n",
        mode = if shell { "shell" } else { "script" },
        cert = dir.join("tls.crt").display(),
        key = dir.join("tls.key").display(),
        d = dir.display(),
        cookie = crm::SESSION_COOKIE,
    );
    let config = Config::parse(&text, std::path::Path::new("<demo>")).map_err(|e| e.to_string())?;
    let state = AppState::new(config).map_err(|e| e.to_string())?;
    state.start_background();
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen: cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let shown_host = match &public {
        Some(h) if h.contains(':') => format!("[{h}]"),
        Some(h) => h.clone(),
        None => "localhost".to_string(),
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
    println!("  https://{sdk_host} on another port. Click a phone number to call it.");
    if shell {
        println!("  Shell mode: the workbench stays in the tab and a call goes on while you move");
        println!("  from page to page (open a customer, add a note, go back).");
    }
    println!(
        "  Browser diagnostics: https://{shown_host}:{}/__tccc/diag",
        bound.port()
    );
    if listen.ip().is_unspecified() && public.is_none() {
        println!();
        println!("  Listening on every address: pass --host NAME (the name or address other");
        println!("  machines use) so that their browsers can reach the stand-in SDK too.");
    }
    println!();
    println!("  The certificate is signed by a development CA made just now for this demo:");
    println!("  {}", dir.join("ca.crt").display());
    println!("  Trust it in your browser, or accept the warning for both origins. Ctrl-C stops the demo.");
    crate::listener::server::serve(listener, state, crate::runtime::interrupted())
        .await
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
