//! `tccc-sidecar check`: everything `run` would refuse, found without serving (like `nginx -t`).
//! The configuration's keys, the certificates (readable, parsable, key matching, in their
//! validity window), the upstream CA file, the seats file and the credential files.

use crate::config::{Config, ConfigError, ModeSettings};
use crate::listener::tls::CertStore;

/// Checks that go beyond parsing; returns warnings worth printing, or the first error.
pub fn preflight(config: &Config) -> Result<Vec<String>, ConfigError> {
    let mut notes = Vec::new();
    let store = CertStore::load(&config.server).map_err(|msg| {
        let key = if config.server.certificates.iter().any(|p| {
            msg.starts_with(&p.cert.display().to_string())
                || msg.starts_with(&p.key.display().to_string())
        }) {
            "server.certificates"
        } else if msg.starts_with(&config.server.tls_key.display().to_string()) {
            "server.tls_key"
        } else {
            "server.tls_cert"
        };
        config.error_at(key, msg)
    })?;
    for info in &store.infos {
        if info.seconds_left() < 0 {
            return Err(config.error_at(
                "server.tls_cert",
                format!("{}: certificate has expired", info.file),
            ));
        }
        if info.not_yet_valid() {
            return Err(config.error_at(
                "server.tls_cert",
                format!("{}: certificate is not valid yet", info.file),
            ));
        }
        let days = info.seconds_left() / 86400;
        if days < 14 {
            notes.push(format!(
                "warning: {}: certificate expires in {days} days",
                info.file
            ));
        }
    }
    crate::wire::upstream::client_tls(&config.upstream)
        .map_err(|m| config.error_at("upstream.ca_file", m))?;
    let none = None;
    let (gateway, hs256, jwks) = match &config.identity.settings {
        ModeSettings::Header(h) => (&h.gateway_secret_file, &none, &none),
        ModeSettings::Jwt(j) => (&none, &j.hs256_secret_file, &j.jwks_file),
        _ => (&none, &none, &none),
    };
    for (key, path) in [
        ("tccc.secret_id_file", &config.tccc.secret_id_file),
        ("tccc.secret_key_file", &config.tccc.secret_key_file),
        ("tccc.session_token_file", &config.tccc.session_token_file),
        ("identity.gateway_secret_file", gateway),
        ("identity.hs256_secret_file", hs256),
        ("identity.jwks_file", jwks),
    ] {
        if let Some(p) = path {
            match std::fs::read(p) {
                // The contents are secrets: only their presence is reported, never a byte of them.
                Ok(b) if b.iter().all(u8::is_ascii_whitespace) => {
                    return Err(config.error_at(key, format!("{}: file is empty", p.display())))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(config.error_at(key, format!("{}: cannot read: {e}", p.display())))
                }
            }
        }
    }
    if let Some(p) = &config.inject.shell_key_file {
        crate::inject::shell::fingerprint::Fingerprints::new(Some(p), None, None).map_err(|e| {
            let message = e.strip_prefix("inject.shell_key_file: ").unwrap_or(&e);
            config.error_at("inject.shell_key_file", message.to_string())
        })?;
    }
    if let Some(p) = &config.seats.file {
        let text = std::fs::read_to_string(p).map_err(|e| {
            config.error_at("seats.file", format!("{}: cannot read: {e}", p.display()))
        })?;
        crate::login::seats::parse(&text, p).map_err(|e| config.error_at("seats.file", e))?;
    }
    notes.extend(login_warnings(config));
    notes.extend(authorization_warning(config));
    Ok(notes)
}

/// With `identity.forward_authorization`, the login request must carry the browser's Basic
/// credentials, and browsers send them unasked only below the directory of the URL that
/// asked for them. The one URL known to be protected is the introspection URL: a login path
/// outside its directory may arrive without credentials. (The app's real protection space
/// may be wider; the sidecar cannot see it.)
pub fn authorization_warning(config: &Config) -> Option<String> {
    let ModeSettings::Introspect(s) = &config.identity.settings else {
        return None;
    };
    if !s.forward_authorization {
        return None;
    }
    let path = s.path.split(['?', '#']).next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(1, |i| i + 1)];
    (!config.login.path.starts_with(dir)).then(|| {
        format!(
            "warning: login.path {} is outside {dir}, the directory of identity.url: browsers send Basic credentials unasked only to paths inside the protection space they were asked for, so make sure the application's protection space covers login.path",
            config.login.path
        )
    })
}

/// Settings that are valid but leave the login endpoint unable to serve anyone.
pub fn login_warnings(config: &Config) -> Vec<String> {
    use crate::config::IdentityMode;
    let mut notes = Vec::new();
    if config.tccc.sdk_app_id.is_none() {
        notes.push(
            "warning: tccc.sdk_app_id is not set: the login endpoint answers every request 502 (NotConfigured)".into(),
        );
        return notes;
    }
    if !crate::config::origin::is_tencent_endpoint(&config.tccc.endpoint) {
        notes.push(format!(
            "warning: tccc.endpoint {} is not Tencent Cloud's API (an emulator?): agents get no real workbench (metric tccc_sidecar_ccc_endpoint_emulator = 1)",
            config.tccc.endpoint
        ));
    }
    if config.identity.mode() == IdentityMode::Header && config.identity.trusted_peers.is_empty() {
        notes.push(
            "warning: identity.trusted_peers is empty: in header mode no request can name a user"
                .into(),
        );
    }
    if config.identity.mode() != IdentityMode::Static
        && config.seats.file.is_none()
        && config.seats.template.is_none()
    {
        notes.push(
            "warning: neither seats.file nor seats.template is set: no user has a seat".into(),
        );
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, login: &str, forward: bool) -> Config {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n[login]\npath = \"{login}\"\n[identity]\nmode = \"introspect\"\nurl = \"{url}\"\nforward_authorization = {forward}\ncookies = [\"s\"]\nuser_selector = \"#u\"\n"
        );
        Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
    }

    #[test]
    fn a_login_path_outside_the_protected_directory_is_warned_about() {
        let w = authorization_warning(&config("/trac/newticket", "/loginTCCC", true));
        assert!(w.is_some_and(|w| w.contains("login.path /loginTCCC is outside /trac/")));
        assert!(
            authorization_warning(&config("/trac/newticket", "/trac/loginTCCC", true)).is_none()
        );
        assert!(authorization_warning(&config("/newticket?x=/a/b", "/loginTCCC", true)).is_none());
        // Cookies only: the browser sends them everywhere on the origin.
        let cookies = config("/trac/newticket", "/loginTCCC", false);
        assert!(authorization_warning(&cookies).is_none());
    }
}
