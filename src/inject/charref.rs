//! Character references in attribute values, for the `<meta>` policy rewrite.
//!
//! The rewriter hands over an attribute's raw text, entities and all. A policy must be read as
//! the browser reads it (after decoding), or `;` and `'` inside `&#39;` split it in the wrong
//! places. Only references whose meaning is beyond doubt are decoded: numeric ones ended by
//! `;` outside the ranges HTML remaps or replaces, and the five named ones markup escaping
//! produces. Anything else (`&nbsp;`, a missing `;`, a bare `&`) makes the text ambiguous,
//! and the caller then leaves the attribute as it was.

/// The attribute text as the browser reads it, or `None` when a reference is not one of
/// the unambiguous kinds.
pub fn decode(raw: &str) -> Option<String> {
    if !raw.contains('&') {
        return Some(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';')?;
        let name = &after[..end];
        out.push(reference(name)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The character `&name;` stands for.
fn reference(name: &str) -> Option<char> {
    let code = if let Some(num) = name.strip_prefix('#') {
        let (digits, radix) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16),
            None => (num, 10),
        };
        if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        u32::from_str_radix(digits, radix).ok()?
    } else {
        return match name {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            _ => None,
        };
    };
    // NUL, C1 controls (remapped to Windows-1252 by HTML), surrogates and out-of-range values
    // do not decode to themselves.
    if code == 0 || (0x80..=0x9f).contains(&code) {
        return None;
    }
    char::from_u32(code)
}

/// `text` as a double-quoted attribute value: `&` and `"` escaped, the rest as it is.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_markup_references_decode() {
        assert_eq!(
            decode(
                "script-src &#39;nonce-a&#39; &#x27;self&#X27; &apos;x&apos; &quot;&amp;&lt;&gt;"
            )
            .unwrap(),
            "script-src 'nonce-a' 'self' 'x' \"&<>"
        );
        assert_eq!(decode("plain; text").unwrap(), "plain; text");
        assert_eq!(decode("&#22823;").unwrap(), "大");
    }

    #[test]
    fn references_a_browser_could_read_otherwise_are_refused() {
        for raw in [
            "&#39 x",     // no semicolon: decoded by browsers with an error, not by us
            "&nbsp;",     // a named reference outside the markup five
            "a & b",      // a bare ampersand
            "&#0;",       // NUL becomes U+FFFD
            "&#146;",     // C1: remapped to U+2019
            "&#xD800;",   // a surrogate
            "&#x110000;", // beyond Unicode
            "&#;",
            "&#x;",
            "&#123456789;",
        ] {
            assert_eq!(decode(raw), None, "{raw}");
        }
    }

    #[test]
    fn encoding_round_trips() {
        for s in ["script-src 'nonce-a'", "a&b \"q\" <x>", "大 &amp;"] {
            assert_eq!(decode(&encode(s)).unwrap(), s);
        }
    }
}
