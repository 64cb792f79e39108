//! Tencent Cloud credentials: SecretId, SecretKey and an optional session token (temporary
//! credentials), from the files named in the config (re-read when they change, so a rotated
//! Kubernetes Secret takes effect), else the official SDKs' environment variables, else the
//! `~/.tencentcloud/credentials` profile. The secret parts never print: their `Debug` is redacted.

use crate::config::TcccConfig;
use arc_swap::ArcSwapOption;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for signing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub secret_id: String,
    pub secret_key: Secret,
    pub token: Option<Secret>,
}

/// Where the credentials come from, in the order the config, then the SDKs, look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Files {
        id: PathBuf,
        key: PathBuf,
        token: Option<PathBuf>,
    },
    Env,
    Profile(PathBuf),
}

/// The current credentials, swapped atomically when their files change.
pub struct CredentialStore {
    source: Source,
    current: ArcSwapOption<Credentials>,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialStore({:?})", self.source)
    }
}

impl CredentialStore {
    /// Picks the source and loads from it; an error names the file or variable, never a value.
    pub fn from_config(cfg: &TcccConfig) -> Result<Arc<CredentialStore>, String> {
        let source = match (&cfg.secret_id_file, &cfg.secret_key_file) {
            (Some(id), Some(key)) => Source::Files {
                id: id.clone(),
                key: key.clone(),
                token: cfg.session_token_file.clone(),
            },
            (Some(_), None) | (None, Some(_)) => {
                return Err("tccc.secret_id_file and tccc.secret_key_file go together".into())
            }
            (None, None) if std::env::var_os("TENCENTCLOUD_SECRET_ID").is_some() => Source::Env,
            (None, None) => Source::Profile(profile_path()),
        };
        let creds = load(&source)?;
        Ok(Arc::new(CredentialStore {
            source,
            current: ArcSwapOption::from_pointee(creds),
        }))
    }

    /// Fixed credentials (tests, the demo).
    pub fn fixed(creds: Credentials) -> Arc<CredentialStore> {
        Arc::new(CredentialStore {
            source: Source::Env,
            current: ArcSwapOption::from_pointee(creds),
        })
    }

    pub fn get(&self) -> Option<Arc<Credentials>> {
        self.current.load_full()
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Re-reads credential files when they change; a broken update keeps the last good ones.
    pub fn watch(self: &Arc<Self>, interval: std::time::Duration) {
        let Source::Files { id, key, token } = &self.source else {
            return;
        };
        let mut files = vec![id.clone(), key.clone()];
        files.extend(token.clone());
        let store = self.clone();
        crate::runtime::watch::spawn(files, interval, move || match load(&store.source) {
            Ok(c) => {
                store.current.store(Some(Arc::new(c)));
                tracing::info!("Tencent Cloud credentials reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "credential reload failed; keeping the previous credentials")
            }
        });
    }
}

fn profile_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".tencentcloud").join("credentials")
}

fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(format!("{}: file is empty", path.display()));
    }
    Ok(value.to_string())
}

fn env_secret(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// Loads credentials from `source`.
pub fn load(source: &Source) -> Result<Credentials, String> {
    match source {
        Source::Files { id, key, token } => Ok(Credentials {
            secret_id: read_secret(id)?,
            secret_key: Secret::new(read_secret(key)?),
            token: match token {
                Some(t) => Some(Secret::new(read_secret(t)?)),
                None => None,
            },
        }),
        Source::Env => Ok(Credentials {
            secret_id: env_secret("TENCENTCLOUD_SECRET_ID")?
                .ok_or("TENCENTCLOUD_SECRET_ID is empty")?,
            secret_key: Secret::new(
                env_secret("TENCENTCLOUD_SECRET_KEY")?
                    .ok_or("TENCENTCLOUD_SECRET_ID is set but TENCENTCLOUD_SECRET_KEY is not")?,
            ),
            token: env_secret("TENCENTCLOUD_SESSION_TOKEN")?.map(Secret::new),
        }),
        Source::Profile(path) => {
            let text = std::fs::read_to_string(path).map_err(|_| {
                format!(
                    "no Tencent Cloud credentials: set tccc.secret_id_file/secret_key_file, \
                     TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY, or {}",
                    path.display()
                )
            })?;
            parse_profile(&text, "default").ok_or_else(|| {
                format!(
                    "{}: no [default] section with secret_id and secret_key",
                    path.display()
                )
            })
        }
    }
}

/// The `[section]` of an INI profile file (`secret_id = ...`, `secret_key = ...`, optional `token`).
pub fn parse_profile(text: &str, section: &str) -> Option<Credentials> {
    let mut in_section = false;
    let (mut id, mut key, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == section;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "secret_id" => id = Some(v),
                "secret_key" => key = Some(v),
                "token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(Credentials {
        secret_id: id.filter(|s| !s.is_empty())?,
        secret_key: Secret::new(key.filter(|s| !s.is_empty())?),
        token: token.filter(|s| !s.is_empty()).map(Secret::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials {
            secret_id: "AKIDpublic".into(),
            secret_key: Secret::new("super-secret-key"),
            token: Some(Secret::new("session-token-value")),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIDpublic"));
        assert!(
            !shown.contains("super-secret-key") && !shown.contains("session-token-value"),
            "{shown}"
        );
    }

    #[test]
    fn profile_file_default_section() {
        let text = "[other]\nsecret_id = X\nsecret_key = Y\n\n[default]\n# comment\nsecret_id = AKID1\nsecret_key = key1\n";
        let c = parse_profile(text, "default").unwrap();
        assert_eq!(c.secret_id, "AKID1");
        assert_eq!(c.secret_key.expose(), "key1");
        assert!(c.token.is_none());
        assert!(parse_profile("[default]\nsecret_id = A\n", "default").is_none());
    }

    #[test]
    fn files_are_trimmed_and_empty_files_refused() {
        let dir = std::env::temp_dir().join(format!("tccc-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("id"), "AKID2\n").unwrap();
        std::fs::write(dir.join("key"), "  key2 \n").unwrap();
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let src = Source::Files {
            id: dir.join("id"),
            key: dir.join("key"),
            token: None,
        };
        let c = load(&src).unwrap();
        assert_eq!(
            (c.secret_id.as_str(), c.secret_key.expose()),
            ("AKID2", "key2")
        );
        let src = Source::Files {
            id: dir.join("id"),
            key: dir.join("empty"),
            token: None,
        };
        let e = load(&src).unwrap_err();
        assert!(e.ends_with("empty: file is empty"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
