//! Development certificates: a local CA, name-constrained to the hosts it is made for (so a
//! leaked CA key cannot impersonate any other site), and a leaf certificate it signs.

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// A CA and a leaf certificate, as PEM.
pub struct DevCerts {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub leaf_cert_pem: String,
    pub leaf_key_pem: String,
}

/// Makes a CA limited to `hosts` and a leaf for `hosts` (DNS names or IP addresses).
pub fn generate(hosts: &[String]) -> Result<DevCerts, String> {
    let (ca, ca_key) = new_ca(hosts)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| e.to_string())?;
    let issuer = Issuer::new(ca, &ca_key);
    let (leaf_cert_pem, leaf_key_pem) = issue_leaf(&issuer, hosts)?;
    Ok(DevCerts {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        leaf_cert_pem,
        leaf_key_pem,
    })
}

fn new_ca(hosts: &[String]) -> Result<(CertificateParams, KeyPair), String> {
    if hosts.is_empty() {
        return Err("at least one --host is needed".into());
    }
    let now = OffsetDateTime::now_utc();
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    // A unique name per CA: verifiers pick trust anchors by subject, so two development CAs
    // with one name (two checkouts, a regenerated CA) would shadow each other.
    let id: u32 = rand::random();
    dn.push(
        DnType::CommonName,
        format!("tccc-sidecar development CA {id:08x}"),
    );
    dn.push(
        DnType::OrganizationName,
        "tccc-sidecar (local development only)",
    );
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - Duration::hours(1);
    ca.not_after = now + Duration::days(825);
    let mut permitted = Vec::new();
    for h in hosts {
        match h.parse::<IpAddr>() {
            Ok(ip) => permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                ip,
                if ip.is_ipv4() { 32 } else { 128 },
            ))),
            // A DNS constraint covers the name and all its subdomains; `*` is not allowed in it.
            Err(_) => permitted.push(GeneralSubtree::DnsName(
                h.trim_start_matches("*.").to_string(),
            )),
        }
    }
    ca.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    let ca_key = KeyPair::generate().map_err(|e| e.to_string())?;
    Ok((ca, ca_key))
}

/// A leaf certificate for `hosts` signed by `issuer`: (certificate PEM, key PEM).
fn issue_leaf(issuer: &Issuer<'_, &KeyPair>, hosts: &[String]) -> Result<(String, String), String> {
    let now = OffsetDateTime::now_utc();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    for h in hosts {
        leaf.subject_alt_names.push(match h.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                h.clone()
                    .try_into()
                    .map_err(|_| format!("invalid host name {h:?}"))?,
            ),
        });
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, hosts[0].clone());
    leaf.distinguished_name = dn;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - Duration::hours(1);
    // Browsers refuse leaf certificates valid for more than 398 days.
    leaf.not_after = now + Duration::days(397);
    let leaf_key = KeyPair::generate().map_err(|e| e.to_string())?;
    let leaf_cert = leaf
        .signed_by(&leaf_key, issuer)
        .map_err(|e| e.to_string())?;
    Ok((leaf_cert.pem(), leaf_key.serialize_pem()))
}

/// The files of a persistent local CA and its current leaf certificate.
pub struct LocalCa {
    pub ca_cert: PathBuf,
    pub leaf_cert: PathBuf,
    pub leaf_key: PathBuf,
    /// The CA was made by this call (the user has not trusted it yet).
    pub created: bool,
}

/// A leaf is reissued when it has less than this left.
const LEAF_RENEW_BEFORE: Duration = Duration::days(30);

/// The development CA kept in `dir` (made on first use, reused after) and a leaf for `hosts`
/// signed by it (reused while it is valid for a month more and names every host). The folder
/// is the user's own (0700) and the keys are 0600: a CA key that others can read is refused
/// rather than used, as ssh refuses an open private key.
pub fn ensure_local_ca(dir: &Path, hosts: &[String]) -> Result<LocalCa, String> {
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    }
    let ca_cert = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let leaf_cert = dir.join("tls.crt");
    let leaf_key = dir.join("tls.key");
    let created = !(ca_cert.exists() && ca_key.exists());
    let (ca_pem, key_pem) = if created {
        let (params, key) = new_ca(hosts)?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        write_file(&ca_key, &key.serialize_pem(), 0o600)?;
        write_file(&ca_cert, &cert.pem(), 0o644)?;
        // A new CA invalidates any leaf signed by an older one.
        let _ = std::fs::remove_file(&leaf_cert);
        (cert.pem(), key.serialize_pem())
    } else {
        refuse_open_key(&ca_key)?;
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))
        };
        (read(&ca_cert)?, read(&ca_key)?)
    };
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|e| format!("{}: not a usable private key: {e}", ca_key.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &key)
        .map_err(|e| format!("{}: not a usable CA certificate: {e}", ca_cert.display()))?;
    if !leaf_is_current(&leaf_cert, &leaf_key, &ca_pem, hosts) {
        let (cert, key) = issue_leaf(&issuer, hosts)?;
        write_file(&leaf_key, &key, 0o600)?;
        write_file(&leaf_cert, &cert, 0o644)?;
    }
    Ok(LocalCa {
        ca_cert,
        leaf_cert,
        leaf_key,
        created,
    })
}

fn refuse_open_key(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: permissions {mode:04o} let others read the CA key; chmod 600 it (or delete the folder to make a new CA)",
            path.display()
        ));
    }
    Ok(())
}

/// The leaf exists, has its key, was issued by this CA, names every host and is not near expiry.
fn leaf_is_current(cert: &Path, key: &Path, ca_pem: &str, hosts: &[String]) -> bool {
    use x509_parser::prelude::*;
    if !key.exists() {
        return false;
    }
    let (Ok(leaf_pem), Ok(ca)) = (std::fs::read(cert), pem_der(ca_pem.as_bytes())) else {
        return false;
    };
    let Ok(leaf) = pem_der(&leaf_pem) else {
        return false;
    };
    let (Ok((_, leaf)), Ok((_, ca))) = (
        X509Certificate::from_der(&leaf),
        X509Certificate::from_der(&ca),
    ) else {
        return false;
    };
    // CA subjects are unique (a random id), so the issuer name identifies the CA.
    if leaf.issuer() != ca.subject() {
        return false;
    }
    let renew_at = OffsetDateTime::now_utc() + LEAF_RENEW_BEFORE;
    if leaf.validity().not_after.to_datetime() < renew_at {
        return false;
    }
    let Ok(Some(san)) = leaf.subject_alternative_name() else {
        return false;
    };
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    hosts.iter().all(|h| {
        let h = h
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .unwrap_or_else(|_| h.clone());
        names.contains(&h)
    })
}

/// The first certificate in a PEM text, as DER.
fn pem_der(pem: &[u8]) -> Result<Vec<u8>, ()> {
    use rustls_pki_types::pem::PemObject;
    match rustls_pki_types::CertificateDer::pem_slice_iter(pem).next() {
        Some(Ok(der)) => Ok(der.to_vec()),
        _ => Err(()),
    }
}

/// Writes `ca.crt`, `ca.key`, `tls.crt` and `tls.key` into `dir` (keys with mode 0600).
pub fn write(dir: &Path, certs: &DevCerts) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    write_file(&dir.join("ca.crt"), &certs.ca_cert_pem, 0o644)?;
    write_file(&dir.join("ca.key"), &certs.ca_key_pem, 0o600)?;
    write_file(&dir.join("tls.crt"), &certs.leaf_cert_pem, 0o644)?;
    write_file(&dir.join("tls.key"), &certs.leaf_key_pem, 0o600)?;
    Ok(())
}

/// Writes a secret readable by its owner only (0600).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    write_file(path, &String::from_utf8_lossy(contents), 0o600)
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))
}
