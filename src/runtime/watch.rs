//! Noticing that files on disk changed: certificates, seats, credentials.
//!
//! Kubernetes updates a mounted Secret or ConfigMap by swapping a `..data` symlink in the
//! folder, editors and `cp` rewrite files in place, and deploy tools rename a new file over the
//! old one. Watching the *folders* catches all three; a periodic comparison of the files'
//! contents catches what notifications miss (network filesystems, dropped events). A change is
//! reported only when the contents differ from what was last seen.

use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// A SHA-256 over the contents of all `paths` (a missing file counts as a distinct state).
pub fn fingerprint(paths: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in paths {
        match std::fs::read(p) {
            Ok(bytes) => {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(_) => h.update(b"\xffmissing"),
        }
    }
    h.finalize().into()
}

/// Calls `on_change` (on a Tokio task) each time the combined contents of `paths` change.
/// Runs until the process ends.
pub fn spawn<F>(paths: Vec<PathBuf>, interval: Duration, mut on_change: F)
where
    F: FnMut() + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let dirs: BTreeSet<PathBuf> = paths
        .iter()
        .map(|p| {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf()
        })
        .collect();
    let watcher = {
        use notify::Watcher;
        let tx = tx.clone();
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Reading the files ourselves raises access events: reacting to those would
            // re-read them in an endless loop.
            if matches!(&res, Ok(e) if e.kind.is_access()) {
                return;
            }
            // A full channel already means "look again"; nothing is lost by dropping this one.
            let _ = tx.try_send(());
        }) {
            Ok(mut w) => {
                for d in &dirs {
                    if let Err(e) = w.watch(d, notify::RecursiveMode::NonRecursive) {
                        tracing::warn!(dir = %d.display(), error = %e, "cannot watch folder; relying on periodic checks");
                    }
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "file notifications unavailable; relying on periodic checks");
                None
            }
        }
    };
    // Taken now, not when the task first runs: a change made in between would otherwise
    // become the baseline and never be noticed.
    let mut last = fingerprint(&paths);
    tokio::spawn(async move {
        let _watcher = watcher;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                got = rx.recv() => {
                    if got.is_none() { return; }
                    // Writers often touch a file several times in a row (truncate, write,
                    // rename): let them finish before reading.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while rx.try_recv().is_ok() {}
                }
            }
            let mut now = fingerprint(&paths);
            if now == last {
                continue;
            }
            // A file rewritten in place can be caught half-written (even empty): act only on
            // contents that stay the same for a moment.
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let again = fingerprint(&paths);
                if again == now {
                    break;
                }
                now = again;
            }
            if now != last {
                last = now;
                on_change();
            }
        }
    });
}
