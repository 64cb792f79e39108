//! Micro-benchmark of TC3 signing: what one CreateSDKLoginToken signature costs, against
//! the milliseconds a login takes end to end. `cargo bench --bench tc3_sign` measures;
//! under `cargo test` it runs a few iterations as a smoke test.

use std::hint::black_box;
use std::time::Instant;
use tccc_sidecar::tc3;

fn sign_once(ts: i64) -> String {
    let body = br#"{"SdkAppId":1400000000,"SeatUserId":"agent@example.com","OnlyOnce":true}"#;
    tc3::sign(
        &tc3::Request {
            method: "POST",
            host: "ccc.tencentcloudapi.com",
            query: "",
            content_type: "application/json",
            body,
            unsigned_payload: false,
            timestamp: ts,
            service: "ccc",
        },
        "AKIDEXAMPLE",
        "secretEXAMPLE",
    )
    .map(|s| s.authorization)
    .unwrap_or_default()
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (rounds, per_round) = if measuring { (7, 20_000) } else { (1, 100) };
    let mut per_sign_ns = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        for i in 0..per_round {
            black_box(sign_once(black_box(1_700_000_000 + i as i64)));
        }
        per_sign_ns.push(start.elapsed().as_nanos() as f64 / per_round as f64);
    }
    per_sign_ns.sort_by(|a, b| a.total_cmp(b));
    let median = per_sign_ns[per_sign_ns.len() / 2];
    println!(
        "tc3 sign (CreateSDKLoginToken): median {:.2} us per signature over {rounds} x {per_round} (min {:.2}, max {:.2})",
        median / 1000.0,
        per_sign_ns[0] / 1000.0,
        per_sign_ns[per_sign_ns.len() - 1] / 1000.0
    );
    assert!(!sign_once(1_700_000_000).is_empty());

    // A whole login against the emulator on loopback (no network latency at all): the
    // smallest a login can cost, to put the signature in proportion.
    let logins = if measuring { 2_000 } else { 20 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let login_us = rt.block_on(async move {
        use std::sync::Arc;
        use tccc_sidecar::ccc::{CccClient, ClientOptions, CredentialStore, Credentials, Secret};
        use tccc_sidecar::emulator::{Emulator, EmulatorConfig};
        let em = Arc::new(Emulator::new(EmulatorConfig {
            sdk_app_id: 1400000000,
            secret_id: "AKIDbench".into(),
            secret_key: "bench".into(),
            session_token: None,
            seats: vec!["agent@example.com".into()],
            clock: None,
            rate_limit: 0,
            sdk_origin: "https://127.0.0.1:9".into(),
        }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(tccc_sidecar::emulator::server::serve_api(
            l,
            em,
            std::future::pending(),
        ));
        let creds = CredentialStore::fixed(Credentials {
            secret_id: "AKIDbench".into(),
            secret_key: Secret::new("bench"),
            token: None,
        });
        let client = CccClient::new(
            ClientOptions::new(&format!("http://{addr}"), 1400000000),
            creds,
        )
        .unwrap();
        client
            .create_sdk_login_token("agent@example.com")
            .await
            .unwrap();
        let start = Instant::now();
        for _ in 0..logins {
            client
                .create_sdk_login_token("agent@example.com")
                .await
                .unwrap();
        }
        start.elapsed().as_secs_f64() * 1e6 / logins as f64
    });
    println!(
        "login against the loopback emulator: {login_us:.1} us mean over {logins}; signing is {:.1}% of it",
        100.0 * (median / 1000.0) / login_us
    );
}
