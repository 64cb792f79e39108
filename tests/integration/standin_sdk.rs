//! The emulator's stand-in Web SDK origin over the wire: the script per token with CORS,
//! single use enforced at fetch, the WebSocket the SDK holds while ready (counted per seat),
//! and outbound calls counted in the stats. (What the script does in a page is checked by
//! the browser tests.)

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tccc_sidecar::ccc::{CccClient, ClientOptions, CredentialStore, Credentials, Secret};
use tccc_sidecar::emulator::{Emulator, EmulatorConfig};
use tokio_tungstenite::tungstenite::Message;

struct Running {
    api: String,
    em: Arc<Emulator>,
    ca: String,
}

async fn start(seats: &[&str]) -> Running {
    let certs = tccc_sidecar::listener::tls::devcert::generate(&["127.0.0.1".to_string()]).unwrap();
    let tls = Arc::new(
        tccc_sidecar::listener::tls::simple_server_config(
            &certs.leaf_cert_pem,
            &certs.leaf_key_pem,
        )
        .unwrap(),
    );
    let sdk_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sdk_addr = sdk_listener.local_addr().unwrap();
    let em = Arc::new(Emulator::new(EmulatorConfig {
        sdk_app_id: 1400000000,
        secret_id: "AKIDsdk".into(),
        secret_key: "sdk-secret".into(),
        session_token: None,
        seats: seats.iter().map(|s| s.to_string()).collect(),
        clock: None,
        rate_limit: 0,
        sdk_origin: format!("https://{sdk_addr}"),
    }));
    tokio::spawn(tccc_sidecar::emulator::sdk::serve_sdk(
        sdk_listener,
        tls,
        em.clone(),
        std::future::pending(),
    ));
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", api_listener.local_addr().unwrap());
    tokio::spawn(tccc_sidecar::emulator::server::serve_api(
        api_listener,
        em.clone(),
        std::future::pending(),
    ));
    Running {
        api,
        em,
        ca: certs.ca_cert_pem,
    }
}

async fn sdk_url(r: &Running, seat: &str) -> String {
    let creds = CredentialStore::fixed(Credentials {
        secret_id: "AKIDsdk".into(),
        secret_key: Secret::new("sdk-secret"),
        token: None,
    });
    let c = CccClient::new(ClientOptions::new(&r.api, 1400000000), creds).unwrap();
    c.create_sdk_login_token(seat).await.unwrap().sdk_url
}

fn https(ca: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap()
}

fn stats(em: &Emulator) -> serde_json::Value {
    serde_json::from_str(&em.stats_json()).unwrap()
}

/// Waits (bounded) until the agent seat's counter `field` reaches `want`.
async fn wait_for_seat_stat(em: &Emulator, field: &str, want: u64) {
    within(field, async {
        while stats(em)["seats"]["agent@example.com"][field] != want {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_script_is_served_once_with_cors_then_reports_token_expired() {
    let r = start(&["agent@example.com"]).await;
    let url = sdk_url(&r, "agent@example.com").await;
    let client = https(&r.ca);
    let first = client
        .get(&url)
        .header("origin", "https://crm.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        first.headers()["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(first.headers()["cache-control"], "no-store");
    let js = first.text().await.unwrap();
    assert!(
        js.contains(r#""state":"fresh""#) && js.contains("agent@example.com"),
        "{}",
        &js[..300.min(js.len())]
    );
    assert!(js.contains("window.tccc = tccc") && !js.contains("__CONFIG__"));
    let second = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        second.contains(r#""state":"used""#),
        "single use is enforced when the script is fetched"
    );
    let unknown = client
        .get(url.split("token=").next().unwrap().to_string() + "token=nope")
        .send()
        .await
        .unwrap();
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains(r#""state":"unknown""#));
    let s = stats(&r.em);
    assert_eq!(s["seats"]["agent@example.com"]["tokens_issued"], 1);
    assert_eq!(s["seats"]["agent@example.com"]["tokens_used"], 1);
}

#[tokio::test]
async fn a_seat_name_cannot_break_out_of_the_script() {
    let seat = "x</script><script>alert(1)</script>\u{2028}@example.com";
    let r = start(&[seat]).await;
    let url = sdk_url(&r, seat).await;
    let js = https(&r.ca)
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!js.contains("</script>"), "angle brackets are escaped");
    assert!(!js.contains('\u{2028}'));
    assert!(js.contains("\\u003c/script"));
}

#[tokio::test]
async fn the_websocket_is_counted_per_seat_and_carries_calls() {
    let r = start(&["agent@example.com"]).await;
    let url = sdk_url(&r, "agent@example.com").await;
    let js = https(&r.ca)
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ws_url = js
        .split(r#""ws":""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(ws_url.starts_with("wss://127.0.0.1:"), "{ws_url}");
    let addr: std::net::SocketAddr = ws_url
        .trim_start_matches("wss://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let tls = tls_with(addr, client_tls(&r.ca, &[b"http/1.1"]), None, "127.0.0.1").await;
    let (mut ws, _) = within(
        "ws handshake",
        tokio_tungstenite::client_async(ws_url.as_str(), tls),
    )
    .await
    .unwrap();
    wait_for_seat_stat(&r.em, "websocket_connects", 1).await;
    ws.send(Message::text(
        r#"{"type":"call","phoneNumber":"+8613800000000","id":7}"#,
    ))
    .await
    .unwrap();
    let reply = within("call reply", ws.next()).await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["sessionId"].as_str().unwrap().len(), 36);
    ws.close(None).await.unwrap();
    wait_for_seat_stat(&r.em, "websocket_disconnects", 1).await;
    assert_eq!(
        stats(&r.em)["seats"]["agent@example.com"]["calls_started"],
        1
    );
}

#[tokio::test]
async fn a_websocket_needs_a_token_that_loaded_the_sdk() {
    let r = start(&["agent@example.com"]).await;
    let url = sdk_url(&r, "agent@example.com").await; // issued, never fetched
    let token = url.split("token=").nth(1).unwrap();
    let origin = url
        .split("/tccc-sdk.js")
        .next()
        .unwrap()
        .replace("https://", "");
    let addr: std::net::SocketAddr = origin.parse().unwrap();
    for t in [token, "forged"] {
        let tls = tls_with(addr, client_tls(&r.ca, &[b"http/1.1"]), None, "127.0.0.1").await;
        let res = within(
            "ws handshake",
            tokio_tungstenite::client_async(format!("wss://{origin}/ws?token={t}"), tls),
        )
        .await;
        match res {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 403)
            }
            other => panic!("{t}: expected 403, got {other:?}"),
        }
    }
    assert_eq!(
        stats(&r.em)["seats"]["agent@example.com"]["websocket_connects"],
        0
    );
}
