//! Which TCCC seat (SeatUserId) a CRM user may log in as.
//!
//! The mapping is the seats file (a TOML table of `"crm-user" = "SeatUserId"`) plus an optional
//! template such as `{user}@corp.example.com` for users the file does not name. It is held
//! behind an atomic swap: a file rewritten while requests run is read whole and replaces the
//! old mapping in one step, and a broken file keeps the last good mapping (the error is logged
//! with its line and shown in `/metrics`).

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The longest user id or seat accepted; CCC seat ids are e-mail-like and short.
const MAX_LEN: usize = 256;

#[derive(Debug, Default)]
pub struct SeatMap {
    entries: HashMap<String, String>,
}

impl SeatMap {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Parses a seats file; an error reads `path:line: message`.
pub fn parse(text: &str, path: &Path) -> Result<SeatMap, String> {
    let at = |offset: Option<usize>, msg: &str| match offset {
        Some(o) => format!(
            "{}:{}: {msg}",
            path.display(),
            text[..o.min(text.len())].matches('\n').count() + 1
        ),
        None => format!("{}: {msg}", path.display()),
    };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        at(
            e.span().map(|s| s.start),
            e.message().lines().next().unwrap_or(""),
        )
    })?;
    let mut entries = HashMap::with_capacity(table.len());
    for (user, seat) in table {
        let line = || {
            text.find(&format!("\"{user}\""))
                .or_else(|| text.find(&user))
        };
        let Some(seat) = seat.as_str() else {
            return Err(at(
                line(),
                &format!("{user:?}: the seat must be a string (\"user\" = \"seat@example.com\")"),
            ));
        };
        if !valid_text(&user) {
            return Err(at(line(), &format!("{user:?}: not a valid user id")));
        }
        if !valid_text(seat) {
            return Err(at(line(), &format!("{user:?}: not a valid seat")));
        }
        entries.insert(user, seat.to_string());
    }
    Ok(SeatMap { entries })
}

/// Non-empty, bounded, printable: nothing that could split a log line or a JSON body.
fn valid_text(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_LEN && !s.chars().any(char::is_control)
}

/// A user id that may be put into the template: `[A-Za-z0-9._-]+`, so that a crafted id
/// cannot reach another domain's seat (`x@evil.example`) or inject anything.
pub fn template_safe(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= MAX_LEN
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && user != "."
        && user != ".."
}

/// The live mapping: the last good file plus the template.
pub struct Seats {
    file: Option<PathBuf>,
    template: Option<String>,
    map: ArcSwap<SeatMap>,
    metrics: Arc<crate::runtime::metrics::Metrics>,
}

impl Seats {
    /// Reads the file once; an unreadable or broken file at start is an error.
    pub fn load(
        file: Option<PathBuf>,
        template: Option<String>,
        metrics: Arc<crate::runtime::metrics::Metrics>,
    ) -> Result<Arc<Seats>, String> {
        let map = match &file {
            Some(p) => read(p)?,
            None => SeatMap::default(),
        };
        metrics.seats_entries.set(map.len() as i64);
        metrics.seats_file_valid.set(1);
        Ok(Arc::new(Seats {
            file,
            template,
            map: ArcSwap::from_pointee(map),
            metrics,
        }))
    }

    /// The seat for `user`: the file's entry, else the template when the id is safe for it.
    pub fn seat_for(&self, user: &str) -> Option<String> {
        if let Some(seat) = self.map.load().entries.get(user) {
            return Some(seat.clone());
        }
        let template = self.template.as_deref()?;
        template_safe(user).then(|| template.replace("{user}", user))
    }

    /// Re-reads the file; a broken one keeps the last good mapping.
    pub fn reload(&self) {
        let Some(path) = &self.file else { return };
        match read(path) {
            Ok(map) => {
                let n = map.len();
                self.map.store(Arc::new(map));
                self.metrics.seats_entries.set(n as i64);
                self.metrics.seats_file_valid.set(1);
                self.metrics.seats_reload("ok");
                tracing::info!(entries = n, "seats file reloaded");
            }
            Err(e) => {
                self.metrics.seats_file_valid.set(0);
                self.metrics.seats_reload("error");
                tracing::error!(error = %e, "seats file not reloaded; keeping the previous mapping");
            }
        }
    }

    /// Reloads whenever the file changes.
    pub fn watch(self: &Arc<Self>, interval: std::time::Duration) {
        let Some(path) = self.file.clone() else {
            return;
        };
        let seats = self.clone();
        crate::runtime::watch::spawn(vec![path], interval, move || seats.reload());
    }
}

fn read(path: &Path) -> Result<SeatMap, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seats(text: &str, template: Option<&str>) -> Seats {
        Seats {
            file: None,
            template: template.map(str::to_string),
            map: ArcSwap::from_pointee(parse(text, Path::new("seats.toml")).unwrap()),
            metrics: Arc::new(crate::runtime::metrics::Metrics::new()),
        }
    }

    #[test]
    fn file_entries_win_over_the_template() {
        let s = seats(
            "alice = \"agent1@corp.example\"\n\"bob.smith\" = \"b@corp.example\"\n",
            Some("{user}@tpl.example"),
        );
        assert_eq!(s.seat_for("alice").as_deref(), Some("agent1@corp.example"));
        assert_eq!(s.seat_for("bob.smith").as_deref(), Some("b@corp.example"));
        assert_eq!(s.seat_for("carol").as_deref(), Some("carol@tpl.example"));
    }

    #[test]
    fn template_refuses_ids_that_could_escape_it() {
        let s = seats("", Some("{user}@corp.example"));
        for bad in [
            "",
            "a@evil.example",
            "a b",
            "x/y",
            "..",
            "a\nb",
            "名字",
            "a%40b",
        ] {
            assert_eq!(s.seat_for(bad), None, "{bad:?}");
        }
        assert_eq!(
            s.seat_for("A.b_c-9").as_deref(),
            Some("A.b_c-9@corp.example")
        );
        let no_template = seats("", None);
        assert_eq!(no_template.seat_for("alice"), None);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse("a = \"x\"\nb = 3\n", Path::new("s.toml")).unwrap_err();
        assert!(e.starts_with("s.toml:2: "), "{e}");
        assert!(e.contains("must be a string"), "{e}");
        let e = parse("a = \"x\"\n\nb = \n", Path::new("s.toml")).unwrap_err();
        assert!(e.starts_with("s.toml:3: "), "{e}");
        let e = parse("a = \"\"\n", Path::new("s.toml")).unwrap_err();
        assert!(e.contains("not a valid seat"), "{e}");
    }
}
