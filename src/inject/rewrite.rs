//! The streaming HTML rewrite: exactly one loader tag per document, placed by the tokenizer
//! (lol_html), never by searching bytes, so `<head>` inside a script, a comment or an
//! attribute is never mistaken for the real one, and markup split across chunks at any byte
//! is handled.
//!
//! Placement (`inject.position = "head"`): before the first `</head>`; when the head is
//! closed implicitly (no end tag), before the first `<body>` or `<frameset>`; with neither,
//! at the end of the document. A `data-tccc-loader` script already in the page (a second
//! sidecar in a chain) means nothing is added. Bytes outside the added tag are passed
//! through unchanged, whatever the page's charset.

use super::{charref, csp};
use lol_html::html_content::{ContentType, DocumentEnd, Element, EndTag};
use lol_html::send::ElementContentHandlers;
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{end, end_tag, AsciiCompatibleEncoding, MemorySettings, OutputSink, Selector};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// The most lol_html may buffer for one token (a huge attribute, an unclosed comment); past
/// it the rest of the page passes through untouched rather than failing.
const MAX_PARSER_MEMORY: usize = 1024 * 1024;

/// The selectors, parsed once: parsing them for every page was a sixth of the rewrite's cost.
struct Selectors {
    meta_csp: Selector,
    loader: Selector,
    head: Selector,
    body: Selector,
    frameset: Selector,
}

static SELECTORS: LazyLock<Selectors> = LazyLock::new(|| {
    let parse = |s: &str| {
        s.parse::<Selector>()
            .unwrap_or_else(|e| unreachable!("constant selector {s}: {e}"))
    };
    Selectors {
        meta_csp: parse("meta[http-equiv]"),
        loader: parse("script[data-tccc-loader]"),
        head: parse("head"),
        body: parse("body"),
        frameset: parse("frameset"),
    }
});

pub(super) type Handler = (Cow<'static, Selector>, ElementContentHandlers<'static>);

/// A handler for the elements `selector` matches.
pub(super) fn on(
    selector: &'static Selector,
    f: impl FnMut(&mut Element<'_, '_, lol_html::send::SendHandlerTypes>) -> lol_html::HandlerResult
        + Send
        + 'static,
) -> Handler {
    (
        Cow::Borrowed(selector),
        ElementContentHandlers::default().element(f),
    )
}

/// What one page gets: the loader's `src`, the nonce its CSP needs (the response head may
/// have chosen it, or a `<meta>` policy before the tag may), and the sources a `<meta>` CSP
/// must allow (`None`: leave meta policies alone).
pub struct PageInjection {
    /// The loader path, already escaped for an attribute value.
    pub loader_src: Arc<str>,
    pub nonce: Mutex<Option<String>>,
    pub csp: Option<csp::Sources>,
    /// Shell mode's bridge: extra attributes (already escaped), and the tag is not deferred,
    /// so that the bridge reports the page's user before the page's own scripts run.
    pub bridge: Option<String>,
    /// URLs naming the app's own address are moved to the public origin (`inject.rewrite_urls`).
    pub urls: Option<Arc<crate::wire::rebase::Rebase>>,
}

impl PageInjection {
    pub fn plain(loader_src: Arc<str>) -> PageInjection {
        PageInjection {
            loader_src,
            nonce: Mutex::new(None),
            csp: None,
            bridge: None,
            urls: None,
        }
    }

    /// The contract's tag, with the nonce when there is one (the bridge's in shell mode).
    pub fn tag(&self) -> String {
        let nonce = self.nonce.lock().unwrap_or_else(|p| p.into_inner());
        let nonce = match nonce.as_deref() {
            Some(n) => format!(" nonce=\"{n}\""),
            None => String::new(),
        };
        match &self.bridge {
            Some(attrs) => format!(
                "<script src=\"{}\"{nonce} data-tccc-loader{attrs}></script>",
                self.loader_src
            ),
            None => format!(
                "<script src=\"{}\"{nonce} data-tccc-loader defer></script>",
                self.loader_src
            ),
        }
    }

    /// Rewrites a `<meta http-equiv="Content-Security-Policy">` element's policy.
    fn meta(&self, el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>) {
        let Some(sources) = &self.csp else { return };
        // Attribute text arrives undecoded (`&#39;` for `'`): the policy is read as the browser
        // reads it, and one whose references are ambiguous is left as the page wrote it.
        let is_csp = el
            .get_attribute("http-equiv")
            .and_then(|v| charref::decode(&v))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("content-security-policy"));
        let Some(raw) = el.get_attribute("content").filter(|_| is_csp) else {
            return;
        };
        let Some(content) = charref::decode(&raw) else {
            return;
        };
        let mut slot = self.nonce.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(new) = csp::rewrite_meta(&content, sources, &mut slot) {
            let _ = el.set_attribute("content", &charref::encode(&new));
        }
    }
}

pub use crate::config::Position;

struct Sink(Arc<Mutex<Vec<u8>>>);

impl OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(chunk);
    }
}

pub struct Rewriter {
    inner: HtmlRewriter<'static, Sink>,
    out: Arc<Mutex<Vec<u8>>>,
    flags: Arc<Flags>,
}

/// `done`: the page has a loader tag (ours, or one it came with); `added`: ours.
#[derive(Default)]
struct Flags {
    done: AtomicBool,
    added: AtomicBool,
}

/// Whether the tag may be added here (once per document); marks it added.
fn claim(f: &Flags) -> bool {
    let first = !f.done.swap(true, Ordering::Relaxed);
    if first {
        f.added.store(true, Ordering::Relaxed);
    }
    first
}

impl Rewriter {
    /// A rewriter for a page in `encoding` (ASCII-compatible; the caller skips others).
    pub fn new(
        tag: Arc<PageInjection>,
        position: Position,
        encoding: AsciiCompatibleEncoding,
    ) -> Rewriter {
        let out = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(Flags::default());
        let mut settings = Settings::new_send()
            .with_encoding(encoding)
            .with_strict(false)
            .with_memory_settings(
                MemorySettings::new()
                    .with_max_allowed_memory_usage(MAX_PARSER_MEMORY)
                    .with_graceful_bail_out_on_memory_limit_exceeded(true),
            );
        if let Some(rebase) = &tag.urls {
            for h in super::urls::handlers(rebase.clone()) {
                settings = settings.append_element_content_handler(h);
            }
        }
        if tag.csp.is_some() {
            let t = tag.clone();
            settings = settings.append_element_content_handler(on(
                &SELECTORS.meta_csp,
                move |el: &mut Element<'_, '_, _>| {
                    t.meta(el);
                    Ok(())
                },
            ));
        }
        {
            // A page that already has the loader (a sidecar in front of this one) gets no second.
            let d = done.clone();
            settings = settings.append_element_content_handler(on(
                &SELECTORS.loader,
                move |_el: &mut Element<'_, '_, _>| {
                    d.done.store(true, Ordering::Relaxed);
                    Ok(())
                },
            ));
        }
        match position {
            Position::Head => {
                settings = settings.append_element_content_handler(before_end_tag(
                    &SELECTORS.head,
                    done.clone(),
                    tag.clone(),
                ));
                for selector in [&SELECTORS.body, &SELECTORS.frameset] {
                    let (d, t) = (done.clone(), tag.clone());
                    settings = settings.append_element_content_handler(on(
                        selector,
                        move |el: &mut Element<'_, '_, _>| {
                            if claim(&d) {
                                el.before(&t.tag(), ContentType::Html);
                            }
                            Ok(())
                        },
                    ));
                }
            }
            Position::Body => {
                settings = settings.append_element_content_handler(before_end_tag(
                    &SELECTORS.body,
                    done.clone(),
                    tag.clone(),
                ));
            }
        }
        {
            let (d, t) = (done.clone(), tag);
            settings =
                settings.append_document_content_handler(end!(move |end: &mut DocumentEnd<'_>| {
                    if claim(&d) {
                        end.append(&t.tag(), ContentType::Html);
                    }
                    Ok(())
                }));
        }
        let inner = HtmlRewriter::new(settings, Sink(out.clone()));
        Rewriter {
            inner,
            out,
            flags: done,
        }
    }

    fn drain(&self, out: &mut Vec<u8>) {
        let mut g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if out.is_empty() {
            // Hand over the buffer itself rather than copy it.
            std::mem::swap(out, &mut *g);
        } else {
            out.append(&mut g);
        }
    }

    /// Rewrites `input`, appending what can be emitted so far to `out`.
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.inner.write(input).map_err(|e| e.to_string())?;
        self.drain(out);
        Ok(())
    }

    /// Ends the document (the end-of-document fallback runs here); returns whether this
    /// rewriter added the tag.
    pub fn end(self, out: &mut Vec<u8>) -> Result<bool, String> {
        let Rewriter {
            inner,
            out: buf,
            flags,
        } = self;
        inner.end().map_err(|e| e.to_string())?;
        out.append(&mut buf.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(flags.added.load(Ordering::Relaxed))
    }

    /// Whether this rewriter added the tag (so far).
    pub fn added(&self) -> bool {
        self.flags.added.load(Ordering::Relaxed)
    }

    /// Whether the page has its loader tag (added here, or already there).
    pub fn placed(&self) -> bool {
        self.flags.done.load(Ordering::Relaxed)
    }
}

/// A handler that places the tag just before the first `selector` element's end tag.
fn before_end_tag(selector: &'static Selector, d: Arc<Flags>, t: Arc<PageInjection>) -> Handler {
    on(selector, move |el: &mut Element<'_, '_, _>| {
        if done_already(&d) || !el.can_have_content() {
            return Ok(());
        }
        let (d2, t2) = (d.clone(), t.clone());
        el.on_end_tag(end_tag!(move |end: &mut EndTag<'_>| {
            if claim(&d2) {
                end.before(&t2.tag(), ContentType::Html);
            }
            Ok(())
        }))?;
        Ok(())
    })
}

fn done_already(d: &Flags) -> bool {
    d.done.load(Ordering::Relaxed)
}

/// The encoding a page's bytes are in, from its `Content-Type` charset: `Ok(None)` when none is
/// named (UTF-8, adjusted by a `<meta charset>`), `Err` for encodings the rewriter cannot
/// handle without re-encoding (UTF-16, ISO-2022-JP): such pages pass through untouched.
pub fn page_encoding(content_type: &str) -> Result<Option<AsciiCompatibleEncoding>, &'static str> {
    let Some(label) = content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    }) else {
        return Ok(None);
    };
    let enc = encoding_rs::Encoding::for_label(label.as_bytes()).ok_or("charset")?;
    AsciiCompatibleEncoding::new(enc).map(Some).ok_or("charset")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "<script src=\"/__tccc/loader.js\" data-tccc-loader defer></script>";

    fn rewrite_in_chunks(
        html: &[u8],
        chunk: usize,
        enc: &'static encoding_rs::Encoding,
    ) -> Vec<u8> {
        let mut r = Rewriter::new(
            Arc::new(PageInjection::plain(Arc::from("/__tccc/loader.js"))),
            Position::Head,
            AsciiCompatibleEncoding::new(enc).unwrap(),
        );
        let mut out = Vec::new();
        for piece in html.chunks(chunk.max(1)) {
            r.write(piece, &mut out).unwrap();
        }
        r.end(&mut out).unwrap();
        out
    }

    fn rewrite(html: &str) -> String {
        String::from_utf8(rewrite_in_chunks(
            html.as_bytes(),
            1 << 20,
            encoding_rs::UTF_8,
        ))
        .unwrap()
    }

    fn count(s: &str) -> usize {
        s.matches("data-tccc-loader").count()
    }

    /// Rewrites `html` with CSP handling on, as for a page whose headers chose no nonce.
    fn rewrite_with_csp(html: &str) -> (String, Option<String>) {
        let page = Arc::new(PageInjection {
            csp: Some(csp::Sources {
                loader_url: "https://oa.example.com/__tccc/loader.js".into(),
                script: vec!["https://sdk.example-cdn.cn".into()],
                connect: vec!["wss://tccc.qcloud.com".into()],
                media: vec![],
            }),
            ..PageInjection::plain(Arc::from("/__tccc/loader.js"))
        });
        let mut r = Rewriter::new(
            page.clone(),
            Position::Head,
            AsciiCompatibleEncoding::new(encoding_rs::UTF_8).unwrap(),
        );
        let mut out = Vec::new();
        r.write(html.as_bytes(), &mut out).unwrap();
        r.end(&mut out).unwrap();
        let nonce = page.nonce.lock().unwrap().clone();
        (String::from_utf8(out).unwrap(), nonce)
    }

    /// The `content` of the first `<meta>`, decoded as a browser decodes a double-quoted value.
    fn meta_content(html: &str) -> String {
        let start = html.find("content=\"").unwrap() + 9;
        let len = html[start..].find('"').unwrap();
        charref::decode(&html[start..start + len]).unwrap()
    }

    #[test]
    fn an_entity_encoded_meta_policy_keeps_every_source_and_directive() {
        for quote in ["&#39;", "&#x27;", "&apos;"] {
            let policy = "script-src 'nonce-Pg9' 'strict-dynamic'; object-src 'none'; base-uri 'none'; default-src 'self'"
                .replace('\'', quote);
            let html = format!(
                "<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\"></head><body></body></html>"
            );
            let (out, nonce) = rewrite_with_csp(&html);
            let got = meta_content(&out);
            assert_eq!(
                got,
                "script-src 'nonce-Pg9' 'strict-dynamic'; object-src 'none'; base-uri 'none'; default-src 'self'; connect-src 'self' wss://tccc.qcloud.com; media-src 'self'",
                "{quote}: {out}"
            );
            assert_eq!(
                nonce.as_deref(),
                Some("Pg9"),
                "the loader takes the page's nonce"
            );
            assert!(out.contains("nonce=\"Pg9\" data-tccc-loader"), "{out}");
        }
    }

    #[test]
    fn a_meta_policy_with_ambiguous_references_is_left_as_written() {
        let html = "<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"script-src &#39nonce-a&#39 &nbsp;\"></head></html>";
        let (out, nonce) = rewrite_with_csp(html);
        assert!(
            out.contains("content=\"script-src &#39nonce-a&#39 &nbsp;\""),
            "{out}"
        );
        assert_eq!(nonce, None);
    }

    #[test]
    fn a_rewritten_meta_policy_escapes_what_it_writes_back() {
        let html = "<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'self' https://a.example/?x=1&amp;y=&quot;2&quot;\"></head></html>";
        let (out, _) = rewrite_with_csp(html);
        let got = meta_content(&out);
        assert!(
            got.starts_with("script-src 'self' https://a.example/?x=1&y=\"2\" "),
            "{got}"
        );
    }

    #[test]
    fn the_tag_goes_at_the_end_of_head() {
        let out =
            rewrite("<!doctype html><html><head><title>t</title></head><body>x</body></html>");
        assert_eq!(
            out,
            format!("<!doctype html><html><head><title>t</title>{TAG}</head><body>x</body></html>")
        );
    }

    #[test]
    fn split_at_every_byte_still_injects_once() {
        let html = "<html><he\u{0}ad></head><body></body></html>".replace('\u{0}', "");
        for chunk in 1..12 {
            let out = String::from_utf8(rewrite_in_chunks(
                html.as_bytes(),
                chunk,
                encoding_rs::UTF_8,
            ))
            .unwrap();
            assert_eq!(count(&out), 1, "chunk {chunk}: {out}");
            assert!(out.contains(&format!("{TAG}</head>")), "{out}");
        }
    }

    #[test]
    fn fallbacks_for_missing_or_repeated_heads_and_bodies() {
        let no_head = rewrite("<html><body><p>x</p></body></html>");
        assert_eq!(count(&no_head), 1);
        assert!(no_head.contains(&format!("{TAG}<body>")), "{no_head}");
        let implicit = rewrite("<html><head><title>t</title><body>x</body></html>");
        assert!(implicit.contains(&format!("{TAG}<body>")), "{implicit}");
        let fragment = rewrite("<p>just a fragment</p>");
        assert_eq!(fragment, format!("<p>just a fragment</p>{TAG}"));
        for html in [
            "<html><head></head><head></head><body></body></html>",
            "<html><head></head><body></body><body></body></html>",
            "<html><head></head><body><head></head></body></html>",
        ] {
            assert_eq!(count(&rewrite(html)), 1, "{html}");
        }
        let frameset = rewrite("<html><frameset><frame src=a></frameset></html>");
        assert!(frameset.contains(&format!("{TAG}<frameset>")), "{frameset}");
    }

    #[test]
    fn head_inside_scripts_comments_and_attributes_is_not_a_head() {
        let html = "<html><script>var s=\"<head></head>\";</script><!-- <head></head> --><div title=\"</head>\"></div><head></head></html>";
        let out = rewrite(html);
        assert_eq!(count(&out), 1);
        assert!(out.contains("var s=\"<head></head>\";"));
        assert!(out.contains("<!-- <head></head> -->"));
        assert!(
            out.ends_with(&format!("<head>{TAG}</head></html>")),
            "{out}"
        );
    }

    #[test]
    fn body_position_goes_before_the_end_of_body() {
        let mut r = Rewriter::new(
            Arc::new(PageInjection::plain(Arc::from("/__tccc/loader.js"))),
            Position::Body,
            AsciiCompatibleEncoding::new(encoding_rs::UTF_8).unwrap(),
        );
        let mut out = Vec::new();
        r.write(b"<html><head></head><body><p>x</p></body></html>", &mut out)
            .unwrap();
        assert!(r.end(&mut out).unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("<html><head></head><body><p>x</p>{TAG}</body></html>")
        );
    }

    #[test]
    fn an_existing_loader_tag_means_nothing_is_added() {
        let html = format!("<html><head>{TAG}</head><body></body></html>");
        assert_eq!(rewrite(&html), html);
    }

    #[test]
    fn non_utf8_pages_keep_their_bytes() {
        for label in [
            "gbk",
            "gb18030",
            "big5",
            "shift_jis",
            "windows-1252",
            "iso-8859-1",
        ] {
            let enc = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap();
            let (bytes, _, _) = enc.encode(
                "<html><head><title>客服 café ｶﾀｶﾅ</title></head><body>电话 ünïcode</body></html>",
            );
            let out = rewrite_in_chunks(&bytes, 7, enc);
            let mut expected = bytes.to_vec();
            let at = expected.windows(7).position(|w| w == b"</head>").unwrap();
            expected.splice(at..at, TAG.bytes());
            assert_eq!(out, expected, "{label}");
        }
    }

    #[test]
    fn charsets_the_rewriter_cannot_keep_are_refused() {
        assert!(page_encoding("text/html; charset=utf-16").is_err());
        assert!(page_encoding("text/html; charset=\"UTF-16LE\"").is_err());
        assert!(page_encoding("text/html; charset=bogus-charset").is_err());
        assert!(page_encoding("text/html; charset=GBK").unwrap().is_some());
        assert!(page_encoding("text/html").unwrap().is_none());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Pieces of markup the rewriter must get right in any order: heads and bodies that
        /// open, close, repeat or are missing, and the places where `</head>` is not a tag.
        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("<!doctype html>".to_string()),
                Just("<html lang=\"zh\">".to_string()),
                Just("<head>".to_string()),
                Just("</head>".to_string()),
                Just("<HEAD >".to_string()),
                Just("<body class=\"x\">".to_string()),
                Just("</body>".to_string()),
                Just("</html>".to_string()),
                Just("<title>客户 &amp; x</title>".to_string()),
                Just("<script>var s = '</head><body>';</script>".to_string()),
                Just("<!-- </head> -->".to_string()),
                Just("<textarea></head></textarea>".to_string()),
                Just("<p data-x=\"</head>\">".to_string()),
                Just("<frameset><frame src=a></frameset>".to_string()),
                Just("<".to_string()),
                Just(">".to_string()),
                "[a-zA-Z0-9 \n\t/=\"'&;中文€-]{0,12}",
            ]
        }

        fn page() -> impl Strategy<Value = String> {
            prop::collection::vec(piece(), 0..24).prop_map(|v| v.concat())
        }

        /// Splits `len` bytes at the given cut points.
        fn chunked(html: &[u8], cuts: &[usize]) -> Vec<u8> {
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (html.len() + 1)).collect();
            points.sort_unstable();
            points.dedup();
            let mut r = Rewriter::new(
                Arc::new(PageInjection::plain(Arc::from("/__tccc/loader.js"))),
                Position::Head,
                AsciiCompatibleEncoding::new(encoding_rs::UTF_8).unwrap(),
            );
            let mut out = Vec::new();
            let mut at = 0;
            for p in points.into_iter().chain([html.len()]) {
                r.write(&html[at..p], &mut out).unwrap();
                at = p;
            }
            r.end(&mut out).unwrap();
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            /// The injector's invariant: the output is the input plus exactly one tag, byte
            /// for byte, however the input is split into chunks.
            #[test]
            fn output_is_input_plus_one_tag_for_any_split(
                html in page(),
                cuts in prop::collection::vec(any::<usize>(), 0..16),
            ) {
                let out = chunked(html.as_bytes(), &cuts);
                let text = String::from_utf8(out).expect("UTF-8 in, UTF-8 out");
                prop_assert_eq!(text.matches(TAG).count(), 1, "{}", text);
                let at = text.find(TAG).unwrap();
                let rest = format!("{}{}", &text[..at], &text[at + TAG.len()..]);
                prop_assert_eq!(rest, html.clone());
                let whole = String::from_utf8(chunked(html.as_bytes(), &[])).unwrap();
                prop_assert_eq!(text, whole, "the split changed the result");
            }
        }
    }
}
