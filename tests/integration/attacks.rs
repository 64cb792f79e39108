//! What an attacker tried and what must hold: h2c upgrade smuggling, a 101 that switched
//! nothing, identity headers in every identity mode, oversized heads in one burst, request
//! targets in the wrong form, an upstream answer framed twice, clients that stop reading or
//! trickle a body, and one address holding every upstream request. Each attack is sent as the
//! attacker would and checked on both sides: what the client got, and what the upstream saw.

use crate::common::*;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const OTHER: &str = "127.0.0.2";
const THIRD: &str = "127.0.0.3";

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn status_of(out: &str) -> &str {
    out.get(9..12).unwrap_or("")
}

// ---------------------------------------------------------------- h2c smuggling

/// What one layer of the h2c upstream received: path and headers.
type Log = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// An HTTP/1.1 upstream that grants `Upgrade: h2c` as Tomcat, Jetty and Go's h2c handler do:
/// 101, then HTTP/2 on the same connection. It records plain requests and, separately, the
/// requests that arrive inside an h2c tunnel.
struct H2cUpstream {
    addr: std::net::SocketAddr,
    plain: Log,
    tunnelled: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for H2cUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2cUpstream {
    async fn start() -> H2cUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (plain, tunnelled): (Log, Log) = Default::default();
        let (p, t) = (plain.clone(), tunnelled.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (p, t) = (p.clone(), t.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |mut req: Request<Incoming>| {
                        let (p, t) = (p.clone(), t.clone());
                        async move {
                            p.lock()
                                .unwrap()
                                .push((req.uri().path().to_string(), req.headers().clone()));
                            let wants_h2c = req
                                .headers()
                                .get("upgrade")
                                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"h2c"));
                            if !wants_h2c {
                                return Ok::<_, std::convert::Infallible>(Response::new(full(
                                    "plain",
                                )));
                            }
                            let on = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                let Ok(io) = on.await else { return };
                                let inner = service_fn(move |req: Request<Incoming>| {
                                    let t = t.clone();
                                    async move {
                                        t.lock().unwrap().push((
                                            req.uri().path().to_string(),
                                            req.headers().clone(),
                                        ));
                                        Ok::<_, std::convert::Infallible>(Response::new(full(
                                            "inside the tunnel",
                                        )))
                                    }
                                });
                                let _ =
                                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                        .serve_connection(io, inner)
                                        .await;
                            });
                            Ok(Response::builder()
                                .status(StatusCode::SWITCHING_PROTOCOLS)
                                .header("connection", "upgrade")
                                .header("upgrade", "h2c")
                                .body(empty())
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
        H2cUpstream {
            addr,
            plain,
            tunnelled,
            task,
        }
    }
}

const H2C_ASK: &[u8] = b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";

/// After a 101, speaks HTTP/2 on `io` as the attacker would: an admin path, another
/// authority and an identity header. Returns the answer's body.
async fn smuggle<S>(io: S) -> Option<Bytes>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .ok()?;
    tokio::spawn(conn);
    let req = Request::get("http://internal.example/admin")
        .header("x-remote-user", "alice")
        .header("x-forwarded-for", "10.0.0.1")
        .body(empty())
        .unwrap();
    let resp = within("smuggled answer", send.send_request(req))
        .await
        .ok()?;
    Some(read(resp).await.1)
}

#[tokio::test]
async fn an_h2c_upgrade_is_never_tunnelled_and_the_request_goes_on_as_plain() {
    let up = H2cUpstream::start().await;

    // Positive control: the upstream really grants h2c and serves HTTP/2 inside the tunnel.
    let mut direct = tcp_from(up.addr, None).await;
    direct.write_all(H2C_ASK).await.unwrap();
    let head = within("direct 101", read_head(&mut direct)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let body = smuggle(direct)
        .await
        .expect("HTTP/2 inside the direct tunnel");
    assert_eq!(body, "inside the tunnel");
    assert_eq!(up.tunnelled.lock().unwrap().len(), 1);
    up.tunnelled.lock().unwrap().clear();
    up.plain.lock().unwrap().clear();

    // Through the sidecar, from an address it does not trust: no tunnel, a plain answer.
    let side = Sidecar::start(&format!("http://{}", up.addr), "", "").await;
    let mut s = raw_tls(side.addr, &side.ca_pem, ip(OTHER)).await;
    s.write_all(H2C_ASK).await.unwrap();
    let head = within("answer", read_head(&mut s)).await.unwrap();
    if head.starts_with("HTTP/1.1 101") {
        let smuggled = smuggle(s).await;
        panic!(
            "the sidecar opened an h2c tunnel; the upstream received {:?} (answer {smuggled:?})",
            up.tunnelled.lock().unwrap()
        );
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let plain = up.plain.lock().unwrap().clone();
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert_eq!(plain[0].0, "/x");
    for h in ["upgrade", "http2-settings"] {
        assert!(!plain[0].1.contains_key(h), "{h} reached the upstream");
    }
    assert!(up.tunnelled.lock().unwrap().is_empty());
    // Whatever the client sends next is read as HTTP/1.1, never as a tunnel's bytes.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let _ = read_until_close(&mut s).await;
    assert!(up.tunnelled.lock().unwrap().is_empty());
    assert!(
        metric(&side.metrics(), "tccc_sidecar_websocket_tunnels ") == 0.0,
        "no tunnel is open"
    );
}

#[tokio::test]
async fn upgrades_are_tunnelled_only_when_listed() {
    // An upstream that grants whatever it is asked for, then echoes bytes.
    let up = RawUpstream::start(|mut tcp, _| async move {
        let Some(head) = read_head(&mut tcp).await else {
            return;
        };
        let proto = head
            .lines()
            .find_map(|l| l.strip_prefix("upgrade: ").or(l.strip_prefix("Upgrade: ")))
            .map(str::to_string);
        match proto {
            Some(p) => {
                let ans = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: {p}\r\n\r\n"
                );
                let _ = tcp.write_all(ans.as_bytes()).await;
                let mut buf = [0u8; 64];
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 || tcp.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
            None => {
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain")
                    .await;
            }
        }
    })
    .await;
    let ask =
        b"GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: chat-v1\r\n\r\n";
    // Not listed: forwarded as a plain request, answered plainly.
    let side = Sidecar::start(&up.url(), "", "").await;
    let out = raw_exchange(&side, ask).await;
    assert_eq!(status_of(&out), "200", "{out}");
    assert!(out.ends_with("plain"), "{out}");
    // Listed: tunnelled, bytes echoed.
    let side = Sidecar::start(
        &up.url(),
        "allowed_upgrades = [\"websocket\", \"chat-v1\"]",
        "",
    )
    .await;
    let mut s = side.raw().await;
    s.write_all(ask).await.unwrap();
    let head = within("101", read_head(&mut s)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    within("echo", s.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"ping");
    // h2c can never be listed.
    let certs = TempDir::new("h2c");
    let text = base_toml(&certs, &up.url(), "allowed_upgrades = [\"h2c\"]", "");
    let e = tccc_sidecar::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap_err();
    assert_eq!(e.key, "server.allowed_upgrades", "{e}");
}

#[tokio::test]
async fn a_101_with_a_wrong_websocket_accept_opens_no_tunnel() {
    let after: Arc<Mutex<Vec<u8>>> = Default::default();
    let a2 = after.clone();
    let up = RawUpstream::start(move |mut tcp, _| {
        let after = a2.clone();
        async move {
            if read_head(&mut tcp).await.is_none() {
                return;
            }
            let _ = tcp
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: dGhpcyBpcyBub3QgdGhlIGFjY2VwdA==\r\n\r\n")
                .await;
            let mut buf = [0u8; 256];
            while let Ok(n) = tcp.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                after.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        }
    })
    .await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let mut s = raw_tls(side.addr, &side.ca_pem, ip(OTHER)).await;
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let head = within("answer", read_head(&mut s)).await.unwrap();
    // What the client sends next would be the tunnel's first bytes.
    let _ = s
        .write_all(b"GET /inside HTTP/1.1\r\nHost: internal\r\n\r\n")
        .await;
    let _ = tokio::time::timeout(Duration::from_millis(500), read_until_close(&mut s)).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert!(
        after.lock().unwrap().is_empty(),
        "bytes reached the upstream through a tunnel: {:?}",
        String::from_utf8_lossy(&after.lock().unwrap())
    );
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_upstream_errors_total{kind=\"protocol\"}"
        ),
        1.0
    );
}

// ---------------------------------------------------------------- identity headers

const SPOOFS: [(&str, &str); 7] = [
    ("x-remote-user", "mallory"),
    ("x_remote_user", "mallory"),
    ("x-forwarded-user", "mallory"),
    ("remote-user", "mallory"),
    ("x-auth-request-user", "mallory"),
    ("X-Auth-Request-Email", "mallory@example.com"),
    ("x-forwarded-email", "mallory@example.com"),
];

#[tokio::test]
async fn identity_headers_from_an_untrusted_peer_never_reach_the_upstream_in_any_mode() {
    let dir = TempDir::new("idmodes");
    std::fs::write(
        dir.path("hs"),
        "an-hs256-secret-that-is-long-enough-0123456789",
    )
    .unwrap();
    let up = Upstream::ok("page").await;
    let modes = [
        "mode = \"header\"\ntrusted_peers = [\"127.0.0.3\"]".to_string(),
        "mode = \"introspect\"\nurl = \"/api/whoami\"\ncookies = [\"sid\"]".to_string(),
        format!(
            "mode = \"jwt\"\ncookie = \"auth\"\nhs256_secret_file = \"{}\"",
            dir.path("hs").display()
        ),
        "mode = \"static\"\nseat = \"dev@example.com\"".to_string(),
    ];
    for mode in &modes {
        let side = Sidecar::start(&up.url(), "", &format!("\n[identity]\n{mode}\n")).await;
        for proto in BOTH {
            let before = up.count();
            let mut c = side.client(proto, ip(OTHER)).await;
            let mut req = get("/page");
            for (k, v) in SPOOFS {
                req.headers_mut().append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            let (parts, body) = read(c.send(req).await.unwrap()).await;
            assert_eq!(parts.status, 200, "{mode} {proto:?}");
            assert_eq!(body, "page");
            let seen = up.requests();
            assert_eq!(seen.len(), before + 1);
            let h = &seen[before].headers;
            for (k, _) in SPOOFS {
                let norm = k.to_ascii_lowercase().replace('_', "-");
                assert!(
                    !h.keys().any(|n| n.as_str().replace('_', "-") == norm),
                    "{mode} {proto:?}: {k} reached the upstream: {h:?}"
                );
            }
        }
    }
    // The trusted gateway of header mode still gets its header through.
    let side = Sidecar::start(&up.url(), "", &format!("\n[identity]\n{}\n", modes[0])).await;
    let mut c = side.client(Proto::H1, ip(THIRD)).await;
    let mut req = get("/page");
    req.headers_mut()
        .insert("x-remote-user", "alice".parse().unwrap());
    let (parts, _) = read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 200);
    assert_eq!(
        up.requests().last().unwrap().headers["x-remote-user"],
        "alice"
    );
}

// ---------------------------------------------------------------- request heads

#[tokio::test]
async fn a_head_over_the_limit_in_one_write_is_431_and_never_forwarded() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "", "").await;
    // 70 KB against the default 64 KiB, in one write.
    let big = "a".repeat(70_000);
    let head =
        format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let out = raw_exchange(&side, head.as_bytes()).await;
    assert_eq!(status_of(&out), "431", "{}", &out[..out.len().min(200)]);
    // Many headers adding up to it, too.
    let mut many = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..60 {
        many.push_str(&format!("X-H{i}: {}\r\n", "b".repeat(1200)));
    }
    many.push_str("Connection: close\r\n\r\n");
    let out = raw_exchange(&side, many.as_bytes()).await;
    assert_eq!(status_of(&out), "431", "{}", &out[..out.len().min(200)]);
    // HTTP/2: the advertised SETTINGS_MAX_HEADER_LIST_SIZE is enforced.
    let mut c = side.h2().await;
    let mut req = get("/");
    req.headers_mut().insert("x-big", big.parse().unwrap());
    let (parts, _) = read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 431);
    assert_eq!(up.count(), 0, "nothing reached the upstream");
    // A head under the limit still goes through on both protocols.
    let mut c = side.h2().await;
    let mut req = get("/");
    req.headers_mut()
        .insert("x-big", "a".repeat(30_000).parse().unwrap());
    assert_eq!(read(c.send(req).await.unwrap()).await.0.status, 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn a_limit_under_8_kib_holds() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "max_header_bytes = 2048", "").await;
    let head = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(4000)
    );
    let out = raw_exchange(&side, head.as_bytes()).await;
    assert_eq!(status_of(&out), "431", "{out}");
    let mut c = side.h2().await;
    let mut req = get("/");
    req.headers_mut()
        .insert("x-big", "a".repeat(4000).parse().unwrap());
    assert_eq!(read(c.send(req).await.unwrap()).await.0.status, 431);
    assert_eq!(up.count(), 0);
    let out = raw_exchange(
        &side,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Small: 1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&out), "200", "{out}");
}

// ---------------------------------------------------------------- request targets

#[tokio::test]
async fn request_targets_take_only_the_form_their_method_allows() {
    let up = Upstream::ok("ok").await;
    let side = Sidecar::start(&up.url(), "server_names = [\"localhost\"]", "").await;
    for (bytes, want) in [
        // authority-form is for CONNECT only
        (&b"GET localhost:443 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"[..], "400"),
        (b"POST localhost:443 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "400"),
        // asterisk-form is for OPTIONS only
        (b"GET * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "400"),
        // absolute-form: its authority must be the Host and a served name
        (b"GET https://evil.example/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "400"),
        (b"GET https://evil.example/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", "421"),
        (b"GET ftp://localhost/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "400"),
    ] {
        let out = raw_exchange(&side, bytes).await;
        assert_eq!(status_of(&out), want, "{}: {out}", String::from_utf8_lossy(bytes));
    }
    assert_eq!(up.count(), 0, "nothing reached the upstream");
    // Absolute-form that names this server goes upstream in origin-form.
    let out = raw_exchange(
        &side,
        b"GET https://localhost/abs?q=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&out), "200", "{out}");
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri.to_string(), "/abs?q=1");
    assert_eq!(seen[0].headers["host"], "localhost");
}

// ---------------------------------------------------------------- upstream framing

async fn double_framed_upstream() -> RawUpstream {
    RawUpstream::start(|mut tcp, _| async move {
        while let Some(head) = read_head(&mut tcp).await {
            let ans: &[u8] = if head.starts_with("GET /first ") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            } else if head.starts_with("GET /gzipped ") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
            };
            if tcp.write_all(ans).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test]
async fn an_upstream_answer_with_both_framings_is_framed_by_its_chunks() {
    let up = double_framed_upstream().await;
    let side = Sidecar::start(&up.url(), "", "").await;
    let out = raw_exchange(
        &side,
        b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\nGET /next HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let lower = out.to_ascii_lowercase();
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    assert!(!lower.contains("content-length: 100"), "{out}");
    assert!(out.contains("hello"), "{out}");
    assert!(
        out.ends_with("second"),
        "the next pipelined answer is intact: {out}"
    );
    let mut c = side.h2().await;
    let (parts, body) = c.get("/first").await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, "hello");
    assert!(parts.headers.get("content-length").is_none_or(|v| v == "5"));
    // A transfer coding the sidecar cannot pass on is the upstream's failure, not a corrupt body.
    let (parts, _) = c.get("/gzipped").await;
    assert_eq!(parts.status, 502);
}

// ---------------------------------------------------------------- timeouts

/// An upstream whose `/stream` answer never ends on its own; `closed` fires when the sidecar
/// gives the request up.
async fn endless_upstream() -> (Upstream, tokio::sync::mpsc::Receiver<Instant>) {
    let (closed_tx, closed) = tokio::sync::mpsc::channel::<Instant>(8);
    let up = Upstream::start(handler(move |s| {
        let closed_tx = closed_tx.clone();
        async move {
            if s.uri.path() != "/stream" {
                return Response::new(full("ok"));
            }
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
                // Bounded: 64 MiB at most, far more than any socket buffer.
                for _ in 0..4096 {
                    tokio::select! {
                        r = tx.send(chunk.clone()) => if r.is_err() { break },
                        _ = tx.closed() => break,
                    }
                }
                tx.closed().await;
                let _ = closed_tx.send(Instant::now()).await;
            });
            Response::new(body)
        }
    }))
    .await;
    (up, closed)
}

#[tokio::test]
async fn a_zero_window_stream_is_ended_at_the_send_timeout_and_its_upstream_cancelled() {
    let (up, mut closed) = endless_upstream().await;
    let side = Sidecar::start(&up.url(), "send_timeout = \"1s\"", "").await;
    let tls = tls_with(side.addr, side.tls_config(&[b"h2"]), ip(OTHER), "localhost").await;
    let mut b = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    b.initial_stream_window_size(0);
    let (mut send, conn) = b.handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let started = Instant::now();
    let resp = within(
        "head",
        send.send_request(
            Request::get("https://localhost/stream")
                .body(empty())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let when = within("the upstream request cancelled", closed.recv())
        .await
        .unwrap();
    assert!(
        when - started >= Duration::from_millis(900),
        "{:?}",
        when - started
    );
    // The client's stream was reset, not left open.
    let got = within("stream end", resp.into_body().collect()).await;
    assert!(got.is_err(), "the stream ended with an error");
    // The connection itself is still usable for other streams.
    let mut c = side.h2().await;
    assert_eq!(c.get("/other").await.0.status, 200);
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_stream_timeouts_total{reason=\"send\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn an_http1_client_that_stops_reading_is_closed_at_the_send_timeout() {
    let (up, mut closed) = endless_upstream().await;
    let side = Sidecar::start(&up.url(), "send_timeout = \"1s\"", "").await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let tcp = within("connect", sock.connect(side.addr)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(side.tls_config(&[b"http/1.1"])));
    let mut s = within(
        "tls",
        connector.connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        ),
    )
    .await
    .unwrap();
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // Never read: the sidecar's writes stall once the socket buffers are full.
    within("the upstream request cancelled", closed.recv())
        .await
        .unwrap();
    assert!(
        metric(
            &side.metrics(),
            "tccc_sidecar_stream_timeouts_total{reason=\"send\"}"
        ) >= 1.0
    );
}

#[tokio::test]
async fn a_slow_upstream_is_not_a_slow_client() {
    // A long poll: the answer's next bytes come after longer than send_timeout.
    let up = Upstream::start(handler(|_| async move {
        let (tx, body) = channel_body();
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"first ")).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let _ = tx.send(Bytes::from_static(b"second")).await;
        });
        Response::new(body)
    }))
    .await;
    let side = Sidecar::start(&up.url(), "send_timeout = \"1s\"", "").await;
    for proto in BOTH {
        let mut c = side.client(proto, None).await;
        let (parts, body) = c.get("/poll").await;
        assert_eq!(parts.status, 200);
        assert_eq!(body, "first second", "{proto:?}");
    }
}

/// An upstream that reads a request body and reports when its connection ended, and how many
/// body bytes came before.
async fn body_reader() -> (RawUpstream, tokio::sync::mpsc::Receiver<usize>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<usize>(8);
    let up = RawUpstream::start(move |mut tcp, _| {
        let tx = tx.clone();
        async move {
            if read_head(&mut tcp).await.is_none() {
                return;
            }
            let mut n = 0;
            let mut buf = [0u8; 256];
            while let Ok(k) = tcp.read(&mut buf).await {
                if k == 0 {
                    break;
                }
                n += k;
            }
            let _ = tx.send(n).await;
        }
    })
    .await;
    (up, rx)
}

#[tokio::test]
async fn a_trickled_body_is_408_at_the_client_body_timeout_and_its_upstream_cancelled() {
    let (up, mut ended) = body_reader().await;
    let side = Sidecar::start(&up.url(), "client_body_timeout = \"1s\"", "").await;
    let mut s = raw_tls(side.addr, &side.ca_pem, ip(OTHER)).await;
    let started = Instant::now();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nx")
        .await
        .unwrap();
    // The next byte would come a second and a half later; the answer comes first.
    let head = within("408", read_head(&mut s)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let n = within("the upstream request cancelled", ended.recv())
        .await
        .unwrap();
    assert!(n < 100, "the upstream never got a whole body ({n} bytes)");

    // HTTP/2: the same, with the stream's body stalling after one byte.
    let mut c = side.client(Proto::H2, ip(OTHER)).await;
    let (tx, body) = channel_body();
    tx.send(Bytes::from_static(b"x")).await.unwrap();
    let req = Request::post("/upload")
        .header("content-length", "100")
        .body(body)
        .unwrap();
    let (parts, _) = read(c.send(req).await.unwrap()).await;
    assert_eq!(parts.status, 408);
    within("the upstream request cancelled", ended.recv())
        .await
        .unwrap();
    drop(tx);
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_stream_timeouts_total{reason=\"client_body\"}"
        ),
        2.0
    );
}

// ---------------------------------------------------------------- requests in flight

/// Waits (bounded) until the upstream has seen `n` requests.
async fn wait_for_requests(up: &Upstream, n: usize) {
    let deadline = Instant::now() + WAIT;
    while up.count() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(up.count(), n, "requests the upstream saw");
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_requests_in_flight() {
    let (release, held) = tokio::sync::watch::channel(false);
    let up = Upstream::start(handler(move |s| {
        let mut held = held.clone();
        async move {
            if s.uri.path() == "/hold" {
                let _ = held.wait_for(|v| *v).await;
            }
            Response::new(full("done"))
        }
    }))
    .await;
    let side = Sidecar::start(&up.url(), "max_requests_in_flight_per_client = 2", "").await;
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut c = side.client(Proto::H2, ip(OTHER)).await;
        holders.push(tokio::spawn(async move { c.get("/hold").await.0.status }));
    }
    wait_for_requests(&up, 2).await;
    // The third from the same address is refused, on any connection.
    let mut c = side.client(Proto::H1, ip(OTHER)).await;
    let (parts, _) = c.get("/quick").await;
    assert_eq!(parts.status, 503);
    assert!(parts.headers.contains_key("retry-after"));
    assert_eq!(
        up.count(),
        2,
        "the refused request never reached the upstream"
    );
    // Another client is served meanwhile, and so is a trusted proxy carrying many.
    let mut b = side.client(Proto::H1, ip(THIRD)).await;
    assert_eq!(b.get("/quick").await.0.status, 200);
    let mut p = side.client(Proto::H2, None).await;
    let mut ps = Vec::new();
    for _ in 0..3 {
        let mut c = side.client(Proto::H2, None).await;
        ps.push(tokio::spawn(async move { c.get("/hold").await.0.status }));
    }
    wait_for_requests(&up, 6).await;
    assert_eq!(p.get("/quick").await.0.status, 200);
    release.send(true).unwrap();
    for h in holders.into_iter().chain(ps) {
        assert_eq!(within("held answer", h).await.unwrap(), 200);
    }
    // Once answered, the address may send again.
    assert_eq!(c.get("/quick").await.0.status, 200);
    assert_eq!(
        metric(
            &side.metrics(),
            "tccc_sidecar_rejected_requests_total{kind=\"client_requests_in_flight\"}"
        ),
        1.0
    );
}
