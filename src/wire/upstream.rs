//! Connections to the upstream application: the connector (TCP, and TLS for an `https`
//! upstream, with its CA file or the loudly logged opt-out of verification) and a pooled
//! client for the requests the sidecar makes itself (identity introspection). Forwarded
//! requests go through [`super::pool`]. HTTP/1.1 only towards the upstream, since legacy apps
//! and WebSocket upgrades need it.

use crate::config::UpstreamConfig;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::aws_lc_rs as provider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

/// The most an upstream connection reads at once, and so the largest body chunk it hands on.
/// hyper's default read buffer grows to ~400 KB per connection; with many slow clients that
/// is the proxy's memory.
pub const READ_BUFFER: usize = 32 * 1024;

pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Builds the client; errors name the CA file and what is wrong with it. Generic over the
/// request body so that requests the sidecar makes itself (identity introspection) use the
/// same TLS and timeout settings as forwarded ones.
pub fn build<B>(cfg: &UpstreamConfig) -> Result<Client<Connector, B>, String>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connector = connector(cfg)?;
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(cfg.pool_idle_timeout.get())
        .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
        .retry_canceled_requests(true)
        .http1_max_buf_size(READ_BUFFER)
        .set_host(false)
        .build(connector))
}

/// TCP (no Nagle, keep-alive probes, the connect timeout) and, for an `https` upstream, TLS.
pub fn connector(cfg: &UpstreamConfig) -> Result<Connector, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout.get()));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let tls = client_tls(cfg)?;
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// The rustls client configuration for an `https` upstream: Mozilla's roots plus the
/// configured CA file, or (explicitly opted in) no verification at all.
pub fn client_tls(cfg: &UpstreamConfig) -> Result<rustls::ClientConfig, String> {
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("upstream TLS: {e}"))?;
    // ALPN is left to hyper-rustls, which offers http/1.1 because only HTTP/1 is enabled.
    let tls = if cfg.insecure_skip_verify {
        tracing::warn!(
            upstream = ?cfg.url,
            "upstream.insecure_skip_verify is on: the upstream's certificate is NOT verified; \
             anyone on the path to it can read and change the traffic"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &cfg.ca_file {
            let name = path.display();
            let pem = std::fs::read(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{name}: not a valid PEM certificate: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{name}: unusable CA certificate: {e}"))?;
                n += 1;
            }
            if n == 0 {
                return Err(format!("{name}: no CERTIFICATE block found"));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(tls)
}

/// Accepts any upstream certificate, but still checks handshake signatures so that the
/// session is at least bound to the key the server presented.
#[derive(Debug)]
struct NoVerify;

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider::default_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
