//! TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0, as pure functions.
//!
//! Each step of the algorithm is its own function so that a signer and a verifier share every
//! byte of it, and tests can compare each intermediate value with what the official SDKs
//! produced:
//!
//! ```text
//! CanonicalRequest = METHOD \n / \n QUERY \n CanonicalHeaders \n SignedHeaders \n hex(sha256(payload))
//! StringToSign     = TC3-HMAC-SHA256 \n Timestamp \n Date/service/tc3_request \n hex(sha256(CanonicalRequest))
//! kDate = HMAC("TC3"+SecretKey, Date); kService = HMAC(kDate, service); kSigning = HMAC(kService, "tc3_request")
//! Signature        = hex(HMAC(kSigning, StringToSign))
//! ```
//!
//! Date is the **UTC** date of the timestamp (never local time), and the payload hash is over
//! the raw body bytes as sent (never re-serialised JSON).

pub mod authorization;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The `X-TC-Content-SHA256` value that replaces the body hash.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex of SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The payload hash: of the body, or of the literal `UNSIGNED-PAYLOAD` when the request opted out.
pub fn hashed_payload(body: &[u8], unsigned: bool) -> String {
    if unsigned {
        sha256_hex(UNSIGNED_PAYLOAD.as_bytes())
    } else {
        sha256_hex(body)
    }
}

/// The UTC date (`YYYY-MM-DD`) of a Unix timestamp; `None` outside the representable range.
pub fn utc_date(timestamp: i64) -> Option<String> {
    let dt = time::OffsetDateTime::from_unix_timestamp(timestamp).ok()?;
    let d = dt.date();
    Some(format!(
        "{:04}-{:02}-{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    ))
}

/// `Date/service/tc3_request`.
pub fn credential_scope(date: &str, service: &str) -> String {
    format!("{date}/{service}/tc3_request")
}

/// `name:value\n` for each signed header, names and values lower-cased and trimmed, sorted by
/// name; and the `;`-joined list of names. `headers` holds the signed headers as sent.
pub fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut block = String::new();
    for (k, v) in &pairs {
        block.push_str(k);
        block.push(':');
        block.push_str(v);
        block.push('\n');
    }
    let names = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (block, names)
}

/// The canonical request. `query` is the query string exactly as sent ("" for POST).
pub fn canonical_request(
    method: &str,
    query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    hashed_payload: &str,
) -> String {
    format!("{method}\n/\n{query}\n{canonical_headers}\n{signed_headers}\n{hashed_payload}")
}

pub fn string_to_sign(timestamp: i64, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The derived signing key for one date and service.
pub fn signing_key(secret_key: &str, date: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date, service.as_bytes());
    hmac(&k_service, b"tc3_request")
}

pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(signing_key, string_to_sign.as_bytes()))
}

/// The `Authorization` header value.
pub fn authorization_header(
    secret_id: &str,
    scope: &str,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!("{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}")
}

/// Everything needed to sign one request the way the official SDKs do.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The `Host` header exactly as sent, port included when it is sent.
    pub host: &'a str,
    pub query: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
    pub unsigned_payload: bool,
    pub timestamp: i64,
    pub service: &'a str,
}

/// The intermediate values and the result of signing, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub hashed_payload: String,
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    pub signature: String,
    pub authorization: String,
}

/// Signs `req` with SignedHeaders `content-type;host`, as the official SDKs do.
pub fn sign(req: &Request<'_>, secret_id: &str, secret_key: &str) -> Option<Signed> {
    let date = utc_date(req.timestamp)?;
    let scope = credential_scope(&date, req.service);
    let (block, names) =
        canonical_headers(&[("content-type", req.content_type), ("host", req.host)]);
    let hashed = hashed_payload(req.body, req.unsigned_payload);
    let canonical = canonical_request(req.method, req.query, &block, &names, &hashed);
    let sts = string_to_sign(req.timestamp, &scope, &canonical);
    let key = signing_key(secret_key, &date, req.service);
    let sig = signature(&key, &sts);
    let auth = authorization_header(secret_id, &scope, &names, &sig);
    Some(Signed {
        hashed_payload: hashed,
        canonical_request: canonical,
        string_to_sign: sts,
        signed_headers: names,
        signature: sig,
        authorization: auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_date_is_never_local_and_flips_exactly_at_midnight() {
        // 2023-12-31T23:59:59Z and one second later.
        assert_eq!(utc_date(1704067199).unwrap(), "2023-12-31");
        assert_eq!(utc_date(1704067200).unwrap(), "2024-01-01");
        assert_eq!(utc_date(1704067201).unwrap(), "2024-01-01");
        // 22:13:20Z is already the next day in Beijing; the scope still uses the UTC date.
        assert_eq!(utc_date(1700000000).unwrap(), "2023-11-14");
        assert_eq!(utc_date(0).unwrap(), "1970-01-01");
        assert!(utc_date(i64::MAX).is_none());
    }

    #[test]
    fn documented_cvm_example_reproduces() {
        // The signing document's older worked example (service cvm, charset in Content-Type).
        let body = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let s = sign(
            &Request {
                method: "POST",
                host: "cvm.tencentcloudapi.com",
                query: "",
                content_type: "application/json; charset=utf-8",
                body,
                unsigned_payload: false,
                timestamp: 1551113065,
                service: "cvm",
            },
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        )
        .unwrap();
        assert_eq!(
            s.signature,
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn canonical_headers_sort_trim_and_lowercase() {
        let (block, names) = canonical_headers(&[
            ("X-TC-Action", " CreateSDKLoginToken "),
            ("Host", "CCC.tencentcloudapi.com"),
            ("Content-Type", "application/json"),
        ]);
        assert_eq!(
            block,
            "content-type:application/json\nhost:ccc.tencentcloudapi.com\nx-tc-action:createsdklogintoken\n"
        );
        assert_eq!(names, "content-type;host;x-tc-action");
    }
}
