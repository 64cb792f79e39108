//! `tccc-sidecar emulator`: the CCC API emulator and its stand-in SDK origin as a process.

use crate::emulator::{Emulator, EmulatorConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct EmulatorArgs {
    /// The API listener (plain HTTP): point `tccc.endpoint` here.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    #[arg(long, value_name = "N")]
    pub sdk_app_id: u64,
    #[arg(long, value_name = "ID")]
    pub secret_id: String,
    /// File holding the SecretKey (else env TCCC_EMULATOR_SECRET_KEY, else --secret-key).
    #[arg(long, value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// The SecretKey on the command line: visible to other users of the machine; for tests.
    #[arg(long, value_name = "KEY")]
    pub secret_key: Option<String>,
    /// Require this session token (temporary credentials).
    #[arg(long, value_name = "TOKEN")]
    pub session_token: Option<String>,
    /// A seat (SeatUserId) that exists; repeat for more.
    #[arg(long = "seat", value_name = "USER", required = true)]
    pub seats: Vec<String>,
    /// Freeze the clock at this Unix time (replaying captured requests).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub clock: Option<i64>,
    /// Requests per second before RequestLimitExceeded; 0 = no limit.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub rate_limit: u32,
    /// The stand-in SDK's TLS listener; default: the API's address, another port.
    #[arg(long, value_name = "ADDR")]
    pub sdk_listen: Option<SocketAddr>,
    /// The host name SdkURLs use; default: the SDK listener's address.
    #[arg(long, value_name = "NAME")]
    pub sdk_host: Option<String>,
    /// Where to write the SDK origin's development CA (ca.crt); default: a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

fn secret_key(args: &EmulatorArgs) -> Result<String, String> {
    if let Some(f) = &args.secret_key_file {
        let s = std::fs::read_to_string(f)
            .map_err(|e| format!("--secret-key-file {}: {e}", f.display()))?;
        let s = s.trim().to_string();
        if s.is_empty() {
            return Err(format!("--secret-key-file {}: file is empty", f.display()));
        }
        return Ok(s);
    }
    if let Ok(s) = std::env::var("TCCC_EMULATOR_SECRET_KEY") {
        if !s.trim().is_empty() {
            return Ok(s.trim().to_string());
        }
    }
    match &args.secret_key {
        Some(k) if !k.is_empty() => {
            eprintln!(
                "tccc-sidecar: warning: --secret-key is visible in the process list; \
                 prefer --secret-key-file or TCCC_EMULATOR_SECRET_KEY"
            );
            Ok(k.clone())
        }
        _ => Err("a SecretKey is needed: --secret-key-file FILE, env TCCC_EMULATOR_SECRET_KEY, or --secret-key KEY".into()),
    }
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(args: EmulatorArgs) -> Result<(), String> {
    let key = secret_key(&args)?;
    let api = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("--listen: cannot listen on {}: {e}", args.listen))?;
    let api_addr = api.local_addr().map_err(|e| e.to_string())?;
    let sdk_bind = args.sdk_listen.unwrap_or(SocketAddr::new(api_addr.ip(), 0));
    let sdk = tokio::net::TcpListener::bind(sdk_bind)
        .await
        .map_err(|e| format!("--sdk-listen: cannot listen on {sdk_bind}: {e}"))?;
    let sdk_addr = sdk.local_addr().map_err(|e| e.to_string())?;
    let sdk_host = args
        .sdk_host
        .clone()
        .unwrap_or_else(|| match sdk_addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        });
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let bare = sdk_host.trim_matches(['[', ']']).to_string();
    if !hosts.contains(&bare) {
        hosts.push(bare);
    }
    let certs = crate::listener::tls::devcert::generate(&hosts)?;
    let dir = args.cert_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tccc-emulator-{}", std::process::id()))
    });
    crate::listener::tls::devcert::write(&dir, &certs)?;
    let tls = Arc::new(crate::listener::tls::simple_server_config(
        &certs.leaf_cert_pem,
        &certs.leaf_key_pem,
    )?);
    let sdk_origin = format!("https://{sdk_host}:{}", sdk_addr.port());
    let em = Arc::new(Emulator::new(EmulatorConfig {
        sdk_app_id: args.sdk_app_id,
        secret_id: args.secret_id.clone(),
        secret_key: key,
        session_token: args.session_token.clone(),
        seats: args.seats.clone(),
        clock: args.clock,
        rate_limit: args.rate_limit,
        sdk_origin: sdk_origin.clone(),
    }));
    println!("CCC emulator API:     http://{api_addr}   (tccc.endpoint)");
    println!(
        "stand-in SDK origin:  {sdk_origin}   (CA: {})",
        dir.join("ca.crt").display()
    );
    println!("statistics:           http://{api_addr}/__emulator/stats");
    println!("seats: {}", args.seats.join(", "));
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! { _ = term.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
        let _ = tx.send(true);
    });
    tokio::spawn(crate::emulator::sdk::serve_sdk(
        sdk,
        tls,
        em.clone(),
        crate::runtime::stopped(rx.clone()),
    ));
    crate::emulator::server::serve_api(api, em, crate::runtime::stopped(rx)).await;
    if args.cert_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
