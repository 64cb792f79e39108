//! The one log line per request, written when the response body is finished or abandoned,
//! so that it carries the bytes actually sent and whether the transfer completed.
//!
//! Only the method, the path (no query, no `;jsessionid=`), the status, the timings, the byte
//! count and the request id are logged: never headers, cookies or query strings, which carry
//! session tokens in legacy apps.

use crate::runtime::metrics::Metrics;
use crate::runtime::send_timeout::SendWatch;
use bytes::Buf;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

pub struct AccessLog {
    pub method: http::Method,
    /// The request target as received; only its path is logged (`loggable_path`).
    pub uri: http::Uri,
    pub client: IpAddr,
    pub status: u16,
    pub start: Instant,
    pub upstream_ms: Option<f64>,
    pub bytes: u64,
    pub request_id: RequestId,
    pub outcome: &'static str,
    pub metrics: Arc<Metrics>,
    /// The request's place among its address's requests in flight, given back when the
    /// request is over (its answer's body ended or dropped), as the log line is written.
    pub in_flight: Option<crate::runtime::per_address::Request>,
}

/// A request's id: made here (16 random bytes in hex, kept inline: no allocation per
/// request), or the one a trusted hop sent.
pub enum RequestId {
    /// Not assigned yet (the request was refused before it was forwarded).
    None,
    Generated([u8; 32]),
    Given(http::HeaderValue),
}

impl RequestId {
    pub fn generate() -> RequestId {
        let mut hex = [0u8; 32];
        // 16 bytes always fit 32 hex digits; the error arm cannot be taken.
        if hex::encode_to_slice(rand::random::<[u8; 16]>(), &mut hex).is_err() {
            return RequestId::None;
        }
        RequestId::Generated(hex)
    }

    pub fn as_str(&self) -> &str {
        match self {
            RequestId::None => "",
            RequestId::Generated(hex) => std::str::from_utf8(hex).unwrap_or_default(),
            RequestId::Given(v) => v.to_str().unwrap_or_default(),
        }
    }
}

/// The request path as logged: the part before any `;` parameter (`;jsessionid=...`), at
/// most 512 characters, `/` when empty.
pub fn loggable_path(path: &str) -> &str {
    let p = path.split(';').next().unwrap_or("");
    // At most 512 bytes is at most 512 characters: the usual path is not walked.
    let p = match (p.len() > 512).then(|| p.char_indices().nth(512)).flatten() {
        Some((end, _)) => &p[..end],
        None => p,
    };
    if p.is_empty() {
        "/"
    } else {
        p
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.metrics.count_status(self.status);
        // The level filter still decides (`RUST_LOG`, `log.level`), through tracing's cached
        // per-callsite interest.
        if !tracing::enabled!(target: "tccc_sidecar::access", tracing::Level::INFO) {
            return;
        }
        let total_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        if let Some(sink) = crate::runtime::logging::access_sink() {
            LINE.with(|line| {
                let mut line = line.borrow_mut();
                line.clear();
                if sink.json {
                    self.json_line(&mut line, total_ms);
                } else {
                    self.text_line(&mut line, total_ms);
                }
                sink.writer.append(line.as_bytes());
            });
            return;
        }
        tracing::info!(
            target: "tccc_sidecar::access",
            method = %self.method,
            path = loggable_path(self.uri.path()),
            status = self.status,
            client = %self.client,
            upstream_ms = self.upstream_ms.map(|v| (v * 10.0).round() / 10.0),
            total_ms = (total_ms * 10.0).round() / 10.0,
            bytes = self.bytes,
            outcome = self.outcome,
            request_id = self.request_id.as_str(),
        );
    }
}

thread_local! {
    static LINE: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(256));
    /// The formatted date and time of the last second seen, as nginx caches its time string.
    static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// `2026-11-25T17:40:02.298455Z`, as tracing's default timer writes it.
fn push_timestamp(out: &mut String) {
    use std::fmt::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            c.1.clear();
            if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs as i64) {
                let _ = write!(
                    c.1,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                );
            }
            c.0 = secs;
        }
        out.push_str(&c.1);
    });
    let mut frac = *b".000000Z";
    let mut micros = now.subsec_micros();
    for digit in frac[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out.push_str(std::str::from_utf8(&frac).unwrap_or(".000000Z"));
}

/// One decimal place, rounded as the tracing fields are (`{:.1}` costs a float formatter).
fn push_ms(out: &mut String, ms: f64) {
    let tenths = (ms * 10.0).round().max(0.0) as u64;
    push_u64(out, tenths / 10);
    out.push('.');
    out.push(char::from(b'0' + (tenths % 10) as u8));
}

fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

impl AccessLog {
    fn text_line(&self, out: &mut String, total_ms: f64) {
        push_timestamp(out);
        out.push_str("  INFO tccc_sidecar::access: method=");
        out.push_str(self.method.as_str());
        out.push_str(" path=");
        out.push_str(loggable_path(self.uri.path()));
        out.push_str(" status=");
        push_u64(out, u64::from(self.status));
        out.push_str(" client=");
        crate::wire::forwarded::push_ip(out, self.client);
        out.push_str(" upstream_ms=");
        match self.upstream_ms {
            Some(v) => push_ms(out, v),
            None => out.push('-'),
        }
        out.push_str(" total_ms=");
        push_ms(out, total_ms);
        out.push_str(" bytes=");
        push_u64(out, self.bytes);
        out.push_str(" outcome=");
        out.push_str(self.outcome);
        out.push_str(" request_id=");
        out.push_str(self.request_id.as_str());
        out.push('\n');
    }

    fn json_line(&self, out: &mut String, total_ms: f64) {
        out.push_str("{\"timestamp\":\"");
        push_timestamp(out);
        out.push_str("\",\"level\":\"INFO\",\"target\":\"tccc_sidecar::access\",\"method\":");
        push_json_str(out, self.method.as_str());
        out.push_str(",\"path\":");
        push_json_str(out, loggable_path(self.uri.path()));
        out.push_str(",\"status\":");
        push_u64(out, u64::from(self.status));
        out.push_str(",\"client\":\"");
        crate::wire::forwarded::push_ip(out, self.client);
        out.push('"');
        out.push_str(",\"upstream_ms\":");
        match self.upstream_ms {
            Some(v) => push_ms(out, v),
            None => out.push_str("null"),
        }
        out.push_str(",\"total_ms\":");
        push_ms(out, total_ms);
        out.push_str(",\"bytes\":");
        push_u64(out, self.bytes);
        out.push_str(",\"outcome\":\"");
        out.push_str(self.outcome);
        out.push_str("\",\"request_id\":");
        push_json_str(out, self.request_id.as_str());
        out.push_str("}\n");
    }
}

/// A JSON string (quotes, backslashes and control characters escaped).
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts what it yields and logs the request when it is dropped.
    pub struct Logged<B> {
        #[pin]
        inner: B,
        log: Option<AccessLog>,
        // HTTP/2 only: tells the stream's task when a frame waits for the client to take it.
        watch: Option<Arc<SendWatch>>,
    }
}

impl<B> Logged<B> {
    pub fn new(inner: B, log: AccessLog, watch: Option<Arc<SendWatch>>) -> Logged<B> {
        Logged {
            inner,
            log: Some(log),
            watch,
        }
    }
}

impl<B> HttpBody for Logged<B>
where
    B: HttpBody,
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        if let Some(w) = this.watch.as_ref() {
            w.taken();
        }
        let res = inner.as_mut().poll_frame(cx);
        if let (Some(w), Poll::Ready(Some(Ok(_)))) = (this.watch.as_ref(), &res) {
            w.waiting();
        }
        if let Some(log) = this.log.as_mut() {
            match &res {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        log.bytes += d.remaining() as u64;
                    }
                    // hyper stops polling once a sized body is complete, so the end is seen
                    // here rather than as a final `None`.
                    if inner.is_end_stream() {
                        log.outcome = "complete";
                    }
                }
                Poll::Ready(Some(Err(_))) => log.outcome = "upstream_aborted",
                Poll::Ready(None) => log.outcome = "complete",
                Poll::Pending => {}
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(path: &str, upstream_ms: Option<f64>) -> AccessLog {
        AccessLog {
            method: http::Method::GET,
            uri: path.parse().unwrap(),
            client: "127.0.0.2".parse().unwrap(),
            status: 200,
            start: Instant::now(),
            upstream_ms,
            bytes: 3,
            request_id: RequestId::Given(http::HeaderValue::from_static("rid-1")),
            outcome: "complete",
            metrics: Arc::new(Metrics::new()),
            in_flight: None,
        }
    }

    #[test]
    fn json_lines_parse_with_every_field_even_for_odd_paths() {
        for path in ["/a", "/q\"uote", "/%7f%01x;jsessionid=S"] {
            let mut out = String::new();
            log(path, Some(0.25)).json_line(&mut out, 1.04);
            let path = path.split(';').next().unwrap();
            assert!(
                out.ends_with('\n') && out.matches('\n').count() == 1,
                "{out}"
            );
            let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
            assert_eq!(v["path"], path);
            assert_eq!(v["target"], "tccc_sidecar::access");
            assert_eq!(v["status"], 200);
            assert_eq!(v["client"], "127.0.0.2");
            assert_eq!(v["bytes"], 3);
            assert_eq!(v["total_ms"], 1.0);
            assert_eq!(v["request_id"], "rid-1");
            let ts = v["timestamp"].as_str().unwrap();
            assert!(
                time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                    .is_ok(),
                "{ts}"
            );
        }
        let mut out = String::new();
        log("/", None).json_line(&mut out, 0.0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["upstream_ms"].is_null());
    }

    #[test]
    fn text_lines_read_like_tracing_lines() {
        let mut out = String::new();
        log("/hello", Some(0.34)).text_line(&mut out, 2.0);
        assert!(out.contains("  INFO tccc_sidecar::access: method=GET path=/hello status=200 client=127.0.0.2 upstream_ms=0.3 total_ms=2.0 bytes=3 outcome=complete request_id=rid-1\n"), "{out}");
    }

    #[test]
    fn json_strings_escape_what_json_forbids() {
        for s in ["q\"uote\\back", "\u{7f}\u{1}x", "plain"] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn logged_paths_lose_parameters_and_stop_at_512_characters() {
        assert_eq!(loggable_path("/a;jsessionid=SECRET"), "/a");
        assert_eq!(loggable_path(";x"), "/");
        assert_eq!(loggable_path(""), "/");
        let long = "é".repeat(600);
        assert_eq!(loggable_path(&long).chars().count(), 512);
        assert!(long.starts_with(loggable_path(&long)));
    }

    #[test]
    fn generated_request_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        for id in [&a, &b] {
            assert_eq!(id.as_str().len(), 32);
            assert!(id.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        }
        assert_ne!(a.as_str(), b.as_str());
    }
}
