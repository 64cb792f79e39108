//! The official SDKs, unchanged, against the emulator: tencentcloud-sdk-python (PyPI) and
//! tencentcloud-sdk-nodejs (npm), each pointed at the emulator's address. A success and each
//! authentication failure, checked on both sides: what the SDK reported and what the
//! emulator counted. `scripts/test.sh` installs both SDKs; run it once before `cargo test`.

use std::sync::Arc;
use tccc_sidecar::emulator::{Emulator, EmulatorConfig};
use tokio::io::AsyncWriteExt;

const APP: u64 = 1400000000;
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn config(clock: Option<i64>, token: Option<&str>) -> EmulatorConfig {
    EmulatorConfig {
        sdk_app_id: APP,
        secret_id: "AKIDinterop".into(),
        secret_key: "interop-secret".into(),
        session_token: token.map(String::from),
        seats: vec!["agent@example.com".into()],
        clock,
        rate_limit: 0,
        sdk_origin: "https://127.0.0.1:9".into(),
    }
}

async fn emulator(cfg: EmulatorConfig) -> (String, Arc<Emulator>) {
    let em = Arc::new(Emulator::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(tccc_sidecar::emulator::server::serve_api(
        l,
        em.clone(),
        std::future::pending(),
    ));
    (addr.to_string(), em)
}

fn case(id: &str, key: &str, token: Option<&str>, seat: &str) -> serde_json::Value {
    serde_json::json!({ "secret_id": id, "secret_key": key, "token": token, "sdk_app_id": APP, "seat": seat })
}

/// Runs one SDK driver with `input` on stdin; returns its per-case results. `input.endpoint`
/// is the emulator's address: Python is pointed at it directly; Node, which names the
/// signing service after the endpoint's first label, keeps the real endpoint and goes through
/// the emulator as its HTTP proxy.
async fn drive(sdk: &str, mut input: serde_json::Value) -> Vec<serde_json::Value> {
    if sdk == "node" {
        let addr = input["endpoint"].as_str().unwrap().to_string();
        input["endpoint"] = "ccc.tencentcloudapi.com".into();
        input["proxy"] = format!("http://{addr}").into();
    }
    let (program, args): (&str, Vec<String>) = match sdk {
        "python" => (
            "python3",
            vec![format!("{ROOT}/tests/interop/python_sdk.py")],
        ),
        _ => ("node", vec![format!("{ROOT}/tests/interop/node/sdk.js")]),
    };
    let mut child = tokio::process::Command::new(program)
        .args(&args)
        .current_dir(format!("{ROOT}/tests/interop/node"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} not runnable ({e}): run scripts/test.sh, which installs the SDKs")
        });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the SDK driver finished")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{sdk} SDK driver failed (run scripts/test.sh to install the SDKs):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{sdk}: not JSON: {stdout}"))
}

async fn sdk_against_emulator(sdk: &str) {
    let (addr, em) = emulator(config(None, None)).await;
    let results = drive(
        sdk,
        serde_json::json!({ "endpoint": addr, "cases": [
            case("AKIDinterop", "interop-secret", None, "agent@example.com"),
            case("AKIDunknown", "interop-secret", None, "agent@example.com"),
            case("AKIDinterop", "wrong-secret", None, "agent@example.com"),
            case("AKIDinterop", "interop-secret", Some("unexpected-token"), "agent@example.com"),
            case("AKIDinterop", "interop-secret", None, "nobody@example.com"),
        ]}),
    )
    .await;
    let codes: Vec<&str> = results
        .iter()
        .map(|r| r["code"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        codes,
        [
            "Success",
            "AuthFailure.SecretIdNotFound",
            "AuthFailure.SignatureFailure",
            "AuthFailure.TokenFailure",
            "InvalidParameterValue.AccountNotExist",
        ],
        "{sdk}: {results:?}"
    );
    assert!(results[0]["sdk_url"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:9/tccc-sdk.js?token="));
    for r in &results {
        assert_eq!(
            r["request_id"].as_str().unwrap().len(),
            36,
            "{sdk}: RequestId reaches the SDK"
        );
    }
    let stats: serde_json::Value = serde_json::from_str(&em.stats_json()).unwrap();
    assert_eq!(
        stats["api_requests_total"], 5,
        "{sdk}: the SDK sent each request once"
    );
    assert_eq!(stats["seats"]["agent@example.com"]["tokens_issued"], 1);

    // Temporary credentials: the token must be sent and match.
    let (addr, _) = emulator(config(None, Some("sts-token"))).await;
    let results = drive(
        sdk,
        serde_json::json!({ "endpoint": addr, "cases": [
            case("AKIDinterop", "interop-secret", Some("sts-token"), "agent@example.com"),
            case("AKIDinterop", "interop-secret", None, "agent@example.com"),
        ]}),
    )
    .await;
    assert_eq!(results[0]["code"], "Success", "{sdk}: {results:?}");
    assert_eq!(results[1]["code"], "AuthFailure.TokenFailure");

    // An emulator clock ten minutes off: the SDK's signature has expired.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (addr, _) = emulator(config(Some(now + 600), None)).await;
    let results = drive(
        sdk,
        serde_json::json!({ "endpoint": addr, "cases": [
            case("AKIDinterop", "interop-secret", None, "agent@example.com"),
        ]}),
    )
    .await;
    assert_eq!(
        results[0]["code"], "AuthFailure.SignatureExpire",
        "{sdk}: {results:?}"
    );
}

#[tokio::test]
async fn official_python_sdk_works_against_the_emulator() {
    sdk_against_emulator("python").await;
}

#[tokio::test]
async fn official_node_sdk_works_against_the_emulator() {
    sdk_against_emulator("node").await;
}
