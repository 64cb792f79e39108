//! What the benchmark harnesses share: the built binary, child processes that are killed
//! when dropped, a scratch folder, the CCC emulator as a process, and the sidecar started from
//! a configuration file (waiting for its serving line).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tccc-sidecar");
pub const SEAT: &str = "agent@example.com";
pub const APP: &str = "1400000000";
pub const SECRET_ID: &str = "AKIDbench";
pub const SECRET_KEY: &str = "bench-secret-key";

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tccc-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts the emulator with `seats`; returns it and its API URL.
pub fn emulator(dir: &Path, rate_limit: u32, seats: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["emulator", "--listen", "127.0.0.1:0", "--sdk-app-id", APP])
        .args(["--secret-id", SECRET_ID, "--secret-key", SECRET_KEY])
        .args(["--rate-limit", &rate_limit.to_string()]);
    for s in seats {
        cmd.args(["--seat", s]);
    }
    let mut child = cmd
        .arg("--cert-dir")
        .arg(dir.join("emulator"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the emulator");
    let out = child.stdout.take().unwrap();
    let proc = Proc(child);
    let mut lines = BufReader::new(out).lines();
    let api = loop {
        let line = lines.next().expect("emulator output").unwrap();
        if let Some(rest) = line.strip_prefix("CCC emulator API:") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (proc, api)
}

/// A development CA and certificate for localhost in `dir/certs` (made once).
pub fn ensure_certs(dir: &Path) -> PathBuf {
    let certs = dir.join("certs");
    if !certs.join("tls.crt").exists() {
        let st = Command::new(BIN)
            .args(["cert", "--out"])
            .arg(&certs)
            .args(["--host", "localhost", "--host", "127.0.0.1"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
    certs
}

/// Runs `tccc-sidecar run` with the configuration `text` (JSON logs to `dir/sidecar.log`);
/// returns it and its TLS address once it serves.
pub fn run_sidecar(dir: &Path, text: &str) -> (Proc, SocketAddr) {
    let log = dir.join("sidecar.log");
    let _ = std::fs::remove_file(&log);
    let path = dir.join("sidecar.toml");
    std::fs::write(&path, text).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run the sidecar");
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                if let Some(l) = v["listen"].as_str() {
                    return (proc, l.parse().unwrap());
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
