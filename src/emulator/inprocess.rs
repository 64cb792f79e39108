//! The emulator inside another command's process (`demo`, `dev --emulator`): its API on a
//! loopback port and its stand-in Web SDK on a TLS origin of its own, with the certificate the
//! caller's sidecar uses, so a browser that trusts one trusts both.

use super::{Emulator, EmulatorConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the in-process emulator is made of.
pub struct InProcess<'a> {
    pub sdk_app_id: u64,
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    pub seats: Vec<String>,
    /// PEM certificate chain and key for the stand-in SDK's origin.
    pub tls_cert_pem: &'a str,
    pub tls_key_pem: &'a str,
    /// The host name SdkURLs use (the certificate must name it).
    pub sdk_host: &'a str,
}

/// A running in-process emulator.
pub struct Running {
    pub api: SocketAddr,
    pub emulator: Arc<Emulator>,
}

/// Starts the API (plain HTTP on `127.0.0.1:0`) and the stand-in SDK origin (TLS on
/// `sdk_bind`, port 0). They run until the process ends.
pub async fn start(spec: InProcess<'_>, sdk_bind: std::net::IpAddr) -> Result<Running, String> {
    let api = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("emulator: {e}"))?;
    let sdk = TcpListener::bind(SocketAddr::new(sdk_bind, 0))
        .await
        .map_err(|e| format!("emulator: {e}"))?;
    let api_addr = api.local_addr().map_err(|e| e.to_string())?;
    let sdk_port = sdk.local_addr().map_err(|e| e.to_string())?.port();
    let tls = Arc::new(crate::listener::tls::simple_server_config(
        spec.tls_cert_pem,
        spec.tls_key_pem,
    )?);
    let host = if spec.sdk_host.contains(':') {
        format!("[{}]", spec.sdk_host)
    } else {
        spec.sdk_host.to_string()
    };
    let em = Arc::new(Emulator::new(EmulatorConfig {
        sdk_app_id: spec.sdk_app_id,
        secret_id: spec.secret_id.into(),
        secret_key: spec.secret_key.into(),
        session_token: None,
        seats: spec.seats,
        clock: None,
        rate_limit: 20,
        sdk_origin: format!("https://{host}:{sdk_port}"),
    }));
    tokio::spawn(super::sdk::serve_sdk(
        sdk,
        tls,
        em.clone(),
        std::future::pending(),
    ));
    tokio::spawn(super::server::serve_api(
        api,
        em.clone(),
        std::future::pending(),
    ));
    Ok(Running {
        api: api_addr,
        emulator: em,
    })
}
