//! Test harness: real servers on loopback port 0, an upstream that records what it received,
//! and TLS clients (HTTP/1.1, HTTP/2, raw bytes) that trust a CA made for the test run.
//! Every wait is bounded by a timeout; nothing sleeps to synchronise.
#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tccc_sidecar::config::Config;
use tccc_sidecar::AppState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::client::TlsStream;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|n| match n {}).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A body fed by the test through a channel, for streaming and slow responses.
pub fn channel_body() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, BoxError>(Frame::data(b)), rx))
    });
    (tx, StreamBody::new(stream).boxed())
}

// ---------------------------------------------------------------- certificates

pub struct TestCerts {
    pub dir: PathBuf,
    pub ca_pem: String,
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A fresh temporary directory, removed when the returned guard drops.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "tccc-test-{}-{}-{tag}-{n}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish() & 0xffff_ffff
}

/// Writes a CA + leaf for localhost/127.0.0.1 into `dir` (ca.crt, tls.crt, tls.key).
pub fn write_certs(dir: &TempDir, hosts: &[&str]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
    let c = tccc_sidecar::listener::tls::devcert::generate(&hosts).unwrap();
    tccc_sidecar::listener::tls::devcert::write(&dir.0, &c).unwrap();
    c.ca_cert_pem
}

// ---------------------------------------------------------------- upstream

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

pub type Handler =
    Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync>;

pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Seen) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    Arc::new(move |s| Box::pin(f(s)))
}

/// An HTTP/1.1 upstream that records each request (body collected) and answers with the handler.
/// `Upgrade: websocket` requests are answered with a WebSocket echo server instead.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start(h: Handler) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s2, c2) = (seen.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    return;
                };
                c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let h = h.clone();
                let seen = s2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let h = h.clone();
                        let seen = seen.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                upstream_handle(req, peer, h, seen).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream {
            addr,
            seen,
            connections,
            task,
        }
    }

    /// An upstream answering every request with 200 and `body`.
    pub async fn ok(body: &'static str) -> Upstream {
        Upstream::start(handler(move |_| async move { Response::new(full(body)) })).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn upstream_handle(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    h: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Response<Body> {
    if req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        seen.lock().unwrap().push(Seen {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            body: Bytes::new(),
            peer,
        });
        return websocket_echo(&mut req);
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        // An aborted request body is never "seen": a real app would not act on it either.
        Err(_) => return Response::new(empty()),
    };
    let s = Seen {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        body,
        peer,
    };
    seen.lock().unwrap().push(s.clone());
    h(s).await
}

fn websocket_echo(req: &mut Request<Incoming>) -> Response<Body> {
    use futures_util::{SinkExt, StreamExt};
    let key = req.headers().get("sec-websocket-key").cloned().unwrap();
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
        // tungstenite answers a Close itself; reading on lets it flush that reply.
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
        .body(empty())
        .unwrap()
}

/// A raw TCP upstream: each connection is handed to `f`, for malformed or misbehaving servers.
pub struct RawUpstream {
    pub addr: SocketAddr,
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawUpstream {
    pub async fn start<F, Fut>(f: F) -> RawUpstream
    where
        F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c2 = connections.clone();
        let f = Arc::new(f);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let n = c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let f = f.clone();
                tokio::spawn(async move { f(tcp, n).await });
            }
        });
        RawUpstream {
            addr,
            connections,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads one HTTP/1.1 request head (through the blank line) from a raw stream.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
        if buf.ends_with(b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
    }
}

// ---------------------------------------------------------------- the sidecar

pub struct Sidecar {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub certs: TempDir,
    pub ca_pem: String,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// The TOML every test starts from; `extra` is appended (whole tables) before parsing.
pub fn base_toml(certs: &TempDir, upstream_url: &str, server_extra: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nreload_interval = \"100ms\"\n{server_extra}\n\n[upstream]\nurl = \"{upstream_url}\"\nconnect_timeout = \"2s\"\nresponse_timeout = \"5s\"\n{extra}\n",
        certs.path("tls.crt").display(),
        certs.path("tls.key").display()
    )
}

impl Sidecar {
    /// Starts the sidecar in front of `upstream_url`; `server_extra` is added to `[server]`,
    /// `extra` after `[upstream]` (it may add keys to `[upstream]` and further tables).
    pub async fn start(upstream_url: &str, server_extra: &str, extra: &str) -> Sidecar {
        let certs = TempDir::new("certs");
        let ca_pem = write_certs(&certs, &["localhost", "127.0.0.1"]);
        let text = base_toml(&certs, upstream_url, server_extra, extra);
        Sidecar::start_with(certs, ca_pem, &text).await
    }

    pub async fn start_with(certs: TempDir, ca_pem: String, text: &str) -> Sidecar {
        let config = Config::parse(text, std::path::Path::new("test.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let state = AppState::new(config).unwrap();
        state.start_background();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(tccc_sidecar::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Sidecar {
            addr,
            state,
            certs,
            ca_pem,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Signals shutdown; returns the serve task to await.
    pub fn shutdown(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap()
    }

    pub fn tls_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        client_tls(&self.ca_pem, alpn)
    }

    pub async fn h1(&self) -> Client {
        Client::connect(self.addr, &self.ca_pem, Proto::H1, None).await
    }
    pub async fn h2(&self) -> Client {
        Client::connect(self.addr, &self.ca_pem, Proto::H2, None).await
    }
    pub async fn client(&self, proto: Proto, from: Option<IpAddr>) -> Client {
        Client::connect(self.addr, &self.ca_pem, proto, from).await
    }
    /// A raw TLS stream speaking HTTP/1.1, for requests hyper's client would not send.
    pub async fn raw(&self) -> TlsStream<TcpStream> {
        raw_tls(self.addr, &self.ca_pem, None).await
    }

    pub fn metrics(&self) -> String {
        self.state.metrics.encode()
    }
}

pub fn client_tls(ca_pem: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

pub async fn tcp_from(addr: SocketAddr, from: Option<IpAddr>) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        sock.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    within("tcp connect", sock.connect(addr)).await.unwrap()
}

pub async fn tls_with(
    addr: SocketAddr,
    cfg: rustls::ClientConfig,
    from: Option<IpAddr>,
    sni: &str,
) -> TlsStream<TcpStream> {
    let tcp = tcp_from(addr, from).await;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    within(
        "tls handshake",
        connector.connect(ServerName::try_from(sni.to_string()).unwrap(), tcp),
    )
    .await
    .unwrap()
}

pub async fn raw_tls(addr: SocketAddr, ca_pem: &str, from: Option<IpAddr>) -> TlsStream<TcpStream> {
    tls_with(addr, client_tls(ca_pem, &[b"http/1.1"]), from, "localhost").await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

pub const BOTH: [Proto; 2] = [Proto::H1, Proto::H2];

pub enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

/// One client connection over TLS, HTTP/1.1 or HTTP/2 by ALPN.
pub struct Client {
    pub proto: Proto,
    sender: Sender,
}

impl Client {
    pub async fn connect(
        addr: SocketAddr,
        ca_pem: &str,
        proto: Proto,
        from: Option<IpAddr>,
    ) -> Client {
        let alpn: &[&[u8]] = match proto {
            Proto::H1 => &[b"http/1.1"],
            Proto::H2 => &[b"h2"],
        };
        let tls = tls_with(addr, client_tls(ca_pem, alpn), from, "localhost").await;
        let io = TokioIo::new(tls);
        let sender = match proto {
            Proto::H1 => {
                let (s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                });
                Sender::H1(s)
            }
            Proto::H2 => {
                let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H2(s)
            }
        };
        Client { proto, sender }
    }

    /// Sends `req` (its URI is a path; the host is `localhost:<port>` unless set).
    pub async fn send(
        &mut self,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match &mut self.sender {
            Sender::H1(s) => {
                if !req.headers().contains_key("host") {
                    req.headers_mut()
                        .insert("host", "localhost".parse().unwrap());
                }
                within("h1 ready", s.ready()).await?;
                within("h1 response", s.send_request(req)).await
            }
            Sender::H2(s) => {
                if req.uri().authority().is_none() {
                    let host = req
                        .headers()
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("localhost")
                        .to_string();
                    req.headers_mut().remove("host");
                    let pq = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or("/".into());
                    *req.uri_mut() = format!("https://{host}{pq}").parse().unwrap();
                }
                *req.version_mut() = Version::HTTP_2;
                within("h2 ready", s.ready()).await?;
                within("h2 response", s.send_request(req)).await
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> (http::response::Parts, Bytes) {
        let resp = self
            .send(Request::get(path).body(empty()).unwrap())
            .await
            .unwrap();
        read(resp).await
    }
}

pub async fn read(resp: Response<Incoming>) -> (http::response::Parts, Bytes) {
    let (parts, body) = resp.into_parts();
    let body = within("body", body.collect()).await.unwrap().to_bytes();
    (parts, body)
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(empty()).unwrap()
}

/// Writes raw bytes on a fresh TLS connection and reads until the server closes or `WAIT`.
pub async fn raw_exchange(side: &Sidecar, bytes: &[u8]) -> String {
    let mut s = side.raw().await;
    s.write_all(bytes).await.unwrap();
    read_until_close(&mut s).await
}

pub async fn read_until_close<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The numeric value of a metric line such as `tccc_sidecar_upstream_errors_total{kind="connect"}`.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|r| r.trim().split(' ').next()?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Starts the emulator's API on loopback port 0; returns its address.
pub async fn start_emulator_api(
    cfg: tccc_sidecar::emulator::EmulatorConfig,
) -> (SocketAddr, Arc<tccc_sidecar::emulator::Emulator>) {
    let em = Arc::new(tccc_sidecar::emulator::Emulator::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(tccc_sidecar::emulator::server::serve_api(
        l,
        em.clone(),
        std::future::pending(),
    ));
    (addr, em)
}
