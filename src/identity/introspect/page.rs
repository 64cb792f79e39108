//! The user id on one of the application's own HTML pages ("logged in as alice").
//!
//! The selector must match exactly one element: none means nobody is signed in (or the page
//! changed), several means the page is not the one the rule was written for, and both fail
//! closed. Only that element is read, never the rest of the page: text other users wrote (a
//! ticket's title, a wiki page) must not be able to name the user. The optional regular
//! expression applies within the element's text; the id it yields is then checked like any
//! other (`super::valid_user`).

use crate::config::identity::PageRule;

/// Bytes of `<head>` searched for a `<meta charset>` when `Content-Type` names none.
const PRESCAN: usize = 1024;

/// The page's bytes as text, in the charset its `Content-Type` or its `<meta>` names (UTF-8
/// when neither does). Undecodable bytes become U+FFFD, which no user pattern accepts.
pub fn decode(body: &[u8], content_type: &str) -> String {
    let label = charset_param(content_type).or_else(|| meta_charset(body));
    let enc = label
        .and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    enc.decode(body).0.into_owned()
}

/// The user id the page names, still to be checked, or why it names none (a fixed string,
/// for the audit line).
pub fn user(html: &str, rule: &PageRule) -> Result<String, &'static str> {
    let doc = scraper::Html::parse_document(html);
    let mut found = doc.select(&rule.selector);
    let Some(el) = found.next() else {
        return Err("selector matched no element");
    };
    if found.next().is_some() {
        return Err("selector matched several elements");
    }
    let text = match &rule.attribute {
        Some(name) => match el.value().attr(name) {
            Some(v) => collapse(v),
            None => return Err("the element has no such attribute"),
        },
        None => collapse(&el.text().collect::<String>()),
    };
    let id = match &rule.regex {
        None => text.as_str(),
        Some(re) => match re.captures(&text).and_then(|c| c.get(1)) {
            Some(m) => m.as_str().trim(),
            None => return Err("user_regex did not match the element's text"),
        },
    };
    Ok(id.to_string())
}

/// Trimmed, each run of whitespace one space: what a reader sees of the text.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn charset_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// `<meta charset="gbk">` or `<meta http-equiv=... content="text/html; charset=gbk">` near the
/// top of the page.
fn meta_charset(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(PRESCAN)];
    let lower: Vec<u8> = head.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = find(&lower[from..], b"<meta") {
        let start = from + i;
        let end = find(&lower[start..], b">").map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(c) = find(tag, b"charset=") {
            let rest = &tag[c + b"charset=".len()..];
            let rest = rest
                .strip_prefix(b"\"")
                .or_else(|| rest.strip_prefix(b"'"))
                .unwrap_or(rest);
            let label: Vec<u8> = rest
                .iter()
                .copied()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                .collect();
            if !label.is_empty() {
                return String::from_utf8(label).ok();
            }
        }
        from = end;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    /// What introspection makes of the page: the id read, then checked.
    fn user(html: &str, rule: &PageRule, pattern: &Regex) -> Result<String, &'static str> {
        super::user(html, rule).and_then(|id| super::super::valid_user(&id, Some(pattern)))
    }

    fn rule(selector: &str, attribute: Option<&str>, regex: Option<&str>) -> PageRule {
        PageRule {
            selector: scraper::Selector::parse(selector).unwrap(),
            attribute: attribute.map(str::to_string),
            regex: regex.map(|r| Regex::new(r).unwrap()),
        }
    }

    fn pattern() -> Regex {
        Regex::new(&format!(
            "^(?:{})$",
            crate::config::identity::DEFAULT_USER_PATTERN
        ))
        .unwrap()
    }

    const TRAC: &str = r#"<html><body><div id="metanav"><ul>
        <li class="first">logged in as <span class="trac-author-user">alice</span></li>
        <li><a href="/logout">Logout</a></li></ul></div>
        <h1>Ticket #1: logged in as <span class="trac-author-user">mallory</span></h1>
        <span class="trac-author-user">mallory</span></body></html>"#;

    #[test]
    fn exactly_one_element_and_only_its_text() {
        let p = pattern();
        assert_eq!(
            user(TRAC, &rule("#metanav .trac-author-user", None, None), &p),
            Ok("alice".into())
        );
        assert_eq!(
            user(
                TRAC,
                &rule("#metanav li.first", None, Some("^logged in as (.+)$")),
                &p
            ),
            Ok("alice".into())
        );
        // Unscoped, the same class also marks other users' names on the page.
        assert_eq!(
            user(TRAC, &rule(".trac-author-user", None, None), &p),
            Err("selector matched several elements")
        );
        assert_eq!(
            user(TRAC, &rule("#nobody", None, None), &p),
            Err("selector matched no element")
        );
        // The regex never reaches past the element: the ticket's title is not read.
        assert_eq!(
            user(
                TRAC,
                &rule("#metanav li:not(.first)", None, Some("logged in as (.+)")),
                &p
            ),
            Err("user_regex did not match the element's text")
        );
    }

    #[test]
    fn the_text_is_decoded_trimmed_and_checked() {
        let p = pattern();
        let page = "<p id=u>\n   al&#105;ce&#x40;corp&period;example  \n</p>";
        assert_eq!(
            user(page, &rule("#u", None, None), &p),
            Ok("alice@corp.example".into())
        );
        let display = "<p id=u>Alice Smith</p>";
        assert_eq!(
            user(display, &rule("#u", None, None), &p),
            Err("text is not a valid user")
        );
        let markup = "<p id=u>&lt;b&gt;x</p>";
        assert_eq!(
            user(markup, &rule("#u", None, None), &p),
            Err("text is not a valid user")
        );
        let empty = "<p id=u>  </p>";
        assert_eq!(
            user(empty, &rule("#u", None, None), &p),
            Err("text is not a valid user")
        );
        let long = format!("<p id=u>{}</p>", "a".repeat(300));
        assert_eq!(
            user(&long, &rule("#u", None, None), &p),
            Err("text is not a valid user")
        );
        let spread = "<li id=u>logged in as\n\t<b>bob</b></li>";
        assert_eq!(
            user(spread, &rule("#u", None, Some("^logged in as (.+)$")), &p),
            Ok("bob".into())
        );
        let wide = Regex::new("^(?:[^<>]+)$").unwrap();
        assert_eq!(
            user(display, &rule("#u", None, None), &wide),
            Ok("Alice Smith".into())
        );
    }

    #[test]
    fn an_attribute_can_hold_the_id() {
        let p = pattern();
        let page = r#"<form><input type="text" name="username" value="admin" hidden></form>"#;
        let r = rule("input[name=username]", Some("value"), None);
        assert_eq!(user(page, &r, &p), Ok("admin".into()));
        let r = rule("input[name=username]", Some("data-user"), None);
        assert_eq!(user(page, &r, &p), Err("the element has no such attribute"));
    }

    #[test]
    fn charsets_from_the_header_or_the_meta() {
        let (gbk, _, _) = encoding_rs::GBK.encode("<p id=u>张三</p>");
        assert_eq!(decode(&gbk, "text/html; charset=GBK"), "<p id=u>张三</p>");
        let mut page = b"<html><head><meta charset=\"gb2312\"></head>".to_vec();
        page.extend_from_slice(&gbk);
        assert!(decode(&page, "text/html").ends_with("<p id=u>张三</p>"));
        let meta = b"<meta http-equiv=Content-Type content='text/html; charset=gbk'>";
        assert_eq!(meta_charset(meta).as_deref(), Some("gbk"));
        assert_eq!(decode("<p>é</p>".as_bytes(), "text/html"), "<p>é</p>");
        assert!(decode(b"<p>\xff</p>", "text/html; charset=utf-8").contains('\u{fffd}'));
    }
}
