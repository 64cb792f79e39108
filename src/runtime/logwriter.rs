//! A batching log writer, like nginx's `access_log ... buffer=64k flush=...`: formatted lines
//! are appended to a shared buffer, and one thread writes it to stderr every 100 ms or as
//! soon as 64 KiB are waiting. A request pays for a short lock and a copy, never a syscall,
//! and no line is dropped: if stderr stalls and the buffer reaches 4 MiB, writers wait.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const FLUSH_AT: usize = 64 * 1024;
const BLOCK_AT: usize = 4 * 1024 * 1024;
const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Shared {
    buf: Mutex<(Vec<u8>, bool)>, // (pending bytes, closed)
    wake: Condvar,
    drained: Condvar,
}

/// The `MakeWriter` handed to tracing; cheap to clone.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Flushes and stops the writer thread when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Ok(mut g) = self.shared.buf.lock() {
            g.1 = true;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A writer to `out` and the guard that owns its thread.
pub fn batch_writer<W: Write + Send + 'static>(mut out: W) -> (BatchWriter, FlushGuard) {
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name("tccc-log".into())
        .spawn(move || loop {
            let (chunk, closed) = {
                let mut g = s.buf.lock().unwrap_or_else(|p| p.into_inner());
                if g.0.is_empty() && !g.1 {
                    g = s
                        .wake
                        .wait_timeout(g, INTERVAL)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                (std::mem::take(&mut g.0), g.1)
            };
            s.drained.notify_all();
            if !chunk.is_empty() {
                let _ = out.write_all(&chunk);
                let _ = out.flush();
            }
            if closed {
                return;
            }
            // Gather lines for a while before the next write, unless the buffer fills first.
            let g = s.buf.lock().unwrap_or_else(|p| p.into_inner());
            if g.0.len() < FLUSH_AT && !g.1 {
                let _ = s.wake.wait_timeout(g, INTERVAL);
            }
        })
        .ok();
    (
        BatchWriter {
            shared: shared.clone(),
        },
        FlushGuard { shared, thread },
    )
}

impl BatchWriter {
    /// Appends `data` (whole lines) to the buffer.
    pub fn append(&self, data: &[u8]) {
        let mut g = self.shared.buf.lock().unwrap_or_else(|p| p.into_inner());
        while g.0.len() >= BLOCK_AT && !g.1 {
            self.shared.wake.notify_one();
            g = self
                .shared
                .drained
                .wait(g)
                .unwrap_or_else(|p| p.into_inner());
        }
        g.0.extend_from_slice(data);
        if g.0.len() >= FLUSH_AT {
            self.shared.wake.notify_one();
        }
    }
}

impl Write for BatchWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.append(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(d);
            Ok(d.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_and_the_guard_flushes_the_rest() {
        let sink = Sink::default();
        let (w, guard) = batch_writer(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        w.write_all(format!("t{t} line {i:05}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 20_000);
        for t in 0..4 {
            let mine: Vec<&str> = out
                .lines()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            assert_eq!(mine.len(), 5000);
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "per-thread order kept"
            );
        }
    }

    #[test]
    fn a_quiet_writer_still_flushes_within_the_interval() {
        let sink = Sink::default();
        let (mut w, _guard) = batch_writer(sink.clone());
        w.write_all(b"one line\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "line never flushed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
