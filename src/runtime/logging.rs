//! Log setup. Text or JSON lines through `tracing`. The HTTP, HTTP/2, TLS and client
//! libraries are clamped to `info` whatever level is asked for: at debug and trace they print
//! header blocks and frames, which carry cookies, tokens and SdkURLs.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Targets that must never log below `info`, because their verbose levels dump headers or bodies.
pub const CLAMPED_TARGETS: [&str; 8] = [
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio_rustls",
    "reqwest",
    "tungstenite",
    "tokio_tungstenite",
];

/// The filter for `level` (or `RUST_LOG` when set), with the clamps applied last so they win.
pub fn filter(level: &str) -> EnvFilter {
    let base = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    let mut f = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new("info"));
    for t in CLAMPED_TARGETS {
        if let Ok(d) = format!("{t}=info").parse() {
            f = f.add_directive(d);
        }
    }
    f
}

/// Where access lines go when the binary set up logging: the same batch writer as every
/// other line, written by [`crate::proxy::access_log`] without tracing's field visitors
/// (one line per request is the hottest log path, and tracing's generic formatting is a
/// noticeable share of a small request's CPU).
pub struct AccessSink {
    pub writer: crate::runtime::logwriter::BatchWriter,
    pub json: bool,
}

static ACCESS: std::sync::OnceLock<AccessSink> = std::sync::OnceLock::new();

/// The access-line writer, once [`init`] has run.
pub fn access_sink() -> Option<&'static AccessSink> {
    ACCESS.get()
}

/// Keeps the log writer thread alive; dropping it flushes what is queued.
pub struct LogGuard(#[allow(dead_code)] crate::runtime::logwriter::FlushGuard);

/// Installs the global subscriber; a second call (tests) is a no-op.
///
/// Lines go through [`crate::runtime::logwriter`]: a request never waits on a `write` to stderr,
/// lines reach stderr within 100 ms, and none are dropped.
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    use std::io::IsTerminal;
    let (writer, guard) = crate::runtime::logwriter::batch_writer(std::io::stderr());
    let _ = ACCESS.set(AccessSink {
        writer: writer.clone(),
        json: matches!(format, LogFormat::Json),
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        // Colour codes only for a person at a terminal, never into journald or a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .with_target(true);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard(guard)
}
