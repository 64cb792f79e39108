//! `/loginTCCC` benchmark against the CCC emulator, each party its own process:
//!
//! 1. **Added latency**: sequential token requests straight to the emulator (our CCC client,
//!    signed in process) and through the sidecar (TLS, keep-alive): the difference of the
//!    medians is what the sidecar adds.
//! 2. **Shift-start burst**: 300 requests spread over one second, each from its own client
//!    address and user, with the default limits (15/s overall, 5 s queue) and the emulator
//!    enforcing CCC's 20/s: every request must get an answer, CCC must never refuse, and the
//!    longest wait is reported.
//! 3. **Against the vendor's backend** (benches/vendor-backend: express +
//!    tencentcloud-sdk-nodejs, a client per request), limits raised for the measurement:
//!    throughput with 32 connections (closed loop), then p50/p99 at a fixed offered rate of
//!    70% of the vendor's throughput (open loop: latency counts from the scheduled send time).
//!    Rounds alternate the order of the peers; medians and ranges are printed.
//!
//! `cargo bench --bench login_bench` measures (needs node and npm for the vendor peer);
//! under `cargo test` it runs a few requests of each part as a smoke test, without the
//! vendor peer.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Starts the sidecar with `login` as its `[login]` table; returns it and its address.
fn sidecar(dir: &Path, api: &str, login: &str, users: usize) -> (Proc, SocketAddr) {
    let certs = ensure_certs(dir);
    std::fs::write(dir.join("sid"), SECRET_ID).unwrap();
    std::fs::write(dir.join("skey"), SECRET_KEY).unwrap();
    let seats: String = (0..users)
        .map(|i| format!("user{i} = \"{SEAT}\"\n"))
        .collect();
    std::fs::write(dir.join("seats.toml"), seats).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{c}/tls.crt\"\ntls_key = \"{c}/tls.key\"\n\n\
         [upstream]\nurl = \"http://127.0.0.1:9\"\n\n\
         [tccc]\nsdk_app_id = {APP}\nendpoint = \"{api}\"\nsecret_id_file = \"{d}/sid\"\nsecret_key_file = \"{d}/skey\"\n\n\
         [login]\n{login}\n\n\
         [identity]\nmode = \"header\"\ntrusted_peers = [\"127.0.0.0/8\"]\n\n\
         [seats]\nfile = \"{d}/seats.toml\"\n\n\
         [log]\nformat = \"json\"\nlevel = \"info\"\n",
        c = certs.display(),
        d = dir.display(),
    );
    run_sidecar(dir, &config)
}

/// Starts the vendor's backend; `None` when node or its modules are not available.
fn vendor(api: &str) -> Option<(Proc, SocketAddr)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/vendor-backend");
    if !dir.join("node_modules").exists() {
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return None;
        }
    }
    let mut child = Command::new("node")
        .arg("server.js")
        .current_dir(&dir)
        .env("EMULATOR_PROXY", api)
        .env("SECRET_ID", SECRET_ID)
        .env("SECRET_KEY", SECRET_KEY)
        .env("SDK_APP_ID", APP)
        .env("SEAT", SEAT)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let out = child.stdout.take().unwrap();
    let proc = Proc(child);
    let mut lines = BufReader::new(out).lines();
    let port: u16 = lines
        .next()?
        .ok()?
        .strip_prefix("listening ")?
        .trim()
        .parse()
        .ok()?;
    std::thread::spawn(move || for _ in lines {});
    Some((proc, SocketAddr::from(([127, 0, 0, 1], port))))
}

fn https_client(dir: &Path, from: Option<IpAddr>) -> reqwest::Client {
    let ca = std::fs::read(dir.join("certs/ca.crt")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .http1_only()
        .local_address(from)
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// One token request as a peer is asked for it; returns the status.
#[derive(Clone)]
enum Peer {
    Sidecar(reqwest::Client, SocketAddr),
    Vendor(reqwest::Client, SocketAddr),
}

impl Peer {
    fn name(&self) -> &'static str {
        match self {
            Peer::Sidecar(..) => "sidecar",
            Peer::Vendor(..) => "vendor",
        }
    }

    async fn token(&self, user: &str) -> u16 {
        let r = match self {
            Peer::Sidecar(c, a) => {
                c.post(format!("https://localhost:{}/loginTCCC", a.port()))
                    .header("sec-fetch-site", "same-origin")
                    .header("x-tccc-loader", "1")
                    .header("x-remote-user", user)
                    .send()
                    .await
            }
            Peer::Vendor(c, a) => c.get(format!("http://{a}/loginTCCC")).send().await,
        };
        match r {
            Ok(resp) => {
                let s = resp.status().as_u16();
                let body = resp.bytes().await.unwrap_or_default();
                if s == 200 {
                    assert!(
                        body.windows(6).any(|w| w == b"SdkURL"),
                        "a 200 without an SdkURL"
                    );
                }
                s
            }
            Err(_) => 0,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn added_latency(dir: &Path, n: usize) {
    let (_em, api) = emulator(dir, 0, &[SEAT]);
    let (_side, addr) = sidecar(dir, &api, RAISED, 1);
    let creds = tccc_sidecar::ccc::CredentialStore::fixed(tccc_sidecar::ccc::Credentials {
        secret_id: SECRET_ID.into(),
        secret_key: tccc_sidecar::ccc::Secret::new(SECRET_KEY),
        token: None,
    });
    let direct = tccc_sidecar::ccc::CccClient::new(
        tccc_sidecar::ccc::ClientOptions::new(&api, APP.parse().unwrap()),
        creds,
    )
    .unwrap();
    let side = Peer::Sidecar(https_client(dir, None), addr);
    // Warm both connections.
    direct.create_sdk_login_token(SEAT).await.unwrap();
    assert_eq!(side.token("user0").await, 200);
    let mut d = Vec::with_capacity(n);
    let mut s = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        direct.create_sdk_login_token(SEAT).await.unwrap();
        d.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(side.token("user0").await, 200);
        s.push(t.elapsed());
    }
    d.sort();
    s.sort();
    println!("\n## Added latency ({n} sequential requests each, interleaved)\n");
    println!("| path | p50 ms | p90 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("direct signed call to CCC (emulator)", &d),
        ("through the sidecar (TLS keep-alive, POST /loginTCCC)", &s),
    ] {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            ms(percentile(v, 0.99))
        );
    }
    println!(
        "\nThe sidecar adds {:.3} ms at the median, {:.3} ms at p99.",
        ms(percentile(&s, 0.5)) - ms(percentile(&d, 0.5)),
        ms(percentile(&s, 0.99)) - ms(percentile(&d, 0.99))
    );
}

const RAISED: &str =
    "per_client_rate = \"1000000/s\"\nper_user_rate = \"1000000/s\"\ntotal_rate = \"1000000/s\"";

async fn burst(dir: &Path, n: usize) {
    let (_em, api) = emulator(dir, 20, &[SEAT]);
    let (_side, addr) = sidecar(dir, &api, "", n);
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for i in 0..n {
        // Each agent its own address (127.0.x.y) and user.
        let from = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            1 + (i / 250) as u8,
            1 + (i % 250) as u8,
        ));
        let peer = Peer::Sidecar(https_client(dir, Some(from)), addr);
        let at = start + Duration::from_secs_f64(i as f64 / n as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let t = Instant::now();
            let s = peer.token(&format!("user{i}")).await;
            (s, t.elapsed(), Instant::now())
        }));
    }
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut longest = Duration::ZERO;
    let mut ok_times = Vec::new();
    let mut ok_waits = Vec::new();
    for t in tasks {
        let (s, took, done) = t.await.unwrap();
        *by_status.entry(s).or_default() += 1;
        longest = longest.max(took);
        if s == 200 {
            ok_times.push(done);
            ok_waits.push(took);
        }
    }
    ok_times.sort();
    ok_waits.sort();
    let max_per_second = ok_times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            ok_times[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    let stats: serde_json::Value = reqwest::get(format!("{api}/__emulator/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refused = stats["api_requests_by_code"]["RequestLimitExceeded"]
        .as_u64()
        .unwrap_or(0);
    // The sidecar's own view from its audit lines (the log writer flushes every 100 ms): the
    // time from request head to answer, without the client's connection set-up.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let log = std::fs::read_to_string(dir.join("sidecar.log")).unwrap_or_default();
    let server_max = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "tccc_sidecar::audit")
        .filter_map(|v| v["latency_ms"].as_f64())
        .fold(0.0f64, f64::max);
    println!("\n## Shift-start burst: {n} agents within one second (default limits: 15/s overall, 5 s queue; emulator enforcing 20/s)\n");
    println!("| answered | 200 | 429 (Retry-After) | other | longest wait (client: connect + TLS + answer) | longest in the sidecar (audit) | p50 wait of the 200s | most tokens in any 1 s | CCC RequestLimitExceeded |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let answered: usize = by_status
        .iter()
        .filter(|(s, _)| **s != 0)
        .map(|(_, n)| n)
        .sum();
    let ok = by_status.get(&200).copied().unwrap_or(0);
    let limited = by_status.get(&429).copied().unwrap_or(0);
    println!(
        "| {answered}/{n} | {ok} | {limited} | {} | {:.0} ms | {server_max:.0} ms | {:.0} ms | {max_per_second} | {refused} |",
        answered - ok - limited,
        ms(longest),
        ms(percentile(&ok_waits, 0.5)),
    );
    // What the limits promise, checked in the smoke run too.
    assert_eq!(answered, n, "every request gets an answer");
    assert_eq!(answered, ok + limited, "only 200s and 429s");
    assert_eq!(refused, 0, "CCC never saw more than its rate");
    assert!(
        server_max <= 5_500.0,
        "the queue wait is bounded by login.queue_timeout"
    );
}

/// Closed loop: `conns` workers for `secs`; returns (requests/s, non-200 count).
async fn throughput(peer: &Peer, conns: usize, secs: f64) -> (f64, usize) {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let p = peer.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut bad) = (0usize, 0usize);
            while Instant::now() < end {
                if p.token("user0").await == 200 {
                    ok += 1;
                } else {
                    bad += 1;
                }
            }
            (ok, bad)
        }));
    }
    let (mut ok, mut bad) = (0, 0);
    for t in tasks {
        let (o, b) = t.await.unwrap();
        ok += o;
        bad += b;
    }
    (ok as f64 / start.elapsed().as_secs_f64(), bad)
}

/// Open loop at `rate`/s for `secs`: latencies from each request's scheduled send time.
async fn fixed_rate(peer: &Peer, rate: f64, secs: f64) -> (Vec<Duration>, usize) {
    let n = (rate * secs) as usize;
    let t0 = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let p = peer.clone();
        let at = t0 + Duration::from_secs_f64(i as f64 / rate);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let s = p.token("user0").await;
            (s, at.elapsed())
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut bad = 0;
    for t in tasks {
        let (s, d) = t.await.unwrap();
        if s != 200 {
            bad += 1;
        }
        lat.push(d);
    }
    lat.sort();
    (lat, bad)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn versus_vendor(dir: &Path, rounds: usize, secs: f64) {
    let (_em, api) = emulator(dir, 0, &[SEAT]);
    let Some((_vendor, vaddr)) = vendor(&api) else {
        println!("\n(vendor backend skipped: node/npm or its modules are not available)");
        return;
    };
    let (_side, saddr) = sidecar(dir, &api, RAISED, 1);
    let plain = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let peers = [
        Peer::Vendor(plain, vaddr),
        Peer::Sidecar(https_client(dir, None), saddr),
    ];
    for p in &peers {
        assert_eq!(p.token("user0").await, 200, "{} warm-up", p.name());
    }
    let conns = 32;
    let mut tput: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut errors = [0usize; 2];
    for r in 0..rounds {
        for k in 0..2 {
            let i = (k + r) % 2;
            let (rps, bad) = throughput(&peers[i], conns, secs).await;
            tput[i].push(rps);
            errors[i] += bad;
        }
    }
    let vendor_rps = median(&mut tput[0].clone());
    let rate = (vendor_rps * 0.7).max(10.0);
    let mut p50: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut p99: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        for k in 0..2 {
            let i = (k + r) % 2;
            let (lat, bad) = fixed_rate(&peers[i], rate, secs).await;
            p50[i].push(ms(percentile(&lat, 0.5)));
            p99[i].push(ms(percentile(&lat, 0.99)));
            errors[i] += bad;
        }
    }
    println!("\n## Against the vendor's example backend (express + tencentcloud-sdk-nodejs), same emulator, limits raised\n");
    println!("{rounds} alternating rounds of {secs} s; throughput with {conns} connections; latency at a fixed {rate:.0} req/s (70% of the vendor's median throughput). Medians, range in brackets.\n");
    println!("| peer | throughput req/s | p50 ms at fixed rate | p99 ms at fixed rate | non-200 answers |");
    println!("|---|---|---|---|---|");
    let range = |v: &[f64]| {
        let (mn, mx) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        (mn, mx)
    };
    let mut meds = [0.0; 2];
    let mut p99m = [0.0; 2];
    for i in 0..2 {
        let (tl, th) = range(&tput[i]);
        let (ql, qh) = range(&p99[i]);
        meds[i] = median(&mut tput[i].clone());
        p99m[i] = median(&mut p99[i].clone());
        println!(
            "| {} | {:.0} [{tl:.0}-{th:.0}] | {:.2} | {:.2} [{ql:.2}-{qh:.2}] | {} |",
            if i == 0 {
                "vendor backend (plain HTTP)"
            } else {
                "tccc-sidecar (TLS)"
            },
            meds[i],
            median(&mut p50[i].clone()),
            p99m[i],
            errors[i]
        );
    }
    println!(
        "\nThroughput ratio sidecar/vendor: {:.1}x (target >= 5x); p99 ratio: {:.2}x (target < 1).",
        meds[1] / meds[0],
        p99m[1] / p99m[0]
    );
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let dir = tempdir("login-bench");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if measuring {
            println!("# /loginTCCC benchmark (cargo bench --bench login_bench)");
            println!("\nMachine: {} CPUs; the client, the sidecar, the emulator and the vendor backend share them.", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
            added_latency(&dir, 2000).await;
            burst(&dir, 300).await;
            versus_vendor(&dir, 3, 8.0).await;
        } else {
            added_latency(&dir, 20).await;
            burst(&dir, 30).await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
