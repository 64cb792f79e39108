//! Development certificates: a local CA, name-constrained to the hosts it is made for (so a
//! leaked CA key cannot impersonate any other site), and a leaf certificate it signs.

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use std::net::IpAddr;
use std::path::Path;
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
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| e.to_string())?;

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
    let issuer = Issuer::new(ca, &ca_key);
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .map_err(|e| e.to_string())?;
    Ok(DevCerts {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        leaf_cert_pem: leaf_cert.pem(),
        leaf_key_pem: leaf_key.serialize_pem(),
    })
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
