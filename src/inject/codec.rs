//! Content codings for rewritten pages: which ones the client accepts, what the upstream may
//! be asked for, and push-style decoders and encoders that turn one chunk into the next
//! without ever holding the whole page.
//!
//! Encoders run at levels that cost little per byte (gzip 5, brotli 4, zstd 3): the
//! libraries' defaults (brotli 11 in particular) are many times slower and would make the
//! sidecar, not TLS, the bottleneck of every page.

use flate2::write::{DeflateDecoder, GzDecoder, GzEncoder, ZlibDecoder};
use http::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING};
use std::io::Write;

pub const GZIP_LEVEL: u32 = 5;
pub const BROTLI_QUALITY: u32 = 4;
/// 512 KiB: plenty for HTML pages, and each encoder allocates its window up front (the
/// default 4 MiB per response would dominate the cost of a page).
pub const BROTLI_WINDOW: u32 = 19;
pub const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Br,
    Zstd,
}

impl Coding {
    pub fn token(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }

    fn parse(s: &str) -> Option<Coding> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Coding::Identity),
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Br),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }
}

/// The response's `Content-Encoding` when the sidecar can decode it: one coding at most
/// (stacked codings are left alone). `Err` carries the reason the page is skipped.
pub fn response_coding(h: &HeaderMap) -> Result<Coding, &'static str> {
    let mut codings = h
        .get_all(CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
    let first = codings.next();
    if codings.next().is_some() {
        return Err("encoding");
    }
    match first {
        None => Ok(Coding::Identity),
        Some(c) => Coding::parse(c).ok_or("encoding"),
    }
}

/// What the client accepts, by `Accept-Encoding` q-values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    gzip: bool,
    deflate: bool,
    br: bool,
    zstd: bool,
}

impl Accepted {
    pub fn from_headers(h: &HeaderMap) -> Accepted {
        let mut a = Accepted::default();
        let mut star: Option<bool> = None;
        let mut seen = [false; 4];
        for item in h
            .get_all(ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q_ok = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .next_back()
                .map(|q| q.trim().parse::<f32>().map(|q| q > 0.0).unwrap_or(false))
                .unwrap_or(true);
            let slot = match name.as_str() {
                "gzip" | "x-gzip" => 0,
                "deflate" => 1,
                "br" => 2,
                "zstd" => 3,
                "*" => {
                    star = Some(q_ok);
                    continue;
                }
                _ => continue,
            };
            seen[slot] = true;
            match slot {
                0 => a.gzip = q_ok,
                1 => a.deflate = q_ok,
                2 => a.br = q_ok,
                _ => a.zstd = q_ok,
            }
        }
        if let Some(s) = star {
            if !seen[0] {
                a.gzip = s;
            }
            if !seen[1] {
                a.deflate = s;
            }
            if !seen[2] {
                a.br = s;
            }
            if !seen[3] {
                a.zstd = s;
            }
        }
        a
    }

    pub fn accepts(&self, c: Coding) -> bool {
        match c {
            Coding::Identity => true,
            Coding::Gzip => self.gzip,
            Coding::Deflate => self.deflate,
            Coding::Br => self.br,
            Coding::Zstd => self.zstd,
        }
    }

    /// `Accept-Encoding` for the upstream: the client's codings that the sidecar can also
    /// decode, so that an HTML answer is never in a coding it cannot rewrite. `None` when
    /// nothing is left (the header is then removed: identity).
    pub fn upstream_header(&self) -> Option<HeaderValue> {
        let list: Vec<&str> = [
            (self.gzip, "gzip"),
            (self.deflate, "deflate"),
            (self.br, "br"),
            (self.zstd, "zstd"),
        ]
        .iter()
        .filter(|(ok, _)| *ok)
        .map(|(_, n)| *n)
        .collect();
        if list.is_empty() {
            None
        } else {
            HeaderValue::from_str(&list.join(", ")).ok()
        }
    }

    /// The coding to send a rewritten page in. A page the upstream compressed is re-encoded
    /// once anyway, so it goes out in the client's best coding (br, then zstd, then gzip:
    /// at the levels used they cost about the same and br is the smallest); deflate is never
    /// produced (its two meanings). A page the upstream sent uncompressed stays so: the
    /// operator chose not to compress it.
    pub fn output_for(&self, upstream: Coding) -> Coding {
        match upstream {
            Coding::Identity => Coding::Identity,
            _ if self.br => Coding::Br,
            _ if self.zstd => Coding::Zstd,
            _ if self.gzip => Coding::Gzip,
            _ => Coding::Identity,
        }
    }
}

/// Decodes pushed chunks; `Deflate` works out from the first bytes whether it is the zlib
/// format the standard means or the raw deflate some servers send.
pub enum Decoder {
    Identity,
    Gzip(Box<GzDecoder<Vec<u8>>>),
    Zlib(Box<ZlibDecoder<Vec<u8>>>),
    RawDeflate(Box<DeflateDecoder<Vec<u8>>>),
    /// Deflate whose format is not known yet (fewer than two bytes seen).
    DeflateSniff(Vec<u8>),
    Br(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Vec<u8>>>),
}

impl Decoder {
    pub fn new(c: Coding) -> std::io::Result<Decoder> {
        Ok(match c {
            Coding::Identity => Decoder::Identity,
            Coding::Gzip => Decoder::Gzip(Box::new(GzDecoder::new(Vec::new()))),
            Coding::Deflate => Decoder::DeflateSniff(Vec::new()),
            Coding::Br => Decoder::Br(Box::new(brotli::DecompressorWriter::new(
                Vec::new(),
                16 * 1024,
            ))),
            Coding::Zstd => Decoder::Zstd(Box::new(zstd::stream::write::Decoder::new(Vec::new())?)),
        })
    }

    /// Decodes `input`, appending the plain bytes to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Decoder::Identity => {
                out.extend_from_slice(input);
                return Ok(());
            }
            Decoder::DeflateSniff(buf) => {
                buf.extend_from_slice(input);
                if buf.len() < 2 {
                    return Ok(());
                }
                let zlib =
                    buf[0] & 0x0f == 8 && (u16::from(buf[0]) << 8 | u16::from(buf[1])) % 31 == 0;
                let pending = std::mem::take(buf);
                *self = if zlib {
                    Decoder::Zlib(Box::new(ZlibDecoder::new(Vec::new())))
                } else {
                    Decoder::RawDeflate(Box::new(DeflateDecoder::new(Vec::new())))
                };
                return self.push(&pending, out);
            }
            Decoder::Gzip(d) => {
                d.write_all(input)?;
                out.append(d.get_mut());
            }
            Decoder::Zlib(d) => {
                d.write_all(input)?;
                out.append(d.get_mut());
            }
            Decoder::RawDeflate(d) => {
                d.write_all(input)?;
                out.append(d.get_mut());
            }
            Decoder::Br(d) => {
                d.write_all(input)?;
                out.append(d.get_mut());
            }
            Decoder::Zstd(d) => {
                d.write_all(input)?;
                d.flush()?;
                out.append(d.get_mut());
            }
        }
        Ok(())
    }

    /// Ends the stream: the rest of the plain bytes, or an error for a truncated one.
    pub fn finish(self, out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Decoder::Identity => Ok(()),
            Decoder::DeflateSniff(buf) if buf.is_empty() => Ok(()),
            Decoder::DeflateSniff(_) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "truncated deflate stream",
            )),
            Decoder::Gzip(d) => {
                out.extend(d.finish()?);
                Ok(())
            }
            Decoder::Zlib(d) => {
                out.extend(d.finish()?);
                Ok(())
            }
            Decoder::RawDeflate(d) => {
                out.extend(d.finish()?);
                Ok(())
            }
            Decoder::Br(mut d) => {
                d.close()?;
                out.append(d.get_mut());
                Ok(())
            }
            Decoder::Zstd(d) => {
                out.extend(d.finish()?);
                Ok(())
            }
        }
    }
}

/// Encodes pushed chunks. The body flushes it whenever the upstream has nothing more ready,
/// so that the client gets bytes as soon as the upstream sends them, but not after every
/// chunk of a page that arrives all at once (each flush ends a block: CPU and bytes).
pub enum Encoder {
    Identity,
    Gzip(Box<GzEncoder<Vec<u8>>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, Vec<u8>>>),
}

impl Encoder {
    pub fn new(c: Coding) -> std::io::Result<Encoder> {
        Ok(match c {
            Coding::Identity | Coding::Deflate => Encoder::Identity,
            Coding::Gzip => Encoder::Gzip(Box::new(GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(GZIP_LEVEL),
            ))),
            Coding::Br => {
                // The size hint keeps brotli from sizing its tables for gigabytes: allocating
                // and zeroing them was most of the cost of a compressed page.
                let params = brotli::enc::BrotliEncoderParams {
                    quality: BROTLI_QUALITY as i32,
                    lgwin: BROTLI_WINDOW as i32,
                    size_hint: 256 * 1024,
                    mode: brotli::enc::backward_references::BrotliEncoderMode::BROTLI_MODE_TEXT,
                    ..Default::default()
                };
                Encoder::Br(Box::new(brotli::CompressorWriter::with_params(
                    Vec::new(),
                    16 * 1024,
                    &params,
                )))
            }
            Coding::Zstd => Encoder::Zstd(Box::new(zstd::stream::write::Encoder::new(
                Vec::new(),
                ZSTD_LEVEL,
            )?)),
        })
    }

    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Encoder::Identity => {
                out.extend_from_slice(input);
                Ok(())
            }
            Encoder::Gzip(e) => e.write_all(input),
            Encoder::Br(e) => e.write_all(input),
            Encoder::Zstd(e) => e.write_all(input),
        }
    }

    /// Moves out what the encoder has produced so far, without forcing anything out.
    pub fn take(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::Identity => {}
            Encoder::Gzip(e) => out.append(e.get_mut()),
            Encoder::Br(e) => out.append(e.get_mut()),
            Encoder::Zstd(e) => out.append(e.get_mut()),
        }
    }

    /// Emits what has been written so far as a complete, decodable prefix.
    pub fn flush(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Encoder::Identity => {}
            Encoder::Gzip(e) => e.flush()?,
            Encoder::Br(e) => e.flush()?,
            Encoder::Zstd(e) => e.flush()?,
        }
        self.take(out);
        Ok(())
    }

    pub fn finish(self, out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Encoder::Identity => {}
            Encoder::Gzip(e) => out.extend(e.finish()?),
            Encoder::Br(e) => out.extend(e.into_inner()),
            Encoder::Zstd(e) => out.extend(e.finish()?),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn accept_encoding_is_read_with_q_values_and_wildcards() {
        let a = Accepted::from_headers(&h("gzip, deflate, br, zstd"));
        assert_eq!(a.upstream_header().unwrap(), "gzip, deflate, br, zstd");
        let a = Accepted::from_headers(&h("br;q=0, gzip;q=0.5, compress"));
        assert!(!a.accepts(Coding::Br) && a.accepts(Coding::Gzip));
        assert_eq!(a.upstream_header().unwrap(), "gzip");
        let a = Accepted::from_headers(&h("*;q=0.1, gzip;q=0"));
        assert!(a.accepts(Coding::Br) && !a.accepts(Coding::Gzip));
        assert_eq!(
            Accepted::from_headers(&HeaderMap::new()).upstream_header(),
            None
        );
        assert_eq!(
            Accepted::from_headers(&h("compress, sdch")).upstream_header(),
            None
        );
    }

    #[test]
    fn output_coding_follows_the_upstream_and_the_client() {
        let all = Accepted::from_headers(&h("gzip, br, zstd"));
        assert_eq!(all.output_for(Coding::Br), Coding::Br);
        assert_eq!(
            all.output_for(Coding::Gzip),
            Coding::Br,
            "a browser gets br"
        );
        assert_eq!(all.output_for(Coding::Identity), Coding::Identity);
        assert_eq!(all.output_for(Coding::Deflate), Coding::Br);
        let gz = Accepted::from_headers(&h("gzip, deflate"));
        assert_eq!(gz.output_for(Coding::Br), Coding::Gzip);
        assert_eq!(
            gz.output_for(Coding::Deflate),
            Coding::Gzip,
            "deflate is never produced"
        );
        let zs = Accepted::from_headers(&h("zstd"));
        assert_eq!(zs.output_for(Coding::Gzip), Coding::Zstd);
        let none = Accepted::default();
        assert_eq!(none.output_for(Coding::Zstd), Coding::Identity);
    }

    fn round_trip(c: Coding, chunk: usize) {
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("<p>{i}</p>").into_bytes())
            .collect();
        let mut enc = Encoder::new(c).unwrap();
        let mut wire = Vec::new();
        for piece in text.chunks(chunk) {
            enc.write(piece, &mut wire).unwrap();
            enc.flush(&mut wire).unwrap();
        }
        enc.finish(&mut wire).unwrap();
        let mut dec = Decoder::new(c).unwrap();
        let mut plain = Vec::new();
        for piece in wire.chunks(chunk) {
            dec.push(piece, &mut plain).unwrap();
        }
        dec.finish(&mut plain).unwrap();
        assert_eq!(plain, text, "{c:?}");
    }

    #[test]
    fn every_coding_round_trips_in_small_and_large_chunks() {
        for c in [Coding::Gzip, Coding::Br, Coding::Zstd, Coding::Identity] {
            round_trip(c, 1000);
            round_trip(c, 65536);
        }
    }

    #[test]
    fn deflate_is_read_in_both_of_its_formats() {
        let text = b"<html><head></head><body>deflate</body></html>".repeat(20);
        for zlib in [true, false] {
            let wire = if zlib {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(5));
                e.write_all(&text).unwrap();
                e.finish().unwrap()
            } else {
                let mut e =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(5));
                e.write_all(&text).unwrap();
                e.finish().unwrap()
            };
            let mut dec = Decoder::new(Coding::Deflate).unwrap();
            let mut plain = Vec::new();
            for b in &wire {
                dec.push(std::slice::from_ref(b), &mut plain).unwrap();
            }
            dec.finish(&mut plain).unwrap();
            assert_eq!(plain, text, "zlib={zlib}");
        }
    }

    #[test]
    fn truncated_streams_are_errors() {
        let mut enc = Encoder::new(Coding::Gzip).unwrap();
        let mut wire = Vec::new();
        enc.write(b"hello world, hello world", &mut wire).unwrap();
        enc.finish(&mut wire).unwrap();
        let mut dec = Decoder::new(Coding::Gzip).unwrap();
        let mut plain = Vec::new();
        dec.push(&wire[..wire.len() - 6], &mut plain).unwrap();
        assert!(dec.finish(&mut plain).is_err());
    }
}
