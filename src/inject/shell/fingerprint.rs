//! User fingerprints for shell mode: a keyed hash of the user behind a request, which framed
//! pages carry so that the shell notices when the user inside its frame is no longer the one
//! its workbench was opened for (a shared call-center PC, a new login). Keyed, so that the
//! page learns nothing it could turn back into a user id, and stable across replicas that
//! share the key (by default derived from the CCC SecretKey they all hold).

use crate::identity::Who;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a framed page says about its user.
pub const ANONYMOUS: &str = "-";

pub struct Fingerprints {
    key: Vec<u8>,
}

impl Fingerprints {
    /// `file`: `inject.shell_key_file` (at least 32 bytes); else a key derived from
    /// `secret_key` and the SdkAppId; else (no credentials) a random one for this process.
    pub fn new(
        file: Option<&std::path::Path>,
        secret_key: Option<&str>,
        sdk_app_id: Option<u64>,
    ) -> Result<Fingerprints, String> {
        if let Some(f) = file {
            let key = std::fs::read(f)
                .map_err(|e| format!("inject.shell_key_file: {}: {e}", f.display()))?;
            let trimmed = key.trim_ascii().to_vec();
            if trimmed.len() < 32 {
                return Err(format!(
                    "inject.shell_key_file: {}: the key must be at least 32 bytes",
                    f.display()
                ));
            }
            return Ok(Fingerprints { key: trimmed });
        }
        let key = match secret_key {
            Some(secret) => {
                let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
                    .map_err(|_| "fingerprint key".to_string())?;
                mac.update(b"tccc-sidecar shell user fingerprint v1|");
                mac.update(sdk_app_id.unwrap_or(0).to_string().as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            None => rand::random::<[u8; 32]>().to_vec(),
        };
        Ok(Fingerprints { key })
    }

    /// The fingerprint of a user (or of a static seat): 128 bits, hex.
    pub fn of(&self, who: &Who) -> String {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return String::new();
        };
        match who {
            Who::User(u) => {
                mac.update(b"user:");
                mac.update(u.as_bytes());
            }
            Who::Seat(s) => {
                mac.update(b"seat:");
                mac.update(s.as_bytes());
            }
        }
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_fingerprint_and_users_differ() {
        let a = Fingerprints::new(None, Some("secret"), Some(1400000000)).unwrap();
        let b = Fingerprints::new(None, Some("secret"), Some(1400000000)).unwrap();
        let alice = Who::User("alice".into());
        assert_eq!(a.of(&alice), b.of(&alice), "replicas agree");
        assert_eq!(a.of(&alice).len(), 32);
        assert_ne!(a.of(&alice), a.of(&Who::User("bob".into())));
        assert_ne!(a.of(&alice), a.of(&Who::Seat("alice".into())));
        let other = Fingerprints::new(None, Some("other"), Some(1400000000)).unwrap();
        assert_ne!(a.of(&alice), other.of(&alice), "keyed");
        assert!(!a.of(&alice).contains("alice"));
    }

    #[test]
    fn key_file_is_checked() {
        let dir = std::env::temp_dir().join(format!("tccc-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "too short\n").unwrap();
        let e = Fingerprints::new(Some(&short), None, None).err().unwrap();
        assert!(
            e.starts_with("inject.shell_key_file:") && e.contains("32 bytes"),
            "{e}"
        );
        let good = dir.join("good");
        std::fs::write(&good, "0123456789abcdef0123456789abcdef\n").unwrap();
        let a = Fingerprints::new(Some(&good), Some("x"), None).unwrap();
        let b = Fingerprints::new(Some(&good), Some("y"), None).unwrap();
        assert_eq!(a.of(&Who::User("u".into())), b.of(&Who::User("u".into())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
