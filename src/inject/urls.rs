//! Absolute URLs in a page that name the application's own address (its upstream origin,
//! `upstream.internal_origins`, or the public host over plain HTTP), moved to the public
//! origin in the same streaming pass that adds the loader: a form that would post to
//! `http://oa.intranet:8080/login` from the HTTPS page posts through the sidecar instead.
//!
//! Only the attributes that carry URLs are read, through the tokenizer: `href` (links,
//! `<base>`, `<link>`, SVG), `src`, `action`, `formaction`, `srcset`, `poster`,
//! `<object data>`, `xlink:href` and a `<meta http-equiv=refresh>`'s `url=`. Text inside
//! `<script>`, `<style>` and `<textarea>` is never an attribute, so it is never touched; nor
//! are inline event handlers, `integrity` (it covers the content, not the address) or any
//! URL of another origin. Values keep their character references: only the origin at the
//! front is replaced.

use super::rewrite::{on, Handler};
use crate::wire::rebase::Rebase;
use lol_html::html_content::Element;
use lol_html::Selector;
use std::sync::{Arc, LazyLock};

/// The attributes holding one URL each, by the elements that may carry them. Each selector
/// names its element: lol_html then lexes only those tags and skips every other one by
/// name, where an attribute-only selector (`[href]`) would make it lex every tag of the page.
const SINGLE: [(&str, &str); 24] = [
    ("a[href]", "href"),
    ("link[href]", "href"),
    ("area[href]", "href"),
    ("base[href]", "href"),
    ("use[href]", "href"),
    ("image[href]", "href"),
    ("img[src]", "src"),
    ("script[src]", "src"),
    ("iframe[src]", "src"),
    ("frame[src]", "src"),
    ("source[src]", "src"),
    ("embed[src]", "src"),
    ("audio[src]", "src"),
    ("video[src]", "src"),
    ("input[src]", "src"),
    ("track[src]", "src"),
    ("form[action]", "action"),
    ("button[formaction]", "formaction"),
    ("input[formaction]", "formaction"),
    ("video[poster]", "poster"),
    ("object[data]", "data"),
    ("a[xlink\\:href]", "xlink:href"),
    ("use[xlink\\:href]", "xlink:href"),
    ("image[xlink\\:href]", "xlink:href"),
];

struct Selectors {
    single: Vec<(Selector, &'static str)>,
    srcset: Vec<Selector>,
    refresh: Selector,
}

static SELECTORS: LazyLock<Selectors> = LazyLock::new(|| {
    let parse = |s: &str| {
        s.parse::<Selector>()
            .unwrap_or_else(|e| unreachable!("constant selector {s}: {e}"))
    };
    Selectors {
        single: SINGLE.iter().map(|(s, a)| (parse(s), *a)).collect(),
        srcset: vec![parse("img[srcset]"), parse("source[srcset]")],
        refresh: parse("meta[http-equiv][content]"),
    }
});

type El<'r, 't> = Element<'r, 't, lol_html::send::SendHandlerTypes>;

/// The element handlers that rewrite a page's URLs with `rebase`.
pub fn handlers(rebase: Arc<Rebase>) -> Vec<Handler> {
    let s = &*SELECTORS;
    let mut out = Vec::with_capacity(s.single.len() + 2);
    for (selector, attr) in &s.single {
        let r = rebase.clone();
        let attr: &'static str = attr;
        out.push(on(selector, move |el: &mut El<'_, '_>| {
            if let Some(new) = el.get_attribute(attr).and_then(|v| single(&r, &v)) {
                let _ = el.set_attribute(attr, &new);
            }
            Ok(())
        }));
    }
    for selector in &s.srcset {
        let r = rebase.clone();
        out.push(on(selector, move |el: &mut El<'_, '_>| {
            if let Some(new) = el.get_attribute("srcset").and_then(|v| srcset(&r, &v)) {
                let _ = el.set_attribute("srcset", &new);
            }
            Ok(())
        }));
    }
    out.push(on(&s.refresh, move |el: &mut El<'_, '_>| {
        let is_refresh = el
            .get_attribute("http-equiv")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("refresh"));
        if is_refresh {
            if let Some(new) = el
                .get_attribute("content")
                .and_then(|v| refresh(&rebase, &v))
            {
                let _ = el.set_attribute("content", &new);
            }
        }
        Ok(())
    }));
    out
}

/// An attribute holding one URL (HTML strips surrounding ASCII whitespace from it).
fn single(r: &Rebase, value: &str) -> Option<String> {
    r.url(value.trim_matches(|c: char| c.is_ascii_whitespace()))
}

/// `srcset`: comma-separated candidates, each a URL and an optional descriptor.
fn srcset(r: &Rebase, value: &str) -> Option<String> {
    let mut changed = false;
    let parts: Vec<String> = value
        .split(',')
        .map(|candidate| {
            let lead = candidate.len() - candidate.trim_start().len();
            let body = &candidate[lead..];
            let end = body
                .find(|c: char| c.is_ascii_whitespace())
                .unwrap_or(body.len());
            match r.url(&body[..end]) {
                Some(new) => {
                    changed = true;
                    format!("{}{new}{}", &candidate[..lead], &body[end..])
                }
                None => candidate.to_string(),
            }
        })
        .collect();
    changed.then(|| parts.join(","))
}

/// `<meta http-equiv=refresh content="5; url=http://...">`.
fn refresh(r: &Rebase, value: &str) -> Option<String> {
    let at = value.to_ascii_lowercase().find("url=")? + 4;
    let rest = &value[at..];
    let quote = rest
        .trim_start()
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"');
    let lead = rest.len() - rest.trim_start().len() + quote.map_or(0, |_| 1);
    let url = &rest[lead..];
    let end = match quote {
        Some(q) => url.find(q).unwrap_or(url.len()),
        None => url.trim_end().len(),
    };
    let new = r.url(&url[..end])?;
    Some(format!(
        "{}{}{new}{}",
        &value[..at],
        &rest[..lead],
        &url[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Rebase {
        Rebase::new(
            Arc::new(vec![
                "http://127.0.0.1:8102".into(),
                "http://oa.intranet:8080".into(),
            ]),
            "https://crm.example.com".into(),
            "crm.example.com",
        )
    }

    #[test]
    fn single_values_srcset_and_refresh() {
        let r = r();
        assert_eq!(
            single(&r, " http://127.0.0.1:8102/a?x=1&amp;y=2 ").as_deref(),
            Some("https://crm.example.com/a?x=1&amp;y=2")
        );
        assert_eq!(
            single(&r, "http://crm.example.com/plain").as_deref(),
            Some("https://crm.example.com/plain")
        );
        for other in [
            "/relative",
            "https://cdn.example.net/x.js",
            "http://127.0.0.1:81020/x",
            "http://oa.intranet:8080.evil/x",
            "javascript:void(0)",
        ] {
            assert_eq!(single(&r, other), None, "{other}");
        }
        assert_eq!(
            srcset(
                &r,
                "http://oa.intranet:8080/a.png 1x, /b.png 2x,http://127.0.0.1:8102/c.png 3x"
            )
            .as_deref(),
            Some("https://crm.example.com/a.png 1x, /b.png 2x,https://crm.example.com/c.png 3x")
        );
        assert_eq!(srcset(&r, "/a.png 1x, https://cdn/b.png 2x"), None);
        assert_eq!(
            refresh(&r, "5; URL='http://oa.intranet:8080/next'").as_deref(),
            Some("5; URL='https://crm.example.com/next'")
        );
        assert_eq!(
            refresh(&r, "0;url=http://127.0.0.1:8102/").as_deref(),
            Some("0;url=https://crm.example.com/")
        );
        assert_eq!(refresh(&r, "30"), None);
    }
}
