//! Reading one certificate chain and its private key from PEM files, and checking that they
//! belong together, with errors that name the file and say what is wrong.

use rustls::crypto::aws_lc_rs as provider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What `check` and the logs say about a certificate: its names and validity window.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub file: String,
    pub subject: String,
    pub dns_names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
}

impl CertInfo {
    /// Seconds until expiry; negative once expired.
    pub fn seconds_left(&self) -> i64 {
        self.not_after - now_unix()
    }
    pub fn not_yet_valid(&self) -> bool {
        self.not_before > now_unix()
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub struct LoadedPair {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// Loads a PEM chain and key (PKCS#8, PKCS#1 or SEC1) and verifies that the key matches the leaf.
pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<LoadedPair, String> {
    let cert_name = cert_path.display().to_string();
    let key_name = key_path.display().to_string();
    let cert_pem =
        std::fs::read(cert_path).map_err(|e| format!("{cert_name}: cannot read: {e}"))?;
    let key_pem = std::fs::read(key_path).map_err(|e| format!("{key_name}: cannot read: {e}"))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{cert_name}: not a valid PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{cert_name}: no CERTIFICATE block found"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!(
            "{key_name}: no private key found (expected a PKCS#8, PKCS#1 or SEC1 PEM block)"
        ),
        other => format!("{key_name}: not a valid PEM private key: {other}"),
    })?;
    let signing = provider::sign::any_supported_type(&key)
        .map_err(|e| format!("{key_name}: unsupported private key: {e}"))?;
    let info = inspect(&cert_name, &chain[0])?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(format!(
                "{key_name}: private key does not match the certificate in {cert_name}"
            ))
        }
    }
    Ok(LoadedPair {
        key: Arc::new(certified),
        info,
    })
}

fn inspect(file: &str, leaf: &CertificateDer<'_>) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("{file}: the first certificate cannot be parsed: {e}"))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => dns_names.push(n.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_bytes(b) {
                        dns_names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        file: file.to_string(),
        subject: cert.subject().to_string(),
        dns_names,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

fn ip_from_bytes(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}
