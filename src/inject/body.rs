//! The rewritten body: upstream chunks are decoded, rewritten and re-encoded one at a time
//! and sent as they come, so memory stays flat however large the page and the first bytes
//! reach the client before the upstream has finished. A failure in the middle (a corrupt
//! compressed stream) can only abort the response: its head is already sent.

use super::codec::{Decoder, Encoder};
use super::rewrite::Rewriter;
use crate::metrics::Metrics;
use crate::proxy::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

struct Pipeline {
    decoder: Decoder,
    rewriter: Rewriter,
    encoder: Encoder,
    /// Until the first two bytes are known: a UTF-16 byte-order mark means the page is
    /// passed through untouched (the tokenizer would corrupt it).
    sniff: Option<Vec<u8>>,
    passthrough: bool,
    plain: Vec<u8>,
    html: Vec<u8>,
}

impl Pipeline {
    fn process(&mut self, input: &[u8], last: bool) -> std::io::Result<Vec<u8>> {
        self.plain.clear();
        self.decoder.push(input, &mut self.plain)?;
        if let Some(buf) = &mut self.sniff {
            buf.extend_from_slice(&self.plain);
            if buf.len() < 2 && !last {
                return Ok(Vec::new());
            }
            self.passthrough = buf.starts_with(&[0xFF, 0xFE]) || buf.starts_with(&[0xFE, 0xFF]);
            self.plain = self.sniff.take().unwrap_or_default();
        }
        self.html.clear();
        if self.passthrough {
            std::mem::swap(&mut self.html, &mut self.plain);
        } else {
            self.rewriter
                .write(&self.plain, &mut self.html)
                .map_err(std::io::Error::other)?;
        }
        let mut out = Vec::with_capacity(self.html.len() + 64);
        self.encoder.write(&self.html, &mut out)?;
        self.encoder.flush(&mut out)?;
        Ok(out)
    }

    /// The last bytes, and what became of the page (the metrics' result label).
    fn finish(mut self) -> std::io::Result<(Vec<u8>, &'static str)> {
        let mut out = self.process(&[], true)?;
        let mut tail = Vec::new();
        self.decoder.finish(&mut tail)?;
        let mut html = Vec::new();
        let result = if self.passthrough {
            html = tail;
            "utf16_passthrough"
        } else {
            self.rewriter
                .write(&tail, &mut html)
                .map_err(std::io::Error::other)?;
            let added = self
                .rewriter
                .end(&mut html)
                .map_err(std::io::Error::other)?;
            if added {
                "injected"
            } else {
                "already_present"
            }
        };
        self.encoder.write(&html, &mut out)?;
        self.encoder.finish(&mut out)?;
        Ok((out, result))
    }
}

pub struct InjectBody {
    inner: Incoming,
    /// Behind a mutex only because response bodies must be `Sync`; one task polls it.
    pipeline: Mutex<Option<Pipeline>>,
    metrics: Arc<Metrics>,
}

impl InjectBody {
    pub fn new(
        inner: Incoming,
        decoder: Decoder,
        rewriter: Rewriter,
        encoder: Encoder,
        metrics: Arc<Metrics>,
    ) -> InjectBody {
        InjectBody {
            inner,
            pipeline: Mutex::new(Some(Pipeline {
                decoder,
                rewriter,
                encoder,
                sniff: Some(Vec::new()),
                passthrough: false,
                plain: Vec::new(),
                html: Vec::new(),
            })),
            metrics,
        }
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
        loop {
            let polled = Pin::new(&mut self.inner).poll_frame(cx);
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers of a rewritten page are dropped: they describe other bytes.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let result = {
                        let mut g = self.pipeline.lock().unwrap_or_else(|p| p.into_inner());
                        match g.as_mut() {
                            Some(p) => p.process(&data, false),
                            None => Ok(Vec::new()),
                        }
                    };
                    match result {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => {
                            self.pipeline
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .take();
                            return Poll::Ready(Some(Err(self.fail(e))));
                        }
                    }
                }
                Poll::Ready(None) => {
                    let p = self
                        .pipeline
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    let Some(p) = p else { return Poll::Ready(None) };
                    return match p.finish() {
                        Ok((out, result)) => {
                            self.metrics.injection(result);
                            if out.is_empty() {
                                Poll::Ready(None)
                            } else {
                                Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
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
