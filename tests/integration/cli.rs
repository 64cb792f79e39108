//! The binary as an operator runs it: `check` like `nginx -t`, one-line errors, `--version`,
//! and `run` that serves and exits 0 on SIGTERM after draining.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tccc-sidecar");

fn config_text(certs: &TempDir, upstream: &str, extra_server: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{extra_server}\n[upstream]\nurl = \"{upstream}\"\n",
        certs.path("tls.crt").display(),
        certs.path("tls.key").display()
    )
}

fn check(text: &str, dir: &TempDir) -> (i32, String, String) {
    let path = dir.path("sidecar.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_a_good_config_and_names_file_line_and_key_otherwise() {
    let dir = TempDir::new("cli");
    write_certs(&dir, &["localhost"]);
    let good = config_text(&dir, "http://127.0.0.1:8080", "");
    let (code, out, _) = check(&good, &dir);
    assert_eq!(code, 0);
    assert!(out.contains("test is successful"), "{out}");

    let cfg = dir.path("sidecar.toml").display().to_string();
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let bad_key = good.replace("url = ", "ulr = ");
    let bad_url = good.replace("http://127.0.0.1:8080", "gopher://x");
    let bad_duration = good.replace("[server]", "[server]\nheader_read_timeout = \"soon\"");
    let missing_key = good.replace("tls.key", "missing.key");
    std::fs::write(dir.path("short-key"), "0123456789\n").unwrap();
    let short_shell_key = format!(
        "{good}\n[inject]\nmode = \"shell\"\nshell_key_file = \"{}\"\n",
        dir.path("short-key").display()
    );
    let cases = [
        (
            short_shell_key.clone(),
            format!(
                "{cfg}:{}: inject.shell_key_file: {}: the key must be at least 32 bytes",
                line_of(&short_shell_key, "shell_key_file"),
                dir.path("short-key").display()
            ),
        ),
        (
            bad_key.clone(),
            format!(
                "{cfg}:{}: upstream.ulr: unknown field",
                line_of(&bad_key, "ulr")
            ),
        ),
        (
            bad_url.clone(),
            format!("{cfg}:{}: upstream.url:", line_of(&bad_url, "url")),
        ),
        (
            bad_duration.clone(),
            format!("{cfg}:2: server.header_read_timeout: invalid duration"),
        ),
        (
            missing_key.clone(),
            format!(
                "{cfg}:{}: server.tls_key: {}: cannot read",
                line_of(&missing_key, "tls_key"),
                dir.path("missing.key").display()
            ),
        ),
    ];
    for (text, want) in cases {
        let (code, _, err) = check(&text, &dir);
        assert_eq!(code, 1, "{text}");
        assert!(
            err.starts_with(&format!("tccc-sidecar: {want}")),
            "want {want:?}, got {err:?}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(!err.contains("panicked") && !err.contains("backtrace"));
    }

    // A key that belongs to another certificate.
    let other = TempDir::new("other");
    write_certs(&other, &["localhost"]);
    std::fs::copy(other.path("tls.key"), dir.path("tls.key")).unwrap();
    let (code, _, err) = check(&good, &dir);
    assert_eq!(code, 1);
    assert!(
        err.contains("server.tls_key") && err.contains("does not match the certificate"),
        "{err}"
    );

    // Garbage where the certificate should be.
    std::fs::write(dir.path("tls.crt"), "not a certificate").unwrap();
    let (code, _, err) = check(&good, &dir);
    assert_eq!(code, 1);
    assert!(
        err.contains("server.tls_cert") && err.contains("no CERTIFICATE block"),
        "{err}"
    );
}

#[test]
fn version_help_and_bad_flags() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with(concat!("tccc-sidecar ", env!("CARGO_PKG_VERSION"))));
    for sub in ["run", "check", "cert", "demo", "emulator"] {
        let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
    }
    let out = Command::new(BIN).args(["run", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--bogus") && !err.contains("panicked"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["run", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "tccc-sidecar: /nonexistent/x.toml: cannot read: No such file or directory (os error 2)"
    );
}

#[test]
fn cert_writes_a_name_constrained_ca_and_private_keys_are_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("certcmd");
    let out = Command::new(BIN)
        .args(["cert", "--out"])
        .arg(&dir.0)
        .args(["--host", "crm.test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (f, mode) in [
        ("ca.key", 0o600),
        ("tls.key", 0o600),
        ("ca.crt", 0o644),
        ("tls.crt", 0o644),
    ] {
        let m = std::fs::metadata(dir.path(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, mode, "{f}");
    }
    let pem = std::fs::read(dir.path("ca.crt")).unwrap();
    let (_, der) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = der.parse_x509().unwrap();
    let nc = cert
        .name_constraints()
        .unwrap()
        .expect("name constraints present");
    assert!(nc.critical);
    let permitted = format!("{:?}", nc.value.permitted_subtrees);
    assert!(permitted.contains("crm.test"), "{permitted}");
}

#[tokio::test]
async fn run_serves_and_exits_zero_on_sigterm_after_draining() {
    let up = Upstream::ok("from upstream").await;
    let dir = TempDir::new("run");
    let ca = write_certs(&dir, &["localhost", "127.0.0.1"]);
    let path = dir.path("sidecar.toml");
    std::fs::write(&path, config_text(&dir, &up.url(), "")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info");
    let (mut child, rx) = spawn_reading(cmd, false);
    let mut logs = Vec::new();
    let addr = serving_addr(&rx, &mut logs);
    let mut c = Client::connect(addr, &ca, Proto::H1, None).await;
    let (parts, body) = c.get("/hello?token=SECRET").await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, "from upstream");

    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = within(
        "exit after SIGTERM",
        tokio::task::spawn_blocking(move || child.0.wait()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status.code(), Some(0));
    while let Ok(l) = rx.recv_timeout(std::time::Duration::from_secs(2)) {
        logs.push(l);
    }
    let access = logs
        .iter()
        .find(|l| l.contains("tccc_sidecar::access"))
        .expect("an access log line");
    assert!(
        access.contains("path=/hello")
            && access.contains("status=200")
            && access.contains("outcome=complete"),
        "{access}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("SECRET")),
        "the query string is never logged"
    );
    assert!(logs.iter().any(|l| l.contains("stopped")));
}

/// The address of the TLS listener from the `listen=` of the serving line; the lines read on
/// the way are kept in `logs`.
fn serving_addr(
    rx: &std::sync::mpsc::Receiver<String>,
    logs: &mut Vec<String>,
) -> std::net::SocketAddr {
    loop {
        let line = rx.recv_timeout(WAIT).expect("the serving line");
        logs.push(line.clone());
        if let Some(rest) = line.split("listen=").nth(1) {
            return rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    }
}

/// The environment the process with this id runs with now (after any re-exec).
fn environ_of(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[tokio::test]
async fn on_amd_run_starts_again_with_vector_copies_and_keeps_serving_as_the_same_process() {
    let amd = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("vendor_id") && l.contains("AuthenticAMD"));
    let up = Upstream::ok("from upstream").await;
    let dir = TempDir::new("copytune");
    let ca = write_certs(&dir, &["localhost", "127.0.0.1"]);
    let path = dir.path("sidecar.toml");
    std::fs::write(&path, config_text(&dir, &up.url(), "")).unwrap();
    let tuned = "glibc.cpu.x86_rep_movsb_threshold=4294967295";
    // (the operator's GLIBC_TUNABLES, whether the process starts again, the first tunable it
    // then runs with: glibc cuts the variable in /proc after the first one)
    let cases = [
        (None, amd, amd.then_some(tuned)),
        (
            Some("glibc.malloc.arena_max=2"),
            amd,
            Some(if amd {
                tuned
            } else {
                "glibc.malloc.arena_max=2"
            }),
        ),
        // The operator's own threshold (here glibc's default) stands.
        (
            Some("glibc.cpu.x86_rep_movsb_threshold=2112"),
            false,
            Some("glibc.cpu.x86_rep_movsb_threshold=2112"),
        ),
    ];
    for (given, restarted, first) in cases {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .env_remove("TCCC_SIDECAR_COPY_TUNED");
        match given {
            Some(v) => cmd.env("GLIBC_TUNABLES", v),
            None => cmd.env_remove("GLIBC_TUNABLES"),
        };
        let (child, rx) = spawn_reading(cmd, false);
        let addr = serving_addr(&rx, &mut Vec::new());
        // The process the operator started is the one serving, tuned or not as expected.
        let env = environ_of(child.0.id());
        let var = |name: &str| {
            env.iter()
                .find_map(|v| v.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        assert_eq!(
            var("TCCC_SIDECAR_COPY_TUNED").is_some(),
            restarted,
            "given {given:?}"
        );
        let tunables = var("GLIBC_TUNABLES");
        assert_eq!(
            tunables
                .as_deref()
                .map(|t| t.split(':').next().unwrap_or("")),
            first,
            "given {given:?}"
        );
        let mut c = Client::connect(addr, &ca, Proto::H1, None).await;
        let (parts, body) = c.get("/").await;
        assert_eq!(parts.status, 200);
        assert_eq!(body, "from upstream");
        assert_eq!(stop(child).await, Some(0), "given {given:?}");
    }
}

/// Starts `cmd` with the given stream piped; its lines arrive on the returned channel. The
/// guard kills the process if the test ends first.
pub(crate) fn spawn_reading(
    mut cmd: Command,
    stdout: bool,
) -> (ChildGuard, std::sync::mpsc::Receiver<String>) {
    if stdout {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    let mut child = ChildGuard(cmd.spawn().unwrap());
    let reader: Box<dyn std::io::Read + Send> = if stdout {
        Box::new(child.0.stdout.take().unwrap())
    } else {
        Box::new(child.0.stderr.take().unwrap())
    };
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// `tccc-sidecar run --config PATH` logging JSON to stderr, once it serves: the process, the
/// log lines so far, and its TLS and admin addresses.
pub(crate) struct Running {
    pub child: ChildGuard,
    rx: std::sync::mpsc::Receiver<String>,
    pub logs: Vec<String>,
    pub addr: std::net::SocketAddr,
    pub admin: Option<std::net::SocketAddr>,
}

pub(crate) fn run_json(path: &std::path::Path, rust_log: Option<&str>) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"]).arg(path);
    match rust_log {
        Some(l) => cmd.env("RUST_LOG", l),
        None => cmd.env_remove("RUST_LOG"),
    };
    let (child, rx) = spawn_reading(cmd, false);
    let mut logs = Vec::new();
    loop {
        let line = rx.recv_timeout(WAIT).expect("the serving line");
        logs.push(line.clone());
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if let Some(listen) = v["listen"].as_str() {
            let admin = v["admin"].as_str().and_then(|a| a.parse().ok());
            return Running {
                child,
                rx,
                logs,
                addr: listen.parse().unwrap(),
                admin,
            };
        }
    }
}

impl Running {
    /// SIGTERM; the exit code and every log line.
    pub async fn stop(self) -> (Option<i32>, Vec<String>) {
        let Running {
            mut child,
            rx,
            mut logs,
            ..
        } = self;
        unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
        let status = within("exit", tokio::task::spawn_blocking(move || child.0.wait()))
            .await
            .unwrap()
            .unwrap();
        while let Ok(l) = rx.recv_timeout(std::time::Duration::from_secs(2)) {
            logs.push(l);
        }
        (status.code(), logs)
    }
}

/// Kills the child process if the test ends before it exited on its own.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn emulator_command_serves_tokens_and_exits_zero_on_sigterm() {
    let dir = TempDir::new("emu");
    std::fs::write(dir.path("key"), "emu-secret\n").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "emulator",
        "--listen",
        "127.0.0.1:0",
        "--sdk-app-id",
        "1400000000",
        "--secret-id",
        "AKIDemu",
    ])
    .arg("--secret-key-file")
    .arg(dir.path("key"))
    .arg("--cert-dir")
    .arg(&dir.0)
    .args(["--seat", "agent@example.com", "--rate-limit", "5"]);
    let (mut child, rx) = spawn_reading(cmd, true);
    let api = loop {
        let line = rx.recv_timeout(WAIT).expect("the API line");
        if let Some(rest) = line.strip_prefix("CCC emulator API:") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let creds = tccc_sidecar::ccc::CredentialStore::fixed(tccc_sidecar::ccc::Credentials {
        secret_id: "AKIDemu".into(),
        secret_key: tccc_sidecar::ccc::Secret::new("emu-secret"),
        token: None,
    });
    let client = tccc_sidecar::ccc::CccClient::new(
        tccc_sidecar::ccc::ClientOptions::new(&api, 1400000000),
        creds,
    )
    .unwrap();
    let token = client
        .create_sdk_login_token("agent@example.com")
        .await
        .unwrap();
    assert!(token.sdk_url.starts_with("https://127.0.0.1:"));
    // The SDK origin's certificate is from the CA written to --cert-dir.
    let ca = std::fs::read_to_string(dir.path("ca.crt")).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let js = https
        .get(&token.sdk_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(js.contains(r#""state":"fresh""#));
    let stats: serde_json::Value = reqwest::get(format!("{api}/__emulator/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["seats"]["agent@example.com"]["tokens_used"], 1);

    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = within(
        "exit after SIGTERM",
        tokio::task::spawn_blocking(move || child.0.wait()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn logs_never_carry_cookies_or_authorization_even_at_trace_and_json_lines_parse() {
    let up = Upstream::ok("ok").await;
    let dir = TempDir::new("logs");
    let ca = write_certs(&dir, &["localhost", "127.0.0.1"]);
    let path = dir.path("sidecar.toml");
    let text = config_text(&dir, &up.url(), "") + "\n[log]\nformat = \"json\"\nlevel = \"trace\"\n";
    std::fs::write(&path, text).unwrap();
    let running = run_json(&path, Some("trace"));
    let addr = running.addr;
    for proto in BOTH {
        let mut c = Client::connect(addr, &ca, proto, None).await;
        let req = http::Request::get("/page;jsessionid=SECRETJSESSION?q=SECRETQUERY")
            .header("cookie", "sid=SECRETCOOKIE")
            .header("authorization", "Bearer SECRETAUTH")
            .body(empty())
            .unwrap();
        let (parts, _) = read(c.send(req).await.unwrap()).await;
        assert_eq!(parts.status, 200);
    }
    let (code, logs) = running.stop().await;
    assert_eq!(code, Some(0));
    let access: Vec<serde_json::Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "tccc_sidecar::access")
        .collect();
    assert_eq!(access.len(), 2, "one access line per request");
    assert_eq!(access[0]["path"], "/page");
    assert_eq!(access[0]["status"], 200);
    // The upstream did receive them: they were forwarded, just never logged.
    assert_eq!(
        up.requests()[0].headers["authorization"],
        "Bearer SECRETAUTH"
    );
    for l in &logs {
        for secret in [
            "SECRETCOOKIE",
            "SECRETAUTH",
            "SECRETQUERY",
            "SECRETJSESSION",
        ] {
            assert!(!l.contains(secret), "{secret} in a log line: {l}");
        }
    }
}

#[tokio::test]
async fn login_leaves_an_audit_line_without_the_sdk_url_and_sighup_reloads_seats() {
    let (em_addr, _em) = start_emulator_api(crate::login_common::em_config()).await;
    let up = Upstream::ok("ok").await;
    let dir = TempDir::new("audit");
    let ca = write_certs(&dir, &["localhost", "127.0.0.1"]);
    std::fs::write(dir.path("sid"), "AKIDlogin\n").unwrap();
    std::fs::write(dir.path("skey"), "login-secret-key\n").unwrap();
    let seats = dir.path("seats.toml");
    std::fs::write(&seats, "alice = \"agent-alice@example.com\"\n").unwrap();
    let path = dir.path("sidecar.toml");
    let text = config_text(&dir, &up.url(), "")
        + &format!(
            "\n[tccc]\nsdk_app_id = 1400000000\nendpoint = \"http://{em_addr}\"\nsecret_id_file = \"{}\"\nsecret_key_file = \"{}\"\n\n[identity]\nmode = \"header\"\ntrusted_peers = [\"127.0.0.1\"]\n\n[seats]\nfile = \"{}\"\n\n[log]\nformat = \"json\"\nlevel = \"debug\"\n",
            dir.path("sid").display(),
            dir.path("skey").display(),
            seats.display()
        );
    std::fs::write(&path, text).unwrap();
    let running = run_json(&path, None);
    let mut c = Client::connect(running.addr, &ca, Proto::H1, None).await;
    let (s, _, v) = crate::login_common::login(&mut c, &[("x-remote-user", "alice")]).await;
    crate::login_common::assert_token(s, &v);
    let sdk_url = v["SdkURL"].as_str().unwrap().to_string();
    let token = sdk_url.split("token=").nth(1).unwrap().to_string();
    let (s, _, _) = crate::login_common::login(&mut c, &[("x-remote-user", "mallory")]).await;
    assert_eq!(s, 403);

    // SIGHUP reloads the seats file and does not stop the process.
    std::fs::write(&seats, "mallory = \"agent-bob@example.com\"\n").unwrap();
    unsafe { libc::kill(running.child.0.id() as i32, libc::SIGHUP) };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (s, _, _) = crate::login_common::login(&mut c, &[("x-remote-user", "mallory")]).await;
        if s == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "seats never reloaded");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, logs) = running.stop().await;
    assert_eq!(
        code,
        Some(0),
        "SIGHUP did not end the process; SIGTERM did, cleanly"
    );
    let parsed: Vec<serde_json::Value> = logs
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let audit: Vec<&serde_json::Value> = parsed
        .iter()
        .filter(|v| v["target"] == "tccc_sidecar::audit")
        .collect();
    assert!(
        audit.len() >= 3,
        "one audit line per token request: {audit:?}"
    );
    let first = audit[0];
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["user"], "alice");
    assert_eq!(first["seat"], "agent-alice@example.com");
    assert_eq!(first["outcome"], "ok");
    assert_eq!(first["status"], 200);
    assert_eq!(first["ccc_request_id"].as_str().unwrap().len(), 36);
    assert!(first["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(audit[1]["outcome"], "no_seat");
    assert!(parsed.iter().any(|v| v["fields"]["message"]
        .as_str()
        .or(v["message"].as_str())
        .is_some_and(|m| m.contains("SIGHUP"))));
    for l in &logs {
        assert!(!l.contains(&token), "the SdkURL's token in a log line: {l}");
        assert!(
            !l.contains("login-secret-key"),
            "the SecretKey in a log line: {l}"
        );
    }
}

#[tokio::test]
async fn demo_shows_the_crm_with_the_loader_and_logs_agents_in_through_the_emulator() {
    let mut cmd = Command::new(BIN);
    cmd.args(["demo", "--listen", "127.0.0.1:0"]);
    let (_child, rx) = spawn_reading(cmd, true);
    let mut port = None;
    let mut ca = None;
    while port.is_none() || ca.is_none() {
        let line = rx.recv_timeout(WAIT).expect("the demo's instructions");
        if let Some(rest) = line.trim().strip_prefix("Open   https://localhost:") {
            port = Some(rest.trim_end_matches('/').parse::<u16>().unwrap());
        }
        if line.trim().ends_with("ca.crt") {
            ca = Some(line.trim().to_string());
        }
    }
    let (port, ca) = (port.unwrap(), std::fs::read(ca.unwrap()).unwrap());
    let http = localhost_client(&ca, port);
    let base = format!("https://localhost:{port}");
    let cookie = demo_login(&http, &base, "alice").await;
    let page = http
        .get(format!("{base}/customers"))
        .header("cookie", &cookie)
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<script src=\"/__tccc/loader.js\" data-tccc-loader defer></script></head>"),
        "{page}"
    );
    let token = http
        .post(format!("{base}/loginTCCC"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .header("x-tccc-loader", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let v: serde_json::Value = token.json().await.unwrap();
    let sdk_url = v["SdkURL"].as_str().unwrap().to_string();
    assert!(sdk_url.starts_with("https://localhost:"), "{sdk_url}");
    // The stand-in SDK, from its own origin, with CORS for the page's origin.
    let sdk_port: u16 = sdk_url["https://localhost:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let sdk_client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve(
            "localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], sdk_port)),
        )
        .build()
        .unwrap();
    let js = sdk_client
        .get(&sdk_url)
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers().contains_key("access-control-allow-origin"));
    let js = js.text().await.unwrap();
    assert!(
        js.contains("alice@demo.tccc-sidecar.example"),
        "the seat of the logged-in user"
    );
    // Logged out: no token.
    let anon = http
        .post(format!("{base}/loginTCCC"))
        .header("sec-fetch-site", "same-origin")
        .header("x-tccc-loader", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
}

/// Reads the printed `Open   https://localhost:PORT/` line and the CA path after it.
fn read_dev_banner(rx: &std::sync::mpsc::Receiver<String>) -> (u16, String, Vec<String>) {
    let (mut port, mut ca) = (None, None);
    let mut lines = Vec::new();
    loop {
        let line = rx.recv_timeout(WAIT).expect("dev's instructions");
        lines.push(line.clone());
        if let Some(rest) = line.trim().strip_prefix("Open   https://localhost:") {
            port = Some(rest.trim_end_matches('/').parse::<u16>().unwrap());
        }
        if line.trim().ends_with("ca.crt") && ca.is_none() {
            ca = Some(line.trim().to_string());
        }
        if line.contains("Ctrl-C stops it") {
            return (port.expect("the URL"), ca.expect("the CA path"), lines);
        }
    }
}

/// Logs a demo user in through the demo CRM's form; returns the session cookie (`name=value`).
async fn demo_login(http: &reqwest::Client, base: &str, user: &str) -> String {
    let login = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("user={user}&password={user}-demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn localhost_client(ca: &[u8], port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
        .resolve(
            "localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn stop(mut child: ChildGuard) -> Option<i32> {
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    within(
        "exit after SIGTERM",
        tokio::task::spawn_blocking(move || child.0.wait()),
    )
    .await
    .unwrap()
    .unwrap()
    .code()
}

#[tokio::test]
async fn dev_with_emulator_puts_a_local_app_behind_https_with_the_workbench_and_keeps_its_ca() {
    let app = Upstream::start(handler(|_| async {
        let mut r = http::Response::new(full(
            "<!doctype html><html><head><title>my app</title></head><body>hello</body></html>",
        ));
        r.headers_mut()
            .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
        r
    }))
    .await;
    let data = TempDir::new("dev-data");
    let dev = |data: &TempDir| {
        let mut cmd = Command::new(BIN);
        cmd.args(["dev", "--upstream", &app.url(), "--seat", "dev@example.com"])
            .args(["--listen", "127.0.0.1:0", "--emulator", "--data-dir"])
            .arg(&data.0);
        cmd
    };
    let (child, rx) = spawn_reading(dev(&data), true);
    let (port, ca_path, banner) = read_dev_banner(&rx);
    assert!(
        banner
            .iter()
            .any(|l| l.contains("A development CA was made")),
        "{banner:?}"
    );
    assert!(
        banner.iter().any(|l| l.contains("macOS")) && banner.iter().any(|l| l.contains("Windows"))
    );
    // The CA lives in the data directory, the user's only, and is limited to local names.
    assert!(
        ca_path.starts_with(&data.0.display().to_string()),
        "{ca_path}"
    );
    use std::os::unix::fs::PermissionsExt;
    let ca_dir = std::path::Path::new(&ca_path)
        .parent()
        .unwrap()
        .to_path_buf();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&ca_dir), 0o700);
    assert_eq!(mode(&ca_dir.join("ca.key")), 0o600);
    assert_eq!(mode(&ca_dir.join("tls.key")), 0o600);
    let ca = std::fs::read(&ca_path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&ca).unwrap();
    let cert = pem.parse_x509().unwrap();
    let nc = cert.name_constraints().unwrap().unwrap();
    assert!(nc.critical);
    let permitted = format!("{:?}", nc.value.permitted_subtrees);
    for name in [
        "localhost",
        "127, 0, 0, 1",
        "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1",
    ] {
        assert!(permitted.contains(name), "{name} in {permitted}");
    }
    assert_eq!(
        nc.value.permitted_subtrees.as_ref().unwrap().len(),
        3,
        "{permitted}"
    );

    // The app's page over HTTPS, with the loader; the app saw a forwarded request.
    let http = localhost_client(&ca, port);
    let base = format!("https://localhost:{port}");
    let page = http
        .get(format!("{base}/"))
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("<script src=\"/__tccc/loader.js\" data-tccc-loader defer></script></head>"),
        "{page}"
    );
    let seen = app.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");
    // A token for the one seat, from the in-process emulator, whose SDK origin is trusted too.
    let token = http
        .post(format!("{base}/loginTCCC"))
        .header("sec-fetch-site", "same-origin")
        .header("x-tccc-loader", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let v: serde_json::Value = token.json().await.unwrap();
    let sdk_url = v["SdkURL"].as_str().unwrap().to_string();
    assert!(sdk_url.starts_with("https://localhost:"), "{sdk_url}");
    let sdk_port: u16 = sdk_url["https://localhost:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let js = localhost_client(&ca, sdk_port)
        .get(&sdk_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(js.contains("dev@example.com"), "the seat's stand-in SDK");
    // The diagnostics page names the seat and probes the emulator's SDK origin only.
    let diag = http
        .get(format!("{base}/__tccc/diag"))
        .send()
        .await
        .unwrap();
    assert_eq!(diag.status(), 200);
    let csp = diag.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains(&format!("https://localhost:{sdk_port}"))
            && csp.contains(&format!("wss://localhost:{sdk_port}")),
        "{csp}"
    );
    assert!(
        !csp.contains("qcloud"),
        "no Tencent host probed with the emulator: {csp}"
    );
    let body = diag.text().await.unwrap();
    assert!(body.contains("seat dev@example.com"), "{body}");
    assert_eq!(stop(child).await, Some(0));

    // A second run reuses the CA (already trusted) and its certificate.
    let before = (
        std::fs::read(ca_dir.join("ca.crt")).unwrap(),
        std::fs::read(ca_dir.join("tls.crt")).unwrap(),
    );
    let (child, rx) = spawn_reading(dev(&data), true);
    let (port, _, banner) = read_dev_banner(&rx);
    assert!(
        banner.iter().any(|l| l.contains("made earlier, reused")),
        "{banner:?}"
    );
    let after = (
        std::fs::read(ca_dir.join("ca.crt")).unwrap(),
        std::fs::read(ca_dir.join("tls.crt")).unwrap(),
    );
    assert_eq!(before, after);
    let r = localhost_client(&ca, port)
        .get(format!("https://localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the old CA still verifies the server");
    assert_eq!(stop(child).await, Some(0));

    // A CA key that others can read is refused, not used.
    std::fs::set_permissions(
        ca_dir.join("ca.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = dev(&data).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ca.key") && err.contains("chmod 600"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn dev_serves_this_machine_only_and_names_what_is_missing() {
    let data = TempDir::new("dev-refuse");
    let run = |upstream: &str, args: &[&str]| {
        let out = Command::new(BIN)
            .args(["dev", "--upstream", upstream, "--seat", "dev@example.com"])
            .args(args)
            .arg("--data-dir")
            .arg(&data.0)
            .env_remove("TCCC_SDK_APP_ID")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(
        "http://127.0.0.1:9",
        &["--listen", "0.0.0.0:0", "--emulator"],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--listen") && err.contains("not a loopback address"),
        "{err}"
    );
    let (code, err) = run("http://127.0.0.1:9", &["--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--sdk-app-id"), "{err}");
    let (code, err) = run("ftp://x", &["--listen", "127.0.0.1:0", "--emulator"]);
    assert_ne!(code, Some(0));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn shutdown_delay_fails_readiness_first_and_keeps_serving_then_drains() {
    let up = Upstream::ok("from upstream").await;
    let dir = TempDir::new("delay");
    let ca = write_certs(&dir, &["localhost", "127.0.0.1"]);
    let path = dir.path("sidecar.toml");
    std::fs::write(
        &path,
        config_text(&dir, &up.url(), "shutdown_delay = \"3s\""),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info");
    let (child, rx) = spawn_reading(cmd, false);
    let (mut addr, mut admin) = (None, None);
    while addr.is_none() || admin.is_none() {
        let line = rx.recv_timeout(WAIT).expect("the serving line");
        let field = |name: &str| {
            line.split(&format!("{name}="))
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        };
        addr = addr.or(field("listen"));
        admin = admin.or(field("admin"));
    }
    let (addr, admin) = (addr.unwrap(), admin.unwrap());
    let readyz = || async move {
        reqwest::get(format!("http://{admin}/readyz"))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(readyz().await, 200);
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut status = readyz().await;
    while status != 503 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        status = readyz().await;
    }
    assert_eq!(status, 503, "/readyz fails as soon as SIGTERM arrives");
    // A new connection during the delay is still served.
    let mut c = Client::connect(addr, &ca, Proto::H1, None).await;
    let (parts, body) = c.get("/").await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, "from upstream");
    drop(c);
    assert_eq!(stop(child).await, Some(0));
}

/// `demo --host` as for browsers on other machines (127.0.0.2 stands for the machine's LAN
/// address): the page, the certificate and the stand-in SDK's origin all use that name.
#[tokio::test]
async fn demo_on_another_address_serves_the_whole_flow_under_that_name() {
    let mut cmd = Command::new(BIN);
    cmd.args(["demo", "--listen", "127.0.0.2:0", "--host", "127.0.0.2"]);
    let (_child, rx) = spawn_reading(cmd, true);
    let (mut port, mut ca) = (None, None);
    while port.is_none() || ca.is_none() {
        let line = rx.recv_timeout(WAIT).expect("the demo's instructions");
        if let Some(rest) = line.trim().strip_prefix("Open   https://127.0.0.2:") {
            port = Some(rest.trim_end_matches('/').parse::<u16>().unwrap());
        }
        if line.trim().ends_with("ca.crt") {
            ca = Some(std::fs::read(line.trim()).unwrap());
        }
    }
    let (port, ca) = (port.unwrap(), ca.unwrap());
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.2:{port}");
    let cookie = demo_login(&http, &base, "bob").await;
    let token = http
        .post(format!("{base}/loginTCCC"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .header("x-tccc-loader", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let v: serde_json::Value = token.json().await.unwrap();
    let sdk_url = v["SdkURL"].as_str().unwrap();
    assert!(sdk_url.starts_with("https://127.0.0.2:"), "{sdk_url}");
    // Verified against the demo CA by that address: what a browser elsewhere would fetch.
    let js = http.get(sdk_url).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js
        .text()
        .await
        .unwrap()
        .contains("bob@demo.tccc-sidecar.example"));
}
