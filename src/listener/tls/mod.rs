//! TLS termination: certificates loaded from PEM, chosen by SNI, and swapped in place when
//! their files change.
//!
//! The rustls `ServerConfig` never changes after start; only the set of certificates behind
//! its resolver does. A reload therefore touches no open connection: connections keep the
//! certificate they were handshaken with, and new handshakes see the new one. A new pair
//! that fails to load (unreadable, unparsable, key not matching) leaves the old one serving.

mod certs;
pub mod devcert;

pub use certs::{load_pair, CertInfo, LoadedPair};

use crate::config::ServerConfig as ServerSection;
use crate::runtime::metrics::{Metrics, ResultLabel};
use arc_swap::ArcSwap;
use rustls::crypto::aws_lc_rs as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The certificates currently served: a default one, and others by the names they carry.
#[derive(Debug)]
pub struct CertStore {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    pub infos: Vec<CertInfo>,
}

impl CertStore {
    /// Loads the default pair and the SNI pairs; any failure names the file and the problem.
    pub fn load(section: &ServerSection) -> Result<CertStore, String> {
        let default = load_pair(&section.tls_cert, &section.tls_key)?;
        let mut store = CertStore {
            default: default.key.clone(),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            infos: vec![default.info.clone()],
        };
        // The default certificate also answers for its own names, before any extra pair.
        let mut pairs = vec![default];
        for p in &section.certificates {
            pairs.push(load_pair(&p.cert, &p.key)?);
        }
        for pair in &pairs[1..] {
            store.infos.push(pair.info.clone());
        }
        for pair in pairs.iter().rev() {
            for name in &pair.info.dns_names {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(parent) => store.wildcard.insert(parent.to_string(), pair.key.clone()),
                    None => store.exact.insert(name, pair.key.clone()),
                };
            }
        }
        Ok(store)
    }

    fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.default.clone();
        };
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return k.clone();
            }
        }
        self.default.clone()
    }

    /// The files behind this store, for change detection.
    pub fn files(section: &ServerSection) -> Vec<PathBuf> {
        let mut v = vec![section.tls_cert.clone(), section.tls_key.clone()];
        for p in &section.certificates {
            v.push(p.cert.clone());
            v.push(p.key.clone());
        }
        v
    }
}

/// Hands rustls the current certificate for each handshake; swapped atomically on reload.
#[derive(Debug)]
pub struct CertResolver {
    store: ArcSwap<CertStore>,
}

impl CertResolver {
    pub fn new(store: CertStore) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            store: ArcSwap::from_pointee(store),
        })
    }

    pub fn replace(&self, store: CertStore) {
        self.store.store(Arc::new(store));
    }

    pub fn current(&self) -> Arc<CertStore> {
        self.store.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.store.load().pick(hello.server_name()))
    }
}

/// Builds the listener's rustls configuration: versions, suites, ALPN `h2` then `http/1.1`.
pub fn server_config(
    section: &ServerSection,
    resolver: Arc<CertResolver>,
) -> Result<rustls::ServerConfig, String> {
    let suites = crate::config::cipher_suites(&section.cipher_suites)?;
    let versions: &[&'static rustls::SupportedProtocolVersion] =
        if section.min_tls_version == crate::config::TlsVersion::Tls13 {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: suites,
        ..provider::default_provider()
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("server.cipher_suites: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A simple server configuration from PEM text (one certificate chain), HTTP/1.1 only: for
/// the emulator's SDK origin, which serves a script and a WebSocket.
pub fn simple_server_config(cert_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("certificate: {e}"))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("private key: {e}"))?;
    let mut cfg =
        rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The TLS side of the listener: the certificates served and the rustls settings over them.
/// Built once at start; only the certificates behind the resolver change afterwards.
pub struct Tls {
    pub certs: Arc<CertResolver>,
    pub config: Arc<rustls::ServerConfig>,
}

impl Tls {
    /// Loads the certificates and builds the rustls settings; an error is one line naming
    /// the problem.
    pub fn load(section: &ServerSection) -> Result<Tls, String> {
        let store = CertStore::load(section)?;
        for info in &store.infos {
            warn_about_validity(info);
        }
        let certs = CertResolver::new(store);
        let config = server_config(section, certs.clone())?;
        Ok(Tls {
            certs,
            config: Arc::new(config),
        })
    }

    /// Re-reads the certificates whenever their files change; a bad new pair keeps the old one.
    pub fn watch(&self, section: &ServerSection, metrics: Arc<Metrics>) {
        let files = CertStore::files(section);
        let certs = self.certs.clone();
        let section = section.clone();
        crate::runtime::watch::spawn(files, section.reload_interval.get(), move || {
            let result = match CertStore::load(&section) {
                Ok(store) => {
                    for info in &store.infos {
                        warn_about_validity(info);
                    }
                    certs.replace(store);
                    tracing::info!("certificates reloaded");
                    "ok"
                }
                Err(e) => {
                    tracing::error!(error = %e, "certificate reload failed; still serving the previous certificate");
                    "error"
                }
            };
            metrics
                .tls_reloads
                .get_or_create(&ResultLabel { result })
                .inc();
        });
    }
}

fn warn_about_validity(info: &CertInfo) {
    let left = info.seconds_left();
    if left < 0 {
        tracing::error!(file = %info.file, "certificate has expired");
    } else if info.not_yet_valid() {
        tracing::error!(file = %info.file, "certificate is not valid yet");
    } else if left < 14 * 86400 {
        tracing::warn!(file = %info.file, days_left = left / 86400, "certificate expires soon");
    }
}
