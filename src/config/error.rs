//! A configuration problem located as `file:line: key: message`, and how a key's line is
//! found in the file's text when the parser could not point at it.

/// One configuration problem, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", located(self))]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

/// `file:line: key: message`, leaving out what is not known.
fn located(e: &ConfigError) -> String {
    let at = match e.line {
        Some(line) => format!("{}:{line}", e.file),
        None => e.file.clone(),
    };
    if e.key.is_empty() {
        format!("{at}: {}", e.message)
    } else {
        format!("{at}: {}: {}", e.key, e.message)
    }
}

/// A rule broken by a value: the key's dotted path and what is wrong. Located into a
/// [`ConfigError`] once the file's text is at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

/// The result of checking one section's rules.
pub type Rules = Result<(), Invalid>;

pub fn invalid<T>(key: impl Into<String>, message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        key: key.into(),
        message: message.into(),
    })
}

pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

pub fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Finds the line of a dotted key such as `server.listen` or `inject.exclude[1]`: the key's
/// assignment inside its table when present, else the table's header.
pub(crate) fn line_of_key(text: &str, path: &str) -> Option<usize> {
    let path = path.split('[').next().unwrap_or(path);
    let (table, key) = match path.rsplit_once('.') {
        Some((t, k)) => (t, k),
        None => ("", path),
    };
    let mut current = String::new();
    let mut table_line = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.trim_start_matches('[');
            let name = name.split(']').next().unwrap_or("").trim();
            current = name.to_string();
            if current == table || current == path {
                table_line.get_or_insert(i + 1);
            }
            continue;
        }
        if current == table {
            let lhs = line
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if lhs == key && line.contains('=') {
                return Some(i + 1);
            }
        }
    }
    table_line
}
