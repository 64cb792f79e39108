//! TLS termination: ALPN, versions, SNI certificate choice, and certificate rotation with no
//! dropped connection (a bad new pair keeps the old one serving).

use crate::common::*;
use std::sync::Arc;

fn leaf_serial(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).unwrap();
    parsed.raw_serial().to_vec()
}

#[tokio::test]
async fn alpn_selects_h2_or_http11_and_tls12_still_works() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let t = tls_with(
        side.addr,
        side.tls_config(&[b"h2", b"http/1.1"]),
        None,
        "localhost",
    )
    .await;
    assert_eq!(t.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let t = tls_with(
        side.addr,
        side.tls_config(&[b"http/1.1"]),
        None,
        "localhost",
    )
    .await;
    assert_eq!(t.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

    let mut cfg = side.tls_config(&[b"http/1.1"]);
    cfg = rebuild_with_versions(cfg, &side.ca_pem, &[&rustls::version::TLS12]);
    let t = tls_with(side.addr, cfg, None, "localhost").await;
    assert_eq!(
        t.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert!(matches!(
        t.get_ref().1.negotiated_cipher_suite().unwrap().suite(),
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    ));
}

fn rebuild_with_versions(
    _: rustls::ClientConfig,
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg
}

#[tokio::test]
async fn min_tls_version_13_refuses_tls12_clients() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "min_tls_version = \"1.3\"", "").await;
    let cfg = rebuild_with_versions(
        side.tls_config(&[]),
        &side.ca_pem,
        &[&rustls::version::TLS12],
    );
    let tcp = tcp_from(side.addr, None).await;
    let res = within(
        "handshake",
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect("localhost".try_into().unwrap(), tcp),
    )
    .await;
    assert!(res.is_err(), "a TLS 1.2-only client must be refused");
    let (p, _) = side.h1().await.get("/").await;
    assert_eq!(p.status, 200, "TLS 1.3 clients are served");
    assert!(metric(&side.metrics(), "tccc_sidecar_tls_handshake_errors_total") >= 1.0);
}

#[tokio::test]
async fn certificate_rotation_keeps_open_connections_and_serves_the_new_one() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut old_conn = side.h1().await;
    assert_eq!(old_conn.get("/").await.0.status, 200);
    let before = leaf_serial(&side.raw().await);

    // Rotate: a new pair from the same CA would need its key; a new CA is fine for serial checks,
    // so trust both while the client checks which one it got.
    let staging = TempDir::new("rotate");
    let new_ca = write_certs(&staging, &["localhost", "127.0.0.1"]);
    // Kubernetes-like atomic replace: write beside, then rename over.
    for f in ["tls.crt", "tls.key"] {
        let tmp = side.certs.path(&format!(".{f}.tmp"));
        std::fs::copy(staging.path(f), &tmp).unwrap();
        std::fs::rename(&tmp, side.certs.path(f)).unwrap();
    }
    let both = format!("{}{}", side.ca_pem, new_ca);
    let after = within("new certificate served", async {
        loop {
            let t = raw_tls(side.addr, &both, None).await;
            let serial = leaf_serial(&t);
            if serial != before {
                return serial;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_ne!(after, before);
    // The connection opened before the rotation still works.
    assert_eq!(old_conn.get("/").await.0.status, 200);
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_tls_reloads_total{result=\"ok\"}"
        ),
        1.0
    );

    // A broken pair (key of another certificate) is refused; the last good one keeps serving.
    let other = TempDir::new("other");
    write_certs(&other, &["localhost"]);
    std::fs::copy(other.path("tls.key"), side.certs.path("tls.key")).unwrap();
    within("reload error counted", async {
        while metric(
            &side.metrics(),
            "tccc_sidecar_tls_reloads_total{result=\"error\"}",
        ) < 1.0
        {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let t = raw_tls(side.addr, &both, None).await;
    assert_eq!(leaf_serial(&t), after, "still the last good certificate");
}

#[tokio::test]
async fn sni_chooses_among_several_certificates() {
    let up = Upstream::ok("ok").await;
    let certs = TempDir::new("certs");
    let ca1 = write_certs(&certs, &["localhost", "127.0.0.1"]);
    let second = TempDir::new("second");
    let ca2 = write_certs(&second, &["crm.test", "*.wild.test"]);
    let text = base_toml(&certs, &up.url(), "", "").replace(
        "reload_interval",
        &format!(
            "certificates = [{{ cert = \"{}\", key = \"{}\" }}]\nreload_interval",
            second.path("tls.crt").display(),
            second.path("tls.key").display()
        ),
    );
    let side = Sidecar::start_with(certs, ca1.clone(), &text).await;
    let both = format!("{ca1}{ca2}");
    for (sni, ok) in [
        ("crm.test", true),
        ("a.wild.test", true),
        ("localhost", true),
    ] {
        let t = tls_with(side.addr, client_tls(&both, &[b"http/1.1"]), None, sni).await;
        assert_eq!(t.get_ref().1.peer_certificates().is_some(), ok);
    }
    // A name only the second certificate carries is verified against the second CA alone.
    tls_with(
        side.addr,
        client_tls(&ca2, &[b"http/1.1"]),
        None,
        "crm.test",
    )
    .await;
    tls_with(
        side.addr,
        client_tls(&ca2, &[b"http/1.1"]),
        None,
        "x.wild.test",
    )
    .await;
    // Unknown names get the default certificate.
    tls_with(
        side.addr,
        client_tls(&ca1, &[b"http/1.1"]),
        None,
        "localhost",
    )
    .await;
}
