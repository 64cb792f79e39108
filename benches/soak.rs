//! Soak: the sidecar binary under a sustained mixed load while everything that changes under
//! a running proxy changes, then SIGTERM with requests in flight.
//!
//! Load (closed loop, all through TLS): HTML pages that get the loader (gzip from the
//! upstream, decoded and checked: the page plus exactly one tag), a 100 KB asset (checked by
//! hash), `/loginTCCC` within its limits (every answer a token), and WebSocket echoes.
//! Meanwhile: the certificate is rotated (new connections get the new one), the seats file is
//! rewritten by a Kubernetes `..data` swap, by an atomic rename, in place (truncate and write),
//! and once replaced by a broken file (the old mapping keeps serving) and then a good one; the
//! credential files are rewritten. At the end, with an idle keep-alive connection open and
//! slow requests in flight, SIGTERM: every in-flight response completes with the right bytes,
//! the idle connection is closed, and the process exits 0 within its deadline. The resident
//! memory (VmRSS) is sampled each second; the report compares the end with minute one (with a
//! quarter of the run for runs under four minutes).
//!
//! `cargo bench --bench soak -- --seconds 600` runs for as long as asked and prints the
//! figures; under `cargo test` it runs for 20 seconds with the same checks (the memory bound
//! is loose there: 20 seconds is warm-up, not a soak). With `--with-nginx` the same load then
//! runs against nginx doing what it can of the same job (pages through `sub_filter`, assets,
//! WebSocket, a certificate reload, its graceful stop) and a side-by-side table is printed.

mod common;
use common::*;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TAG: &[u8] = b"<script src=\"/__tccc/loader.js\" data-tccc-loader defer></script>";
const USERS: usize = 60;

fn page() -> Vec<u8> {
    let mut p =
        b"<!doctype html><html><head><meta charset=\"utf-8\"><title>Soak</title></head><body>"
            .to_vec();
    while p.len() < 80 * 1024 {
        p.extend_from_slice(b"<tr><td>Shanghai Trading Co.</td><td>+86 21 5555 0101</td></tr>\n");
    }
    p.extend_from_slice(b"</body></html>\n");
    p
}

fn asset() -> Vec<u8> {
    (0..100 * 1024).map(|i| b"abcdefghij"[i % 10]).collect()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// The CRM stand-in: `/page` (gzip when asked), `/asset.js`, `/slow` (answers after a
/// second), WebSocket echo on any path.
async fn upstream(slow_seen: Arc<AtomicU64>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (page, page_gz, asset) = (
        Bytes::from(page()),
        Bytes::from(gzip(&page())),
        Bytes::from(asset()),
    );
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (page, page_gz, asset, slow_seen) = (
                page.clone(),
                page_gz.clone(),
                asset.clone(),
                slow_seen.clone(),
            );
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let (page, page_gz, asset, slow_seen) = (
                        page.clone(),
                        page_gz.clone(),
                        asset.clone(),
                        slow_seen.clone(),
                    );
                    async move {
                        if req
                            .headers()
                            .get("upgrade")
                            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
                        {
                            return Ok::<_, hyper::Error>(echo(&mut req));
                        }
                        let gz = req
                            .headers()
                            .get("accept-encoding")
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| v.contains("gzip"));
                        let (ct, body, coding) = match req.uri().path() {
                            "/page" if gz => ("text/html; charset=utf-8", page_gz, Some("gzip")),
                            "/page" => ("text/html; charset=utf-8", page, None),
                            "/slow" => {
                                slow_seen.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                ("application/octet-stream", asset, None)
                            }
                            _ => ("text/javascript", asset, None),
                        };
                        let mut b = Response::builder().header("content-type", ct);
                        if let Some(c) = coding {
                            b = b.header("content-encoding", c);
                        }
                        Ok(b.body(Full::new(body).map_err(|e| match e {}).boxed())
                            .unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn echo(req: &mut Request<Incoming>) -> Response<UpBody> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .cloned()
        .unwrap_or(hyper::header::HeaderValue::from_static(""));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(up),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}

#[derive(Default)]
struct Counts {
    pages: AtomicU64,
    assets: AtomicU64,
    tokens: AtomicU64,
    websockets: AtomicU64,
    errors: AtomicU64,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .http1_only()
        .build()
        .unwrap()
}

fn error(counts: &Counts, what: &str) {
    if counts.errors.fetch_add(1, Ordering::Relaxed) < 10 {
        eprintln!("soak error: {what}");
    }
}

async fn page_loop(side: SocketAddr, counts: Arc<Counts>, until: Instant) {
    let c = client();
    let want = page();
    while Instant::now() < until {
        let r = c
            .get(format!("https://localhost:{}/page", side.port()))
            .header("accept-encoding", "gzip")
            .header("sec-fetch-dest", "document")
            .send()
            .await;
        let ok = match r {
            Ok(r) if r.status() == 200 => {
                let gz = r
                    .headers()
                    .get("content-encoding")
                    .is_some_and(|v| v == "gzip");
                let body = r.bytes().await.unwrap_or_default();
                let mut out = Vec::new();
                let decoded = if gz {
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_end(&mut out)
                        .is_ok()
                } else {
                    out = body.to_vec();
                    true
                };
                decoded && out.windows(TAG.len()).filter(|w| *w == TAG).count() == 1 && {
                    let at = out.windows(TAG.len()).position(|w| w == TAG).unwrap();
                    out.drain(at..at + TAG.len());
                    out == want
                }
            }
            _ => false,
        };
        if ok {
            counts.pages.fetch_add(1, Ordering::Relaxed);
        } else {
            error(&counts, "page");
        }
    }
}

async fn asset_loop(side: SocketAddr, counts: Arc<Counts>, until: Instant) {
    let c = client();
    let want = Sha256::digest(asset());
    while Instant::now() < until {
        let ok = match c
            .get(format!("https://localhost:{}/asset.js", side.port()))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => {
                Sha256::digest(r.bytes().await.unwrap_or_default()) == want
            }
            _ => false,
        };
        if ok {
            counts.assets.fetch_add(1, Ordering::Relaxed);
        } else {
            error(&counts, "asset");
        }
    }
}

async fn token(c: &reqwest::Client, side: SocketAddr, user: &str) -> u16 {
    match c
        .post(format!("https://localhost:{}/loginTCCC", side.port()))
        .header("sec-fetch-site", "same-origin")
        .header("x-tccc-loader", "1")
        .header("x-remote-user", user)
        .send()
        .await
    {
        Ok(r) => {
            let s = r.status().as_u16();
            let body = r.bytes().await.unwrap_or_default();
            if s == 200 && !body.windows(6).any(|w| w == b"SdkURL") {
                return 0;
            }
            s
        }
        Err(_) => 0,
    }
}

/// One token a second per task, users taken in turn: well within the per-user and overall
/// limits (the per-client limit is raised: every agent here shares one loopback address).
async fn login_loop(side: SocketAddr, counts: Arc<Counts>, until: Instant, first: usize) {
    let c = client();
    let mut i = first;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < until {
        tick.tick().await;
        i = (i + 1) % USERS;
        match token(&c, side, &format!("user{i}")).await {
            200 => {
                counts.tokens.fetch_add(1, Ordering::Relaxed);
            }
            s => error(&counts, &format!("token {s}")),
        }
    }
}

async fn websocket_loop(side: SocketAddr, counts: Arc<Counts>, until: Instant) {
    let tls = insecure_tls();
    while Instant::now() < until {
        let ok = async {
            let tcp = tokio::net::TcpStream::connect(side).await.ok()?;
            let name = rustls_pki_types::ServerName::try_from("localhost").ok()?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .ok()?;
            let (mut ws, _) = tokio_tungstenite::client_async(
                format!("wss://localhost:{}/ws", side.port()),
                stream,
            )
            .await
            .ok()?;
            for n in 0..20 {
                let msg = format!("message {n}");
                ws.send(tokio_tungstenite::tungstenite::Message::text(msg.clone()))
                    .await
                    .ok()?;
                let back = ws.next().await?.ok()?;
                if back.to_text().ok()? != msg {
                    return None;
                }
            }
            ws.close(None).await.ok()?;
            Some(())
        }
        .await;
        if ok.is_some() {
            counts.websockets.fetch_add(1, Ordering::Relaxed);
        } else {
            error(&counts, "websocket");
        }
    }
}

/// HTTP/1.1 over TLS to whatever certificate is served (it is rotated during the run).
fn insecure_tls() -> Arc<rustls::ClientConfig> {
    let mut cfg = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

#[derive(Debug)]
struct AnyCert;

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn seats(extra: &[&str]) -> String {
    let mut s: String = (0..USERS)
        .map(|i| format!("user{i} = \"{SEAT}\"\n"))
        .collect();
    for u in extra {
        s.push_str(&format!("{u} = \"{SEAT}\"\n"));
    }
    s
}

/// Writes `text` atomically: a new file beside `path`, renamed over it.
fn replace(path: &Path, text: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The seats as Kubernetes mounts a ConfigMap: `seats.toml` → `..data/seats.toml`, `..data`
/// → a timestamped folder that an update replaces by swapping the `..data` link.
fn k8s_swap(dir: &Path, generation: u32, text: &str) {
    let folder = dir.join(format!("..gen{generation}"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("seats.toml"), text).unwrap();
    let link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(folder.file_name().unwrap(), &link).unwrap();
    std::fs::rename(&link, dir.join("..data")).unwrap();
    if std::fs::symlink_metadata(dir.join("seats.toml")).is_err() {
        std::os::unix::fs::symlink("..data/seats.toml", dir.join("seats.toml")).unwrap();
    }
}

/// Waits (bounded) until `user` gets a token: the new seats file is in force.
async fn until_token(c: &reqwest::Client, side: SocketAddr, user: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if token(c, side, user).await == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn metrics(admin: SocketAddr) -> String {
    match reqwest::get(format!("http://{admin}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or_default()
}

/// The certificate a new connection is served.
async fn served_cert(side: SocketAddr) -> Vec<u8> {
    let r = client()
        .get(format!("https://localhost:{}/asset.js", side.port()))
        .send()
        .await;
    r.ok()
        .and_then(|r| {
            r.extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|i| i.peer_certificate().map(|c| c.to_vec()))
        })
        .unwrap_or_default()
}

/// What is soaked: the sidecar, or nginx doing the part of its job that nginx can do (pages
/// through `sub_filter`, assets, WebSocket; certificate reload; graceful stop), for the
/// side-by-side figures.
#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Sidecar,
    Nginx,
}

/// nginx in its documented `sub_filter` setup, on the same certificate, in front of the same
/// upstream, with as many workers as the sidecar has threads.
fn start_nginx(dir: &Path, certs: &Path, up: SocketAddr) -> (Proc, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(&prefix).unwrap();
    let tag = String::from_utf8_lossy(TAG);
    let conf = format!(
        "worker_processes 2;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\ndaemon off;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n\
           map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}\n\
           upstream app {{ server {up}; keepalive 64; }}\n\
           gzip on; gzip_types text/html; gzip_proxied any;\n\
           server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {c}/tls.crt; ssl_certificate_key {c}/tls.key;\n\
             location / {{ proxy_pass http://app; proxy_http_version 1.1;\n\
               proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;\n\
               proxy_set_header Host $host; proxy_set_header Accept-Encoding \"\";\n\
               sub_filter '</head>' '{tag}</head>'; sub_filter_once on; }} }}\n}}\n",
        p = prefix.display(),
        c = certs.display(),
    );
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = std::process::Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(&prefix)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx on PATH (scripts/bench-deps.sh installs it)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Proc(child), addr)
}

/// VmRSS of a process and its children (nginx's master and its workers, which a reload
/// replaces).
fn tree_rss_kib(pid: u32) -> u64 {
    let mut total = rss_kib(pid);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // The parent pid is the second field after the parenthesised command name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(pid) {
                total += rss_kib(child);
            }
        }
    }
    total
}

/// One run's figures, for the side-by-side table.
#[derive(Default)]
struct Figures {
    pages: u64,
    assets: u64,
    tokens: u64,
    websockets: u64,
    errors: u64,
    /// When `rss_mark` was taken, seconds into the run.
    mark_secs: u64,
    rss_mark: u64,
    rss_end: u64,
    rss_peak: u64,
    reload: String,
    stop: String,
}

struct Check {
    passed: u32,
    failed: u32,
}

impl Check {
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
            println!("  ok    {what}");
        } else {
            self.failed += 1;
            println!("  FAIL  {what}");
        }
    }
}

async fn soak(dir: &Path, seconds: u64, peer: Peer) -> (Check, Figures) {
    let mut figures = Figures::default();
    let (_em, api) = emulator(dir, 0, &[SEAT]);
    let certs = ensure_certs(dir);
    std::fs::write(dir.join("sid"), SECRET_ID).unwrap();
    std::fs::write(dir.join("skey"), SECRET_KEY).unwrap();
    let seats_dir = dir.join("seats");
    std::fs::create_dir_all(&seats_dir).unwrap();
    k8s_swap(&seats_dir, 0, &seats(&[]));
    let slow_seen = Arc::new(AtomicU64::new(0));
    let up = upstream(slow_seen.clone()).await;
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\ntls_cert = \"{c}/tls.crt\"\ntls_key = \"{c}/tls.key\"\nreload_interval = \"1s\"\nshutdown_timeout = \"10s\"\n\n\
         [upstream]\nurl = \"http://{up}\"\n\n\
         [tccc]\nsdk_app_id = {APP}\nendpoint = \"{api}\"\nsecret_id_file = \"{d}/sid\"\nsecret_key_file = \"{d}/skey\"\n\n\
         [login]\nper_user_rate = \"30/min\"\ntotal_rate = \"15/s\"\nper_client_rate = \"600/min\"\n\n\
         [identity]\nmode = \"header\"\ntrusted_peers = [\"127.0.0.0/8\"]\n\n\
         [seats]\nfile = \"{d}/seats/seats.toml\"\n\n\
         [log]\nformat = \"json\"\nlevel = \"info\"\n",
        c = certs.display(),
        d = dir.display(),
    );
    let (proc, side) = match peer {
        Peer::Sidecar => run_sidecar(dir, &config),
        Peer::Nginx => start_nginx(dir, &certs, up),
    };
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let pid = proc.0.id();
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let counts = Arc::new(Counts::default());
    let mut load = Vec::new();
    for _ in 0..3 {
        load.push(tokio::spawn(page_loop(side, counts.clone(), until)));
    }
    load.push(tokio::spawn(asset_loop(side, counts.clone(), until)));
    for k in 0..if peer == Peer::Sidecar { 3 } else { 0 } {
        load.push(tokio::spawn(login_loop(
            side,
            counts.clone(),
            until,
            k * 20,
        )));
    }
    load.push(tokio::spawn(websocket_loop(side, counts.clone(), until)));

    let mut check = Check {
        passed: 0,
        failed: 0,
    };
    let mark = Duration::from_secs(if seconds >= 240 { 60 } else { seconds / 4 });
    let mut rss_mark = 0;
    let mut rss_peak = 0;
    let at = |f: f64| started + Duration::from_secs_f64(seconds as f64 * f);
    let c = client();
    // nginx has no seats or credentials: only the certificate changes under it.
    let last_event = if peer == Peer::Sidecar { 6 } else { 1 };
    let mut events: Vec<(Instant, u32)> = (1..=last_event)
        .map(|k| (at(0.1 * k as f64 + 0.1), k))
        .collect();
    let mut sampler = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < until {
        tokio::select! {
            _ = sampler.tick() => {
                let rss = tree_rss_kib(pid);
                rss_peak = rss_peak.max(rss);
                if rss_mark == 0 && started.elapsed() >= mark {
                    rss_mark = rss;
                }
            }
            _ = tokio::time::sleep_until(events.first().map(|e| e.0).unwrap_or(until).into()), if !events.is_empty() => {
                let (_, k) = events.remove(0);
                match k {
                    1 => {
                        let new = tccc_sidecar::listener::tls::devcert::generate(&["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
                        replace(&certs.join("tls.key"), new.leaf_key_pem.as_bytes());
                        replace(&certs.join("tls.crt"), new.leaf_cert_pem.as_bytes());
                        if peer == Peer::Nginx {
                            // nginx reads certificates again only when told (a reload).
                            unsafe { libc::kill(pid as i32, libc::SIGHUP) };
                        }
                        let want = pem_der(&new.leaf_cert_pem);
                        let deadline = Instant::now() + Duration::from_secs(15);
                        let mut got = served_cert(side).await;
                        while got != want && Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            got = served_cert(side).await;
                        }
                        figures.reload = if got == want { "new connections get the new one".into() } else { "not seen".into() };
                        check.check(got == want, "certificate rotated under load: new connections get the new one");
                    }
                    2 => {
                        k8s_swap(&seats_dir, 1, &seats(&["swapped"]));
                        check.check(until_token(&c, side, "swapped").await, "seats: Kubernetes ..data swap");
                    }
                    3 => {
                        replace(&seats_dir.join("..gen1/seats.toml"), seats(&["swapped", "renamed"]).as_bytes());
                        check.check(until_token(&c, side, "renamed").await, "seats: atomic rename");
                    }
                    4 => {
                        use std::io::Write;
                        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(seats_dir.join("..gen1/seats.toml")).unwrap();
                        f.write_all(seats(&["swapped", "renamed", "inplace"]).as_bytes()).unwrap();
                        drop(f);
                        check.check(until_token(&c, side, "inplace").await, "seats: truncated and written in place");
                    }
                    5 => {
                        k8s_swap(&seats_dir, 2, "this is = not [ toml");
                        let deadline = Instant::now() + Duration::from_secs(15);
                        let mut invalid = false;
                        while !invalid && Instant::now() < deadline {
                            invalid = metrics(admin).await.contains("tccc_sidecar_seats_file_valid 0");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        let kept = token(&c, side, "inplace").await == 200;
                        check.check(invalid && kept, "seats: a broken file is refused and the previous mapping serves");
                        k8s_swap(&seats_dir, 3, &seats(&["fixed"]));
                        check.check(until_token(&c, side, "fixed").await, "seats: the good file after the broken one");
                    }
                    _ => {
                        replace(&dir.join("sid"), SECRET_ID.as_bytes());
                        replace(&dir.join("skey"), SECRET_KEY.as_bytes());
                        check.check(until_token(&c, side, "fixed").await, "credential files rewritten: tokens go on");
                    }
                }
            }
        }
    }
    for l in load {
        let _ = l.await;
    }
    let rss_end = tree_rss_kib(pid);

    // SIGTERM with an idle keep-alive connection and slow requests in flight.
    let mut idle = {
        let tcp = tokio::net::TcpStream::connect(side).await.unwrap();
        let mut cfg = rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        s.write_all(b"GET /asset.js HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        // The whole answer, so that the connection is idle (and nothing is left to read).
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let total = loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the idle connection's first answer");
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("a sized answer");
                break end + 4 + len;
            }
        };
        while got.len() < total {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        s
    };
    let want = Sha256::digest(asset());
    let before = slow_seen.load(Ordering::SeqCst);
    let inflight: Vec<_> = (0..10)
        .map(|_| {
            let c = client();
            tokio::spawn(async move {
                match c
                    .get(format!("https://localhost:{}/slow", side.port()))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        Sha256::digest(r.bytes().await.unwrap_or_default()) == want
                    }
                    _ => false,
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow_seen.load(Ordering::SeqCst) < before + 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let term = Instant::now();
    // nginx's graceful stop is SIGQUIT (its SIGTERM is a fast one).
    let (signal, sig) = match peer {
        Peer::Sidecar => (libc::SIGTERM, "SIGTERM"),
        Peer::Nginx => (libc::SIGQUIT, "SIGQUIT"),
    };
    unsafe { libc::kill(pid as i32, signal) };
    let mut complete = 0;
    for f in inflight {
        if f.await.unwrap_or(false) {
            complete += 1;
        }
    }
    check.check(
        complete == 10,
        &format!("{sig}: {complete} of 10 in-flight responses complete, bytes checked"),
    );
    let mut buf = [0u8; 1024];
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(12), idle.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    );
    check.check(
        closed,
        &format!("{sig}: the idle keep-alive connection is closed"),
    );
    let mut proc = proc;
    let status = tokio::task::spawn_blocking(move || {
        let s = proc.0.wait();
        (s, proc)
    })
    .await
    .unwrap()
    .0;
    let exit_secs = term.elapsed().as_secs_f64();
    let code = status.ok().and_then(|s| s.code());
    figures.stop = format!(
        "{sig}: {complete}/10 in flight complete, idle {}, exit {} after {exit_secs:.1} s",
        if closed { "closed" } else { "left open" },
        code.map_or("by a signal".to_string(), |c| c.to_string()),
    );
    check.check(
        code == Some(0) && exit_secs < 12.0,
        &format!("{sig}: exit 0 after {exit_secs:.1} s (shutdown_timeout 10 s)"),
    );

    let errors = counts.errors.load(Ordering::Relaxed);
    let total = counts.pages.load(Ordering::Relaxed)
        + counts.assets.load(Ordering::Relaxed)
        + counts.tokens.load(Ordering::Relaxed)
        + counts.websockets.load(Ordering::Relaxed);
    println!(
        "\n  {seconds} s: {} pages (injected, gzip, checked), {} assets (hash), {} tokens, {} WebSocket sessions of 20 echoes; {errors} errors",
        counts.pages.load(Ordering::Relaxed),
        counts.assets.load(Ordering::Relaxed),
        counts.tokens.load(Ordering::Relaxed),
        counts.websockets.load(Ordering::Relaxed),
    );
    check.check(
        errors == 0 && total > 0,
        &format!("{total} requests and sessions, {errors} failed"),
    );
    let growth = if rss_mark > 0 {
        rss_end as f64 / rss_mark as f64
    } else {
        0.0
    };
    println!(
        "  memory (VmRSS): {rss_mark} KiB at {} s, {rss_end} KiB at the end ({:+.1}%), peak {rss_peak} KiB",
        mark.as_secs(),
        (growth - 1.0) * 100.0
    );
    figures.pages = counts.pages.load(Ordering::Relaxed);
    figures.assets = counts.assets.load(Ordering::Relaxed);
    figures.tokens = counts.tokens.load(Ordering::Relaxed);
    figures.websockets = counts.websockets.load(Ordering::Relaxed);
    figures.errors = errors;
    figures.rss_mark = rss_mark;
    figures.rss_end = rss_end;
    figures.rss_peak = rss_peak;
    figures.mark_secs = mark.as_secs();
    let bound = if seconds >= 240 { 1.05 } else { 1.5 };
    check.check(
        rss_mark > 0 && growth <= bound,
        &format!(
            "memory at the end within {:.0}% of {} s",
            (bound - 1.0) * 100.0,
            mark.as_secs()
        ),
    );
    (check, figures)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(if measuring { 300 } else { 20 });
    let dir = tempdir("soak");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let with_nginx = args.iter().any(|a| a == "--with-nginx");
    println!("# soak: {seconds} s (cargo bench --bench soak -- --seconds N [--with-nginx])");
    let (check, side) = rt.block_on(soak(&dir, seconds, Peer::Sidecar));
    if with_nginx {
        // The same load and the same changes, where nginx can do the job, on the same machine
        // right after: its figures are the bar, not a pass/fail of ours.
        println!(
            "\n# the same against nginx (sub_filter; no tokens, no seats or credentials to reload)"
        );
        let ngx_dir = dir.join("peer");
        std::fs::create_dir_all(&ngx_dir).unwrap();
        let (_, ngx) = rt.block_on(soak(&ngx_dir, seconds, Peer::Nginx));
        let growth = |f: &Figures| (f.rss_end as f64 / f.rss_mark.max(1) as f64 - 1.0) * 100.0;
        println!("\n| {seconds} s | tccc-sidecar | nginx |\n|---|---|---|");
        println!(
            "| pages (injected, checked) | {} | {} |",
            side.pages, ngx.pages
        );
        println!("| assets (hash) | {} | {} |", side.assets, ngx.assets);
        println!("| tokens | {} | n/a |", side.tokens);
        println!(
            "| WebSocket sessions of 20 echoes | {} | {} |",
            side.websockets, ngx.websockets
        );
        println!("| failed | {} | {} |", side.errors, ngx.errors);
        println!(
            "| VmRSS at {} s → end, KiB (all processes) | {} → {} ({:+.1}%) | {} → {} ({:+.1}%) |",
            side.mark_secs,
            side.rss_mark,
            side.rss_end,
            growth(&side),
            ngx.rss_mark,
            ngx.rss_end,
            growth(&ngx)
        );
        println!("| peak VmRSS, KiB | {} | {} |", side.rss_peak, ngx.rss_peak);
        println!(
            "| certificate rotated under load | {} | {} (after `nginx -s reload`) |",
            side.reload, ngx.reload
        );
        println!("| graceful stop | {} | {} |", side.stop, ngx.stop);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("soak: {} passed, {} failed", check.passed, check.failed);
    if check.failed > 0 {
        std::process::exit(1);
    }
}
