//! Entry points for the fuzz targets (`fuzz/`, cargo fuzz) and for the replay of their
//! committed corpus as ordinary tests. Each takes arbitrary bytes, runs one of the parts that
//! read hostile input, and panics only when an invariant breaks: the injector's output is its
//! input plus at most one tag, the same however the input is split; the TC3 `Authorization`
//! parser and the CSP rewrites answer anything; a configuration is accepted or refused in one
//! line naming the file.

use crate::inject::rewrite::{PageInjection, Position, Rewriter};
use std::sync::Arc;

const TAG: &[u8] = b"<script src=\"/__tccc/loader.js\" data-tccc-loader defer></script>";

fn rewrite(html: &[u8], cuts: &[usize]) -> Vec<u8> {
    let Some(enc) = lol_html::AsciiCompatibleEncoding::new(encoding_rs::UTF_8) else {
        return Vec::new();
    };
    let mut r = Rewriter::new(
        Arc::new(PageInjection::plain(Arc::from("/__tccc/loader.js"))),
        Position::Head,
        enc,
    );
    let mut out = Vec::new();
    let mut at = 0;
    for &p in cuts.iter().chain([html.len()].iter()) {
        let p = p.clamp(at, html.len());
        if r.write(&html[at..p], &mut out).is_err() {
            return out;
        }
        at = p;
    }
    let _ = r.end(&mut out);
    out
}

/// Whether `out` is `input` with `TAG` inserted at one place.
fn is_input_plus_tag(input: &[u8], out: &[u8]) -> bool {
    if out.len() != input.len() + TAG.len() {
        return false;
    }
    let prefix = input.iter().zip(out).take_while(|(a, b)| a == b).count();
    let suffix = input
        .iter()
        .rev()
        .zip(out.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    // The tag can sit at any i with out[..i] == input[..i] and out[i + T..] == input[i..].
    let lowest = input.len().saturating_sub(suffix);
    (lowest..=prefix.min(input.len())).any(|i| &out[i..i + TAG.len()] == TAG)
}

/// The first two bytes choose where the page is cut into chunks; the rest is the page.
pub fn injector(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let (seed, html) = (u16::from_le_bytes([data[0], data[1]]) as usize, &data[2..]);
    let cuts: Vec<usize> = if html.is_empty() {
        Vec::new()
    } else {
        let step = seed % html.len().max(1) + 1;
        (step..html.len()).step_by(step).collect()
    };
    let whole = rewrite(html, &[]);
    let split = rewrite(html, &cuts);
    assert_eq!(whole, split, "the split changed the output");
    // Attribute names are case-insensitive: `data-tccc-loAder` is a loader tag too.
    let already = html
        .windows(16)
        .any(|w| w.eq_ignore_ascii_case(b"data-tccc-loader"));
    assert!(
        is_input_plus_tag(html, &whole) || (already && whole == html),
        "the output is not the input plus one tag"
    );
}

/// Any `Authorization` value is answered; what parses has the fields the verifier uses.
pub fn authorization(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(a) = crate::tc3::authorization::parse(text) {
        assert!(!a.secret_id.is_empty());
        assert!(!a.signed_headers.is_empty());
    }
}

/// Any policy text is rewritten without a panic; allowing self-framing is idempotent and never
/// drops a source.
pub fn csp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let learned = crate::inject::csp::LearnedOrigins::default();
    let sources = crate::inject::csp::Sources::new(
        "https://crm.example/__tccc/loader.js".to_string(),
        None,
        &learned,
    );
    let _ = crate::inject::csp::rewrite_value(text, &sources, Some("n0nce"));
    let mut slot = None;
    let _ = crate::inject::csp::rewrite_meta(text, &sources, &mut slot);
    let _ = crate::inject::csp::plan_headers(&[text.to_string()], || "fresh".to_string());
    // The same text as a `<meta>` attribute's raw value, references and all: decoded as the
    // browser does or left alone, and the rewrite keeps every source the page wrote.
    if let Some(decoded) = crate::inject::charref::decode(text) {
        let mut slot = None;
        if let Some(new) = crate::inject::csp::rewrite_meta(&decoded, &sources, &mut slot) {
            let written = crate::inject::charref::encode(&new);
            assert_eq!(
                crate::inject::charref::decode(&written).as_deref(),
                Some(new.as_str()),
                "what is written back reads back the same"
            );
            for token in decoded.split(|c: char| c.is_ascii_whitespace() || c == ';') {
                if !token.is_empty()
                    && !token.eq_ignore_ascii_case("'none'")
                    && !token.contains(',')
                {
                    assert!(
                        new.to_ascii_lowercase()
                            .contains(&token.to_ascii_lowercase()),
                        "the meta rewrite dropped {token:?}"
                    );
                }
            }
        }
    }
    if let Some(relaxed) = crate::inject::csp::allow_self_framing(text) {
        assert_eq!(
            crate::inject::csp::allow_self_framing(&relaxed),
            None,
            "idempotent"
        );
        // Tokens as CSP parsers see them: separated by ASCII whitespace, ';' and ','.
        for token in text.split(|c: char| c.is_ascii_whitespace() || c == ';' || c == ',') {
            if !token.is_empty() && !token.eq_ignore_ascii_case("'none'") {
                assert!(
                    relaxed
                        .to_ascii_lowercase()
                        .contains(&token.to_ascii_lowercase()),
                    "a source was dropped"
                );
            }
        }
    }
}

/// Any configuration text is accepted or refused in one line that names the file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = crate::config::Config::parse(text, std::path::Path::new("fuzz.toml")) {
        let e = e.to_string();
        assert!(e.starts_with("fuzz.toml"), "the error names the file");
        assert_eq!(e.trim_end().lines().count(), 1, "one line");
    }
}

#[cfg(test)]
mod tests {
    type Target = fn(&[u8]);

    /// The committed corpus (`fuzz/corpus/<target>/`), replayed as ordinary tests: every
    /// input the fuzzers kept still holds every invariant.
    #[test]
    fn the_fuzz_corpus_replays() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let targets: [(&str, Target); 4] = [
            ("injector", super::injector),
            ("authorization", super::authorization),
            ("csp", super::csp),
            ("config", super::config),
        ];
        for (name, target) in targets {
            let dir = root.join(name);
            let mut n = 0;
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.unwrap().path();
                target(&std::fs::read(&path).unwrap());
                n += 1;
            }
            assert!(
                n >= 10,
                "{name}: a corpus of {n} inputs is too small to count"
            );
        }
    }

    #[test]
    fn the_injector_invariant_checker_can_fail() {
        let page = b"<html><head></head><body></body></html>";
        let mut out = page.to_vec();
        assert!(!super::is_input_plus_tag(page, &out));
        out.splice(12..12, super::TAG.iter().copied());
        assert!(super::is_input_plus_tag(page, &out));
        out[0] = b'X';
        assert!(!super::is_input_plus_tag(page, &out));
    }
}
