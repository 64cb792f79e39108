//! The rewritten body: upstream chunks are decoded, rewritten and re-encoded one at a time
//! and sent as they come, so memory stays flat however large the page and the first bytes
//! reach the client before the upstream has finished. A failure in the middle (a corrupt
//! compressed stream) can only abort the response: its head is already sent.

use super::codec::{Decoder, Encoder};
use super::rewrite::Rewriter;
use crate::runtime::metrics::Metrics;
use crate::wire::pool::PooledBody;
use crate::wire::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// How much of a chunk is tokenized at first while the tag is still to be placed; each next
/// slice is twice as long, up to `MAX_SLICE`. Most heads end in the first few hundred bytes,
/// and every byte tokenized after that is wasted work (a flat slice of a few KiB spent a large
/// share of a page's CPU tokenizing past the head).
const FIRST_SLICE: usize = 512;
const MAX_SLICE: usize = 16 * 1024;
/// Compressed output is gathered across upstream chunks that are ready at once, and sent
/// when the upstream has to be waited for, at the end, or at this size.
const SEND_AT: usize = 64 * 1024;

struct Pipeline {
    decoder: Decoder,
    /// `None` once the page needs no more rewriting: after the tag is placed at the end of
    /// `<head>` the rest of the page passes through without being tokenized, which is most
    /// of the bytes and most of the cost.
    rewriter: Option<Rewriter>,
    /// Whether the rewriter may be dropped as soon as the tag is in (head placement).
    stop_when_placed: bool,
    encoder: Encoder,
    /// Until the first two bytes are known: a UTF-16 byte-order mark means the page is
    /// passed through untouched (the tokenizer would corrupt it).
    sniff: Option<Vec<u8>>,
    /// What became of the page once it is known (the metrics' result label).
    result: Option<&'static str>,
    /// The untouched rest of the chunk in which the tag was placed, sent as the next frame.
    pending: Option<Bytes>,
    /// Bytes went into the encoder since its last flush.
    unflushed: bool,
}

impl Pipeline {
    fn identity_out(&self) -> bool {
        matches!(self.encoder, Encoder::Identity)
    }

    fn process(&mut self, input: Bytes, last: bool) -> std::io::Result<Bytes> {
        let mut plain: Bytes = if matches!(self.decoder, Decoder::Identity) {
            input
        } else {
            let mut v = Vec::with_capacity(input.len() * 3);
            self.decoder.push(&input, &mut v)?;
            Bytes::from(v)
        };
        if let Some(buf) = &mut self.sniff {
            // The first chunk is looked at in place; only a page whose first chunk is shorter
            // than the byte-order mark is gathered first.
            if !buf.is_empty() || plain.len() < 2 {
                buf.extend_from_slice(&plain);
                if buf.len() < 2 && !last {
                    return Ok(Bytes::new());
                }
                plain = Bytes::from(std::mem::take(buf));
            }
            self.sniff = None;
            if plain.starts_with(&[0xFF, 0xFE]) || plain.starts_with(&[0xFE, 0xFF]) {
                self.rewriter = None;
                self.result = Some("utf16_passthrough");
            }
        }
        let html: Bytes = match &mut self.rewriter {
            Some(r) if self.stop_when_placed => {
                // Fed in small slices so that tokenizing stops soon after the tag is in: the
                // head is usually in the first few kilobytes of a page.
                let mut v = Vec::with_capacity(plain.len().min(MAX_SLICE) + 128);
                let mut at = 0;
                let mut slice = FIRST_SLICE;
                // The first slice ends where a `</head>` seems to be: in most pages the
                // tokenizer places the tag there and nothing past the head is tokenized. One
                // inside a script or a comment is not placed on, and slicing goes on as usual.
                let mut hint = head_end_hint(&plain);
                while at < plain.len() {
                    let end = match hint.take() {
                        Some(h) if h > at => h,
                        _ => (at + slice).min(plain.len()),
                    };
                    r.write(&plain[at..end], &mut v)
                        .map_err(std::io::Error::other)?;
                    at = end;
                    slice = (slice * 2).min(MAX_SLICE);
                    if r.placed() {
                        break;
                    }
                }
                if r.placed() {
                    if let Some(r) = self.rewriter.take() {
                        // Flushes what lol_html still holds; the rest goes out as it is.
                        let added = r.end(&mut v).map_err(std::io::Error::other)?;
                        self.result = Some(if added { "injected" } else { "already_present" });
                    }
                    if self.identity_out() && at < plain.len() {
                        // The rest of the chunk as its own frame, without a copy.
                        self.pending = Some(plain.slice(at..));
                        return Ok(Bytes::from(v));
                    }
                    v.extend_from_slice(&plain[at..]);
                }
                Bytes::from(v)
            }
            Some(r) => {
                let mut v = Vec::with_capacity(plain.len() + 128);
                r.write(&plain, &mut v).map_err(std::io::Error::other)?;
                Bytes::from(v)
            }
            None => plain,
        };
        if self.identity_out() {
            return Ok(html);
        }
        let mut out = Vec::new();
        if !html.is_empty() {
            self.encoder.write(&html, &mut out)?;
            self.encoder.take(&mut out);
            self.unflushed = true;
        }
        Ok(Bytes::from(out))
    }

    /// Forces out what the encoder holds, when the upstream has nothing more ready.
    fn flush(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        if self.unflushed {
            self.encoder.flush(out)?;
            self.unflushed = false;
        }
        Ok(())
    }

    /// The last bytes, and what became of the page (the metrics' result label).
    fn finish(mut self) -> std::io::Result<(Bytes, &'static str)> {
        let mut out = self.process(Bytes::new(), true)?.to_vec();
        let mut tail = Vec::new();
        let decoder = std::mem::replace(&mut self.decoder, Decoder::Identity);
        decoder.finish(&mut tail)?;
        let mut html = Vec::new();
        let result = match self.rewriter.take() {
            Some(mut r) => {
                r.write(&tail, &mut html).map_err(std::io::Error::other)?;
                let added = r.end(&mut html).map_err(std::io::Error::other)?;
                if added {
                    "injected"
                } else {
                    "already_present"
                }
            }
            None => {
                html = tail;
                self.result.unwrap_or("injected")
            }
        };
        self.encoder.write(&html, &mut out)?;
        self.encoder.finish(&mut out)?;
        Ok((Bytes::from(out), result))
    }
}

/// Just past the first `</head>`-looking end tag in `b` (ASCII case-insensitive), if any.
fn head_end_hint(b: &[u8]) -> Option<usize> {
    for i in memchr::memchr_iter(b'<', b) {
        let name = b.get(i + 1..i + 6)?;
        let after = b.get(i + 6).copied();
        if name.eq_ignore_ascii_case(b"/head")
            && matches!(
                after,
                Some(b'>' | b'/' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
            )
        {
            return memchr::memchr(b'>', &b[i + 6..]).map(|j| i + 6 + j + 1);
        }
    }
    None
}

pub struct InjectBody {
    inner: PooledBody,
    /// Behind a mutex only because response bodies must be `Sync`; one task polls it.
    pipeline: Mutex<Option<Pipeline>>,
    metrics: Arc<Metrics>,
}

impl InjectBody {
    pub fn new(
        inner: PooledBody,
        decoder: Decoder,
        rewriter: Rewriter,
        stop_when_placed: bool,
        encoder: Encoder,
        metrics: Arc<Metrics>,
    ) -> InjectBody {
        InjectBody {
            inner,
            pipeline: Mutex::new(Some(Pipeline {
                decoder,
                rewriter: Some(rewriter),
                stop_when_placed,
                encoder,
                sniff: Some(Vec::new()),
                result: None,
                pending: None,
                unflushed: false,
            })),
            metrics,
        }
    }

    /// The rewrite state; a poisoned lock still holds it (one task polls this body).
    fn pipeline(&self) -> std::sync::MutexGuard<'_, Option<Pipeline>> {
        self.pipeline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the rewrite after a failure in the middle of the page.
    fn abort(&self, e: std::io::Error) -> BoxError {
        self.pipeline().take();
        self.fail(e)
    }

    fn fail(&self, e: std::io::Error) -> BoxError {
        self.metrics.injection("aborted");
        tracing::warn!(error = %e, "page rewrite failed mid-stream; response aborted");
        Box::new(e)
    }
}

impl Body for InjectBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // Compressed output of the chunks handled in this call, not yet sent.
        let mut gathered: Vec<u8> = Vec::new();
        loop {
            let pending = self.pipeline().as_mut().and_then(|p| p.pending.take());
            if let Some(rest) = pending {
                return Poll::Ready(Some(Ok(Frame::data(rest))));
            }
            let polled = Pin::new(&mut self.inner).poll_frame(cx);
            match polled {
                Poll::Pending => {
                    // The upstream must be waited for: what the client has not got yet goes now.
                    let flushed = match self.pipeline().as_mut() {
                        Some(p) => p.flush(&mut gathered),
                        None => Ok(()),
                    };
                    if let Err(e) = flushed {
                        return Poll::Ready(Some(Err(self.abort(e))));
                    }
                    if gathered.is_empty() {
                        return Poll::Pending;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(gathered)))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers of a rewritten page are dropped: they describe other bytes.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let (result, identity) = match self.pipeline().as_mut() {
                        Some(p) => (p.process(data, false), p.identity_out()),
                        None => (Ok(Bytes::new()), true),
                    };
                    match result {
                        Ok(out) if identity => {
                            if !out.is_empty() {
                                return Poll::Ready(Some(Ok(Frame::data(out))));
                            }
                        }
                        Ok(out) => {
                            gathered.extend_from_slice(&out);
                            if gathered.len() >= SEND_AT {
                                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(gathered)))));
                            }
                        }
                        Err(e) => return Poll::Ready(Some(Err(self.abort(e)))),
                    }
                }
                Poll::Ready(None) => {
                    let p = self.pipeline().take();
                    let Some(p) = p else { return Poll::Ready(None) };
                    return match p.finish() {
                        Ok((out, result)) => {
                            self.metrics.injection(result);
                            gathered.extend_from_slice(&out);
                            if gathered.is_empty() {
                                Poll::Ready(None)
                            } else {
                                Poll::Ready(Some(Ok(Frame::data(Bytes::from(gathered)))))
                            }
                        }
                        Err(e) => Poll::Ready(Some(Err(self.fail(e)))),
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::head_end_hint;

    #[test]
    fn head_end_hint_finds_the_first_end_tag_of_head_in_any_case() {
        let page = b"<html><head><title>t</title></head><body></body>";
        assert_eq!(
            head_end_hint(page),
            Some(page.len() - "<body></body>".len())
        );
        assert_eq!(head_end_hint(b"<HEAD></HEAD >x"), Some(14));
        assert_eq!(head_end_hint(b"<head></head\n>x"), Some(14));
    }

    #[test]
    fn head_end_hint_ignores_lookalikes_and_unfinished_tags() {
        assert_eq!(head_end_hint(b"<header></header><p>"), None);
        assert_eq!(head_end_hint(b"<head></head"), None, "no `>` yet");
        assert_eq!(head_end_hint(b"<head></hea"), None);
        assert_eq!(head_end_hint(b""), None);
    }
}
