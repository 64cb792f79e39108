//! An `https` upstream: verified against `upstream.ca_file` with the URL's host as SNI,
//! refused (502) when its certificate is not trusted, and accepted without verification only
//! with the explicit `insecure_skip_verify`.

use crate::common::*;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

/// An HTTPS upstream for `localhost` whose answers name the SNI it was asked for.
async fn https_upstream(dir: &TempDir) -> u16 {
    let certs = tccc_sidecar::listener::tls::devcert::generate(&["localhost".to_string()]).unwrap();
    std::fs::write(dir.path("upstream-ca.pem"), &certs.ca_cert_pem).unwrap();
    let tls = Arc::new(
        tccc_sidecar::listener::tls::simple_server_config(
            &certs.leaf_cert_pem,
            &certs.leaf_key_pem,
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("").to_string();
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let sni = sni.clone();
                    async move {
                        let host = req
                            .headers()
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("x-sni", sni)
                                .header("x-host", host)
                                .body(full("secure upstream"))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    port
}

async fn sidecar(port: u16, upstream_extra: &str) -> Sidecar {
    let certs = TempDir::new("certs");
    let ca = write_certs(&certs, &["localhost", "127.0.0.1"]);
    let text = base_toml(
        &certs,
        &format!("https://localhost:{port}"),
        "",
        upstream_extra,
    );
    Sidecar::start_with(certs, ca, &text).await
}

#[tokio::test]
async fn https_upstream_is_verified_against_the_configured_ca_with_sni() {
    let dir = TempDir::new("up");
    let port = https_upstream(&dir).await;
    let side = sidecar(
        port,
        &format!("ca_file = \"{}\"", dir.path("upstream-ca.pem").display()),
    )
    .await;
    for proto in BOTH {
        let (parts, body) = side.client(proto, None).await.get("/").await;
        assert_eq!(parts.status, 200, "{proto:?}");
        assert_eq!(body, "secure upstream");
        assert_eq!(
            parts.headers["x-sni"], "localhost",
            "SNI is the upstream URL's host"
        );
        assert_eq!(
            parts.headers["x-host"], "localhost",
            "Host is still the client's"
        );
    }
}

#[tokio::test]
async fn untrusted_upstream_certificate_is_a_502() {
    let dir = TempDir::new("up");
    let port = https_upstream(&dir).await;
    let side = sidecar(port, "").await;
    let (parts, body) = side.h1().await.get("/").await;
    assert_eq!(parts.status, 502);
    assert!(
        !String::from_utf8_lossy(&body).contains("certificate"),
        "no internals in the page"
    );
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_upstream_errors_total{kind=\"connect\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn insecure_skip_verify_is_an_explicit_opt_out() {
    let dir = TempDir::new("up");
    let port = https_upstream(&dir).await;
    let side = sidecar(port, "insecure_skip_verify = true").await;
    let (parts, body) = side.h1().await.get("/").await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, "secure upstream");
}
